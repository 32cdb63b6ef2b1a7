/**
 * PUBACK, PUBREC, PUBREL, PUBCOMP from a client (MQTT 5.0 §3.4-3.7, §4.3). Acknowledgements are
 * accepted on any stream: packet identifiers belong to the session, not to a stream.
 */
import type { IPubackPacket, IPubcompPacket, IPubrecPacket, IPubrelPacket } from "mqtt-packet";
import { ReasonCode } from "../../errors.js";
import type { ClientConnection } from "../connection.js";
import type { StreamState } from "../stream-state.js";

/** PUBACK for an outbound QoS 1 message: it is done. Unknown identifiers are ignored. */
export function handlePuback(conn: ClientConnection, _ss: StreamState, p: IPubackPacket): void {
  conn.session!.puback(p.messageId ?? 0);
}

/** PUBREC for an outbound QoS 2 message: answer with PUBREL [MQTT-4.3.3-4]. */
export function handlePubrec(conn: ClientConnection, ss: StreamState, p: IPubrecPacket): void {
  const id = p.messageId ?? 0;
  const rec = conn.session!.pubrec(id, p.reasonCode ?? 0);
  if (rec) {
    conn.write(conn.replyStream(ss), { cmd: "pubrel", messageId: id });
  } else if ((p.reasonCode ?? 0) < 0x80) {
    // Unknown identifier: release it anyway so the client can finish.
    conn.write(
      conn.replyStream(ss),
      conn.version === 5
        ? { cmd: "pubrel", messageId: id, reasonCode: ReasonCode.PacketIdentifierNotFound }
        : { cmd: "pubrel", messageId: id },
    );
  }
}

/** PUBREL for an inbound QoS 2 message: forget the identifier, answer PUBCOMP [MQTT-4.3.3-11]. */
export function handlePubrel(conn: ClientConnection, ss: StreamState, p: IPubrelPacket): void {
  const session = conn.session!;
  const id = p.messageId ?? 0;
  const known = session.state.inboundQos2.delete(id);
  if (known) conn.broker.persist(session);
  conn.write(
    conn.replyStream(ss),
    conn.version === 5
      ? { cmd: "pubcomp", messageId: id, reasonCode: known ? 0 : ReasonCode.PacketIdentifierNotFound }
      : { cmd: "pubcomp", messageId: id },
  );
}

/** PUBCOMP for an outbound QoS 2 message: it is done. */
export function handlePubcomp(conn: ClientConnection, _ss: StreamState, p: IPubcompPacket): void {
  conn.session!.pubcomp(p.messageId ?? 0);
}
