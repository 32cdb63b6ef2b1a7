/**
 * SUBSCRIBE (MQTT 5.0 §3.8): one reason code per filter in order [MQTT-3.9.3-1], the SUBACK on
 * the stream that carried the SUBSCRIBE, deliveries routed to that stream, then the retained
 * messages the Retain Handling option asks for.
 */
import type { ISubackPacket, ISubscribePacket, QoS } from "mqtt-packet";
import { MqttError, ReasonCode } from "../../errors.js";
import { isValidTopicFilter, parseSharedFilter } from "../../topic.js";
import type { ClientConnection } from "../connection.js";
import type { SubscriptionRecord } from "../store.js";
import type { StreamState } from "../stream-state.js";

/** Handles SUBSCRIBE. */
export async function handleSubscribe(
  conn: ClientConnection,
  ss: StreamState,
  p: ISubscribePacket,
): Promise<void> {
  const broker = conn.broker;
  const session = conn.session!;
  const v5 = conn.version === 5;
  const id = p.messageId ?? 0;
  if (id === 0) throw MqttError.protocol("SUBSCRIBE without a packet identifier");
  if (p.subscriptions.length === 0) throw MqttError.protocol("SUBSCRIBE without filters"); // [MQTT-3.8.3-2]
  const subId = p.properties?.subscriptionIdentifier;
  if (subId !== undefined && (typeof subId !== "number" || subId === 0)) {
    throw MqttError.protocol("invalid Subscription Identifier");
  }
  for (const s of p.subscriptions) {
    if (s.nl && parseSharedFilter(s.topic)) throw MqttError.protocol("No Local on a shared subscription"); // [MQTT-3.8.3-4]
  }

  const fail = (code: number): number => (v5 ? code : 0x80);
  const granted: number[] = [];
  const added: SubscriptionRecord[] = [];
  const retainedFor: Array<{ record: SubscriptionRecord }> = [];
  for (const s of p.subscriptions) {
    const filter = s.topic;
    if (!isValidTopicFilter(filter)) {
      granted.push(fail(ReasonCode.TopicFilterInvalid));
      continue;
    }
    const existed = session.state.subscriptions.has(filter);
    if (!existed && session.state.subscriptions.size >= broker.options.maxSubscriptionsPerClient) {
      granted.push(fail(ReasonCode.QuotaExceeded));
      continue;
    }
    let qos: QoS = s.qos;
    const authorize = broker.hooks.authorizeSubscribe;
    if (authorize) {
      let r: boolean | number;
      try {
        r = await authorize(conn.info, filter, s.qos);
      } catch {
        r = false;
      }
      if (conn.isClosed) return;
      if (r === false || (typeof r === "number" && r >= 0x80)) {
        granted.push(fail(typeof r === "number" ? r : ReasonCode.NotAuthorized));
        continue;
      }
      if (typeof r === "number" && r < qos) qos = r as QoS;
    }
    const record: SubscriptionRecord = {
      filter,
      qos,
      noLocal: s.nl ?? false,
      retainAsPublished: s.rap ?? false,
      retainHandling: (s.rh ?? 0) as 0 | 1 | 2,
      ...(subId !== undefined ? { subscriptionId: subId } : {}),
    };
    // [MQTT-3.8.4-3]: an identical filter replaces the subscription.
    session.state.subscriptions.set(filter, record);
    broker.tree.add(session.clientId, record);
    conn.setRoute(filter, ss);
    granted.push(qos); // [MQTT-3.8.4-7]
    added.push(record);
    const shared = parseSharedFilter(filter) !== undefined;
    // [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; none for shared subscriptions (§4.8.2).
    if (!shared && (record.retainHandling === 0 || (record.retainHandling === 1 && !existed))) {
      retainedFor.push({ record });
    }
  }
  broker.persist(session);

  const suback: ISubackPacket = { cmd: "suback", messageId: id, granted }; // [MQTT-3.8.4-2]
  if (v5) suback.properties = {};
  conn.write(ss, suback); // [MQTT-3.8.4-1]
  if (added.length > 0 && broker.listenerCount("subscribe") > 0) broker.emit("subscribe", added, conn.info);

  const now = broker.scheduler.now();
  for (const { record } of retainedFor) {
    const found = await broker.retained.match(record.filter);
    if (conn.isClosed) return;
    for (const m of found) {
      if (m.expiresAt !== undefined && m.expiresAt <= now) continue;
      session.deliverRetained(m, record);
    }
  }
}
