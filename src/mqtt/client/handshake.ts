/**
 * CONNECT (MQTT 5.0 §3.1) from the options, and what a CONNACK (§3.2) tells the client: success
 * or a refusal with its reason, session present, and the broker's limits.
 */
import type { IConnackPacket, IConnectPacket } from "mqtt-packet";
import { MqttConnackError } from "./errors.js";
import { type ResolvedOptions, toBuffer } from "./options.js";
import { V4_CONNACK_TO_V5 } from "./reason-codes.js";

/** The CONNECT packet for the options. */
export function buildConnect(o: ResolvedOptions): IConnectPacket {
  const raw = o.raw;
  const p: IConnectPacket = {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: o.protocolVersion,
    clean: o.clean,
    clientId: o.clientId,
    keepalive: o.keepalive,
  };
  if (raw.username !== undefined) p.username = raw.username;
  if (raw.password !== undefined) p.password = toBuffer(raw.password);
  if (raw.will) {
    p.will = {
      topic: raw.will.topic,
      payload: toBuffer(raw.will.payload),
      qos: raw.will.qos ?? 0,
      retain: raw.will.retain ?? false,
    };
    if (o.protocolVersion === 5 && raw.will.properties) p.will.properties = raw.will.properties;
  }
  if (o.protocolVersion === 5) {
    const props: NonNullable<IConnectPacket["properties"]> = { ...raw.properties };
    const expiry = raw.sessionExpiryInterval ?? (o.clean ? undefined : 0xffffffff);
    if (expiry !== undefined) props.sessionExpiryInterval = expiry;
    if (raw.receiveMaximum !== undefined) props.receiveMaximum = raw.receiveMaximum;
    if (raw.maximumPacketSize !== undefined) props.maximumPacketSize = raw.maximumPacketSize;
    if (raw.topicAliasMaximum !== undefined) props.topicAliasMaximum = raw.topicAliasMaximum;
    if (Object.keys(props).length > 0) p.properties = props;
  }
  return p;
}

/** What the broker granted, from a successful CONNACK. */
export interface ConnackInfo {
  sessionPresent: boolean;
  /** Send quota (Receive Maximum, §3.2.2.3.3); undefined = 65535. */
  receiveMaximum: number | undefined;
  /** Highest QoS the broker accepts (§3.2.2.3.4). */
  maximumQoS: number;
  retainAvailable: boolean;
  /** Largest packet the broker accepts. */
  maximumPacketSize: number | undefined;
  /** Keepalive to use: the broker's Server Keep Alive if it sent one [MQTT-3.2.2-21]. */
  keepalive: number;
  /** The client id the broker assigned, if it assigned one. */
  assignedClientId: string | undefined;
  subscriptionIdentifiersAvailable: boolean;
}

/** Interprets a CONNACK; throws `MqttConnackError` for a refusal. */
export function readConnack(packet: IConnackPacket, o: ResolvedOptions): ConnackInfo {
  const v5 = o.protocolVersion === 5;
  if (v5) {
    const code = packet.reasonCode ?? 0;
    if (code >= 0x80) {
      const reasonString = packet.properties?.reasonString;
      throw new MqttConnackError(code, reasonString ? { reasonString } : {});
    }
    if (code !== 0) {
      // Not an MQTT 5.0 CONNACK code: a 3.1.1-only broker answering our 5.0 CONNECT with its
      // return code (1 = unacceptable protocol version).
      throw new MqttConnackError(V4_CONNACK_TO_V5[code] ?? 0x80, {
        returnCode: code,
        reasonString: "the broker answered in MQTT 3.1.1; try protocolVersion: 4",
      });
    }
  } else {
    const rc = packet.returnCode ?? 0;
    if (rc !== 0) throw new MqttConnackError(V4_CONNACK_TO_V5[rc] ?? 0x80, { returnCode: rc });
  }
  const props = v5 ? packet.properties : undefined;
  return {
    sessionPresent: packet.sessionPresent === true,
    receiveMaximum: props?.receiveMaximum,
    maximumQoS: props?.maximumQoS ?? 2,
    retainAvailable: props?.retainAvailable ?? true,
    maximumPacketSize: props?.maximumPacketSize,
    keepalive: props?.serverKeepAlive ?? o.keepalive,
    assignedClientId: props?.assignedClientIdentifier,
    subscriptionIdentifiersAvailable: v5 && props?.subscriptionIdentifiersAvailable !== false,
  };
}
