/**
 * PUBLISH from a client (MQTT 5.0 §3.3, §4.3): topic aliases, validation, Receive Maximum,
 * authorization, exactly-once bookkeeping for QoS 2, routing, and the acknowledgement on the
 * stream that carried the PUBLISH (on the control stream for a unidirectional stream).
 */
import type { IPublishPacket } from "mqtt-packet";
import { MqttError, ReasonCode } from "../../errors.js";
import { isValidTopicName } from "../../topic.js";
import type { ClientConnection } from "../connection.js";
import type { AppMessage } from "../store.js";
import type { StreamState } from "../stream-state.js";
import { messageProperties } from "./connect.js";

/** Handles an inbound PUBLISH. */
export function handlePublish(
  conn: ClientConnection,
  ss: StreamState,
  p: IPublishPacket,
): void | Promise<void> {
  const broker = conn.broker;
  const session = conn.session!;
  const v5 = conn.version === 5;
  const id = p.messageId ?? 0;
  if (p.qos > 0 && id === 0) throw MqttError.protocol("PUBLISH without a packet identifier"); // [MQTT-2.2.1-3]
  const props = p.properties;
  if (props?.subscriptionIdentifier !== undefined) {
    throw MqttError.protocol("PUBLISH from a client with a Subscription Identifier"); // [MQTT-3.3.4-6]
  }

  let topic = p.topic;
  const alias = props?.topicAlias;
  if (alias !== undefined) {
    if (alias === 0 || alias > broker.options.topicAliasMaximum) {
      // [MQTT-3.3.2-8] [MQTT-3.3.2-9] [MQTT-3.3.2-12]
      throw new MqttError(ReasonCode.TopicAliasInvalid, `topic alias ${alias} out of range`);
    }
    if (topic === "") {
      const known = conn.inboundAliases.get(alias);
      if (known === undefined) throw MqttError.protocol(`unknown topic alias ${alias}`);
      topic = known;
    } else if (isValidTopicName(topic)) {
      conn.inboundAliases.set(alias, topic);
    }
  }
  if (topic === "") throw MqttError.protocol("empty topic name");
  if (!isValidTopicName(topic)) {
    // [MQTT-3.3.2-2] [MQTT-4.7.0-1]: wildcards (or U+0000) in a topic name.
    throw new MqttError(ReasonCode.TopicNameInvalid, `invalid topic name ${JSON.stringify(topic)}`);
  }

  const ackOn = ss.kind === "uni" ? conn.control : ss;
  if (p.qos === 2 && session.state.inboundQos2.has(id)) {
    // [MQTT-4.3.3-10]: a resent QoS 2 PUBLISH is acknowledged again, never delivered twice.
    conn.write(ackOn, { cmd: "pubrec", messageId: id });
    return;
  }
  if (v5 && p.qos > 0) {
    // [MQTT-3.3.4-7]: the client may not have more than our Receive Maximum unacknowledged.
    const unacked = session.state.inboundQos2.size + conn.inboxQos + 1;
    if (unacked > broker.options.receiveMaximum) {
      throw new MqttError(
        ReasonCode.ReceiveMaximumExceeded,
        `more than ${broker.options.receiveMaximum} unacknowledged QoS 1/2 PUBLISH`,
      );
    }
  }

  const payload = Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload);
  const expiry = props?.messageExpiryInterval;
  const message: AppMessage = {
    topic,
    payload,
    qos: p.qos,
    retain: p.retain,
    from: conn.clientId,
    ...(v5 && props ? { properties: messageProperties(props) } : {}),
    ...(expiry ? { expiresAt: broker.scheduler.now() + expiry * 1000 } : {}),
  };

  const finish = (allowed: boolean, matched: number): void => {
    if (conn.phase !== "connected") return;
    const code = !allowed
      ? ReasonCode.NotAuthorized
      : matched === 0
        ? ReasonCode.NoMatchingSubscribers
        : ReasonCode.Success;
    if (p.qos === 1) {
      // [MQTT-4.3.2-4]
      conn.write(
        ackOn,
        v5 ? { cmd: "puback", messageId: id, reasonCode: code } : { cmd: "puback", messageId: id },
      );
    } else if (p.qos === 2) {
      // [MQTT-4.3.3-8]; an error PUBREC forgets the identifier [MQTT-4.3.3-9].
      if (allowed || !v5) {
        session.state.inboundQos2.add(id);
        broker.persist(session);
      }
      conn.write(
        ackOn,
        v5 ? { cmd: "pubrec", messageId: id, reasonCode: code } : { cmd: "pubrec", messageId: id },
      );
    }
  };

  const deliver = (): void | Promise<void> => {
    const n = broker.route(message, conn.info);
    if (n instanceof Promise) return n.then((k) => finish(true, k));
    finish(true, n);
  };

  const authorize = broker.hooks.authorizePublish;
  if (!authorize) return deliver();
  const decide = (r: boolean | number): void | Promise<void> => {
    if (r === true || r === 0) return deliver();
    // Refused: QoS 0 is dropped silently; QoS 1/2 get 0x87 (v5) or a plain ack (3.1.1).
    finish(false, 0);
  };
  let r: boolean | number | Promise<boolean | number>;
  try {
    r = authorize(conn.info, topic, message);
  } catch {
    r = false;
  }
  if (r instanceof Promise) return r.then(decide, () => decide(false));
  return decide(r);
}
