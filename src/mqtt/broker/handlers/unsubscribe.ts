/** UNSUBSCRIBE (MQTT 5.0 §3.10): exact filter comparison [MQTT-3.10.4-1], one UNSUBACK. */
import type { IUnsubackPacket, IUnsubscribePacket } from "mqtt-packet";
import { MqttError, ReasonCode } from "../../errors.js";
import type { ClientConnection } from "../connection.js";
import type { StreamState } from "../stream-state.js";

/** Handles UNSUBSCRIBE; the UNSUBACK goes on the stream that carried it [MQTT-3.10.4-4]. */
export function handleUnsubscribe(conn: ClientConnection, ss: StreamState, p: IUnsubscribePacket): void {
  const broker = conn.broker;
  const session = conn.session!;
  const id = p.messageId ?? 0;
  if (id === 0) throw MqttError.protocol("UNSUBSCRIBE without a packet identifier");
  if (p.unsubscriptions.length === 0) throw MqttError.protocol("UNSUBSCRIBE without filters"); // [MQTT-3.10.3-2]
  const codes: number[] = [];
  const removed: string[] = [];
  for (const filter of p.unsubscriptions) {
    // [MQTT-3.10.4-2]: no new messages for it; in-flight ones complete [MQTT-3.10.4-3].
    if (session.state.subscriptions.delete(filter)) {
      broker.tree.remove(session.clientId, filter);
      conn.clearRoute(filter);
      removed.push(filter);
      codes.push(ReasonCode.Success);
    } else {
      codes.push(ReasonCode.NoSubscriptionExisted);
    }
  }
  if (removed.length > 0) broker.persist(session);
  // [MQTT-3.10.4-5] [MQTT-3.10.4-6] [MQTT-3.11.3-1]
  const unsuback: IUnsubackPacket =
    conn.version === 5
      ? { cmd: "unsuback", messageId: id, granted: codes, properties: {} }
      : ({ cmd: "unsuback", messageId: id } as IUnsubackPacket);
  conn.write(ss, unsuback);
  if (removed.length > 0 && broker.listenerCount("unsubscribe") > 0)
    broker.emit("unsubscribe", removed, conn.info);
}
