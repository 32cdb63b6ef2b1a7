/**
 * MQTT reason codes (MQTT 5.0 §2.4, table 2-6) and the typed error the MQTT layer throws.
 *
 * Shared by the client and the broker: keep changes additive.
 */
import { MquicttError } from "../errors.js";

/**
 * MQTT 5.0 reason codes by name. Several codes share a value (0x00 is Success, Normal
 * disconnection and Granted QoS 0), so the table is name -> value.
 */
export const ReasonCode = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWillMessage: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** A reason code name, e.g. `"ProtocolError"`. */
export type ReasonCodeName = keyof typeof ReasonCode;

const ERROR_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(ReasonCode)) {
  // The error-range names are unique; below 0x80 prefer the first (generic) name.
  if (!ERROR_NAMES.has(value)) ERROR_NAMES.set(value, name);
}

/** A readable name for a reason code ("ProtocolError (0x82)"). */
export function reasonCodeName(code: number): string {
  const name = ERROR_NAMES.get(code) ?? "Unknown";
  return `${name} (0x${code.toString(16).padStart(2, "0")})`;
}

/**
 * The MQTT 3.1.1 CONNACK return code (§3.2.2.3) closest to an MQTT 5 CONNACK reason code:
 * 1 unacceptable protocol version, 2 identifier rejected, 3 server unavailable,
 * 4 bad user name or password, 5 not authorized.
 */
export function connackReturnCodeV3(reasonCode: number): number {
  switch (reasonCode) {
    case ReasonCode.Success:
      return 0;
    case ReasonCode.UnsupportedProtocolVersion:
      return 1;
    case ReasonCode.ClientIdentifierNotValid:
      return 2;
    case ReasonCode.ServerUnavailable:
    case ReasonCode.ServerBusy:
    case ReasonCode.ServerShuttingDown:
    case ReasonCode.UseAnotherServer:
    case ReasonCode.ServerMoved:
    case ReasonCode.ConnectionRateExceeded:
      return 3;
    case ReasonCode.BadUserNameOrPassword:
      return 4;
    default:
      return 5;
  }
}

/** The stable `code` string of an MqttError for a reason code: 0x82 -> `ERR_MQTT_PROTOCOL_ERROR`. */
export function mqttErrorCode(reasonCode: number): string {
  const name = ERROR_NAMES.get(reasonCode) ?? "UnspecifiedError";
  return `ERR_MQTT_${name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}`;
}

/**
 * An MQTT-level error carrying an MQTT 5 reason code. `code` is stable and derived from the
 * reason code (`ERR_MQTT_MALFORMED_PACKET`, `ERR_MQTT_PROTOCOL_ERROR`,
 * `ERR_MQTT_RECEIVE_MAXIMUM_EXCEEDED`, ...), so callers can switch on either.
 */
export class MqttError extends MquicttError {
  /** The MQTT 5 reason code (0x80..0xA2 for errors). */
  readonly reasonCode: number;

  constructor(reasonCode: number, message: string, options?: { cause?: unknown }) {
    super(mqttErrorCode(reasonCode), message, options);
    this.reasonCode = reasonCode;
  }

  /** A Malformed Packet (0x81) error. */
  static malformed(message: string, options?: { cause?: unknown }): MqttError {
    return new MqttError(ReasonCode.MalformedPacket, message, options);
  }

  /** A Protocol Error (0x82). */
  static protocol(message: string): MqttError {
    return new MqttError(ReasonCode.ProtocolError, message);
  }
}
