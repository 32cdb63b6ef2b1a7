/** DISCONNECT from the client (MQTT 5.0 §3.14). */
import type { IDisconnectPacket } from "mqtt-packet";
import { MqttError, ReasonCode } from "../../errors.js";
import type { ClientConnection } from "../connection.js";

/**
 * Handles DISCONNECT: 0x00 discards the will [MQTT-3.14.4-3]; 0x04 (v5) keeps it. A v5 client
 * may change the Session Expiry Interval, except from 0 to non-zero (a Protocol Error). The
 * connection closes once what the client sent before it on other streams is handled.
 */
export function handleDisconnect(conn: ClientConnection, p: IDisconnectPacket): void {
  const session = conn.session!;
  if (conn.version === 5) {
    const se = p.properties?.sessionExpiryInterval;
    if (se !== undefined) {
      if (session.state.expiryInterval === 0 && se !== 0) {
        throw MqttError.protocol("session expiry changed from 0 at DISCONNECT");
      }
      session.state.expiryInterval = Math.min(se, conn.broker.options.maxSessionExpiryInterval);
    }
    conn.willSuppressed = (p.reasonCode ?? 0) === ReasonCode.NormalDisconnection;
  } else {
    conn.willSuppressed = true;
  }
  // Packets the client sent on its other streams before DISCONNECT are still read (QUIC).
  conn.closeAfterDisconnect(p.reasonCode ?? 0);
}
