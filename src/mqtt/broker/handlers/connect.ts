/**
 * CONNECT (MQTT 5.0 §3.1, 3.1.1 §3.1): validation, client identifier assignment, authentication,
 * session takeover and Clean Start, will, keepalive, CONNACK, then resuming the session.
 */
import type { IConnackPacket, IConnectPacket } from "mqtt-packet";
import { MqttError, ReasonCode } from "../../errors.js";
import { isValidTopicName } from "../../topic.js";
import type { ClientConnection } from "../connection.js";
import type { AppMessage, WillRecord } from "../store.js";

/** Handles the first packet of a connection. */
export async function handleConnect(conn: ClientConnection, p: IConnectPacket): Promise<void> {
  const broker = conn.broker;
  const opts = broker.options;
  conn.cancelConnectTimer();
  conn.phase = "connecting";
  const version = p.protocolVersion ?? 4;
  conn.version = version;
  const v5 = version === 5;
  const props = p.properties ?? {};

  if (!v5 && p.password !== undefined && p.username === undefined) {
    // 3.1.1 [MQTT-3.1.2-22]: no password without a user name.
    throw MqttError.malformed("password flag set without user name flag");
  }
  if (v5 && props.receiveMaximum === 0) throw MqttError.protocol("Receive Maximum of 0");
  if (v5 && props.maximumPacketSize === 0) throw MqttError.protocol("Maximum Packet Size of 0");
  if (props.authenticationMethod !== undefined) {
    // Enhanced authentication is not supported [MQTT-4.12.0-1].
    conn.refuseConnect(ReasonCode.BadAuthenticationMethod, "enhanced authentication is not supported");
    return;
  }

  let clientId = p.clientId;
  let assigned = false;
  if (clientId === "") {
    if (!v5 && !p.clean) {
      // 3.1.1 [MQTT-3.1.3-8]: a zero-byte ClientId with CleanSession 0 is rejected (return code 2).
      conn.refuseConnect(
        ReasonCode.ClientIdentifierNotValid,
        "empty client identifier needs a clean session",
      );
      return;
    }
    clientId = broker.assignClientId(); // [MQTT-3.1.3-6] [MQTT-3.1.3-7]
    assigned = v5;
  }

  let will: WillRecord | undefined;
  if (p.will) {
    if (!isValidTopicName(p.will.topic)) {
      if (v5) conn.refuseConnect(ReasonCode.TopicNameInvalid, "invalid will topic");
      else throw MqttError.malformed("invalid will topic");
      return;
    }
    const wp = p.will.properties ?? {};
    const message: AppMessage = {
      topic: p.will.topic,
      payload: Buffer.isBuffer(p.will.payload) ? p.will.payload : Buffer.from(p.will.payload),
      qos: p.will.qos ?? 0,
      retain: p.will.retain ?? false, // [MQTT-3.1.2-14] [MQTT-3.1.2-15]
      from: clientId,
      ...(v5 ? { properties: messageProperties(wp) } : {}),
    };
    will = {
      message,
      delayInterval: v5 ? (wp.willDelayInterval ?? 0) : 0,
      ...(wp.messageExpiryInterval ? { expiryInterval: wp.messageExpiryInterval } : {}),
    };
  }

  if (!broker.canAcceptClient() && !broker.sessions.get(clientId)?.link) {
    // (A takeover replaces a connected client, so it does not count against the limit.)
    conn.refuseConnect(ReasonCode.ServerBusy, "too many clients");
    return;
  }

  conn.clientId = clientId;
  conn.username = p.username;
  conn.info = { ...conn.info, clientId, username: p.username, protocolVersion: version };

  await broker.ready();
  const auth = broker.hooks.authenticate;
  if (auth) {
    let r: boolean | number;
    try {
      r = await auth({
        clientId,
        username: p.username,
        password: p.password,
        protocolVersion: version,
        transport: conn.info.transport,
      });
    } catch {
      r = ReasonCode.NotAuthorized;
    }
    if (conn.isClosed) return;
    if (r !== true && r !== 0) {
      const code = typeof r === "number" ? r : ReasonCode.BadUserNameOrPassword;
      conn.refuseConnect(code >= 0x80 ? code : ReasonCode.NotAuthorized, "not authorized");
      return;
    }
  }
  if (conn.isClosed) return;

  const requested = v5 ? (props.sessionExpiryInterval ?? 0) : p.clean ? 0 : opts.persistentSessionExpiry;
  const expiry = Math.min(requested, opts.maxSessionExpiryInterval);

  conn.clientReceiveMaximum = props.receiveMaximum ?? 65535;
  if (props.maximumPacketSize) conn.clientMaxPacketSize = props.maximumPacketSize;
  conn.clientTopicAliasMaximum = props.topicAliasMaximum ?? 0;
  conn.requestProblemInformation = props.requestProblemInformation ?? true;

  conn.phase = "connected";
  const sessionPresent = broker.attachSession(conn, clientId, p.clean ?? true, expiry);
  const session = conn.session!;
  if (will) session.state.will = will; // [MQTT-3.1.2-7]

  const keepalive = v5 && opts.serverKeepAlive !== undefined ? opts.serverKeepAlive : (p.keepalive ?? 0);
  const connack: IConnackPacket = { cmd: "connack", sessionPresent }; // [MQTT-3.2.2-2] [MQTT-3.2.2-3]
  if (v5) {
    connack.reasonCode = ReasonCode.Success;
    const cp: NonNullable<IConnackPacket["properties"]> = {};
    if (assigned) cp.assignedClientIdentifier = clientId; // [MQTT-3.2.2-16]
    if (expiry !== requested) cp.sessionExpiryInterval = expiry;
    if (opts.receiveMaximum !== 65535) cp.receiveMaximum = opts.receiveMaximum;
    cp.maximumPacketSize = opts.maxPacketSize;
    if (opts.topicAliasMaximum > 0) cp.topicAliasMaximum = opts.topicAliasMaximum;
    if (opts.serverKeepAlive !== undefined) cp.serverKeepAlive = opts.serverKeepAlive; // [MQTT-3.2.2-21]
    connack.properties = cp;
  } else {
    connack.returnCode = 0;
  }
  conn.write(conn.control, connack); // [MQTT-3.2.0-1] [MQTT-3.1.4-5]
  conn.startKeepalive(keepalive); // [MQTT-3.2.2-22]
  if (broker.listenerCount("clientConnect") > 0) broker.emit("clientConnect", conn.info, sessionPresent);
  session.resume();
  conn.releaseHeldStreams();
}

/** The application-message properties of a will or PUBLISH (v5). */
export function messageProperties(p: {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: import("mqtt-packet").UserProperties;
}): AppMessage["properties"] & object {
  const out: NonNullable<AppMessage["properties"]> = {};
  if (p.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) out.correlationData = p.correlationData;
  if (p.userProperties !== undefined) out.userProperties = p.userProperties;
  return out;
}
