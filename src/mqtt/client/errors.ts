/**
 * Errors of the MQTT client. Each class has a stable `code` (see `MquicttError`) a caller can
 * switch on; messages say what happened in words a user can act on.
 */
import { MquicttError } from "../../errors.js";
import { formatReasonCode, reasonCodeName } from "./reason-codes.js";

/** The broker refused the connection (CONNACK with a failure reason code). */
export class MqttConnackError extends MquicttError {
  /** The MQTT 5.0 reason code (a 3.1.1 return code is mapped to its 5.0 equivalent). */
  readonly reasonCode: number;
  /** The name the spec gives the reason code, e.g. "Not authorized". */
  readonly reasonName: string;
  /** The raw MQTT 3.1.1 return code, when the connection was 3.1.1. */
  readonly returnCode: number | undefined;
  /** The broker's reason string (MQTT 5.0), if it sent one. */
  readonly reasonString: string | undefined;

  constructor(reasonCode: number, opts: { returnCode?: number; reasonString?: string } = {}) {
    const detail = opts.reasonString ? ` (${opts.reasonString})` : "";
    const v4 = opts.returnCode !== undefined ? ` [MQTT 3.1.1 return code ${opts.returnCode}]` : "";
    super("ERR_MQTT_CONNACK", `broker refused the connection: ${formatReasonCode(reasonCode)}${detail}${v4}`);
    this.reasonCode = reasonCode;
    this.reasonName = reasonCodeName(reasonCode);
    this.returnCode = opts.returnCode;
    this.reasonString = opts.reasonString;
  }
}

/** A publish was made while offline and the offline queue already holds `limit` messages. */
export class MqttOfflineQueueFullError extends MquicttError {
  constructor(readonly limit: number) {
    super(
      "ERR_MQTT_OFFLINE_QUEUE_FULL",
      `the client is offline and its queue is full (${limit} messages); raise offlineQueueLimit or wait for the connection`,
    );
  }
}

/** The operation needs a connection and the client is not connected (and will not reconnect). */
export class MqttNotConnectedError extends MquicttError {
  constructor(what = "the operation", cause?: Error) {
    super(
      "ERR_MQTT_NOT_CONNECTED",
      `${what} needs a connection and the client is not connected${cause ? ` (${cause.message})` : ""}`,
      cause ? { cause } : undefined,
    );
  }
}

/** The client was ended with `end()`; pending operations are rejected with this. */
export class MqttClientClosedError extends MquicttError {
  constructor() {
    super("ERR_MQTT_CLIENT_CLOSED", "the MQTT client was closed with end()");
  }
}

/** The broker answered a PUBLISH, SUBSCRIBE or UNSUBSCRIBE with a failure reason code. */
export class MqttAckError extends MquicttError {
  /** The reason's name, e.g. "Not authorized". */
  readonly reasonName: string;
  constructor(
    code: "ERR_MQTT_PUBLISH_REFUSED" | "ERR_MQTT_SUBSCRIBE_REFUSED" | "ERR_MQTT_UNSUBSCRIBE_REFUSED",
    readonly reasonCode: number,
    what: string,
    reasonString?: string,
  ) {
    super(
      code,
      `broker refused ${what}: ${formatReasonCode(reasonCode)}${reasonString ? ` (${reasonString})` : ""}`,
    );
    this.reasonName = reasonCodeName(reasonCode);
  }
}

/** The broker sent DISCONNECT (MQTT 5.0) with a reason code. */
export class MqttServerDisconnectError extends MquicttError {
  readonly reasonName: string;
  constructor(
    readonly reasonCode: number,
    reasonString?: string,
  ) {
    super(
      "ERR_MQTT_SERVER_DISCONNECT",
      `broker closed the connection: ${formatReasonCode(reasonCode)}${reasonString ? ` (${reasonString})` : ""}`,
    );
    this.reasonName = reasonCodeName(reasonCode);
  }
}

/**
 * The broker refused one of our QUIC data streams with the MQTT-over-QUIC stream error 0xB5
 * (wrong stream type): a `mqtt5`-crate broker (`mqttv5 broker`) takes client data only on
 * unidirectional streams. With `quicDataStreams: "auto"` the client reconnects in the uni dialect
 * (resending unacknowledged QoS 1/2 messages with DUP); with "bidi" it cannot talk to this broker
 * in a multi-stream mode (use "auto", "uni" or `streamMode: "single"`).
 */
export class MqttStreamRefusedError extends MquicttError {
  constructor(
    /** The logical stream that was refused ("data", "pub:1", "topic:a/b"...). */
    readonly streamKey: string,
    /** The QUIC application error code of the refusal. */
    readonly errorCode: number,
  ) {
    super(
      "ERR_MQTT_STREAM_REFUSED",
      `the broker refused our bidirectional data stream ${streamKey} (code 0x${errorCode.toString(16)}: stream type); it takes data on unidirectional streams only`,
    );
  }
}

/** No PINGRESP arrived within the keepalive interval; the connection is considered dead. */
export class MqttKeepaliveTimeoutError extends MquicttError {
  constructor(seconds: number) {
    super("ERR_MQTT_KEEPALIVE_TIMEOUT", `no PINGRESP from the broker within the keepalive (${seconds} s)`);
  }
}

/** No CONNACK arrived within `connectTimeout`. */
export class MqttConnectTimeoutError extends MquicttError {
  constructor(ms: number) {
    super("ERR_MQTT_CONNECT_TIMEOUT", `no CONNACK from the broker within ${ms} ms`);
  }
}

/** The broker broke the protocol (an unexpected or malformed packet). */
export class MqttProtocolError extends MquicttError {
  constructor(
    message: string,
    /** The MQTT 5.0 reason code the client uses when it disconnects for this (0x81 or 0x82). */
    readonly reasonCode = 0x82,
  ) {
    super("ERR_MQTT_PROTOCOL", message);
  }
}

/** A topic name or filter is not valid MQTT (wildcards in a topic name, empty, misplaced `#`...). */
export class MqttInvalidTopicError extends MquicttError {
  constructor(message: string) {
    super("ERR_MQTT_INVALID_TOPIC", message);
  }
}

/** The request exceeds what the broker said it supports (maximum QoS, retain, packet size). */
export class MqttUnsupportedError extends MquicttError {
  constructor(message: string) {
    super("ERR_MQTT_UNSUPPORTED", message);
  }
}

/** The URL is not one the client can dial. */
export class MqttUrlError extends MquicttError {
  constructor(message: string) {
    super("ERR_MQTT_URL", message);
  }
}

/** The connection to the broker failed or was lost (socket error, QUIC close...). */
export class MqttConnectionError extends MquicttError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_MQTT_CONNECTION", message, options);
  }
}

/** `publish()` on a publisher (or subscriber) that was closed. */
export class MqttClosedHandleError extends MquicttError {
  constructor(what: string) {
    super("ERR_MQTT_HANDLE_CLOSED", `${what} is closed`);
  }
}
