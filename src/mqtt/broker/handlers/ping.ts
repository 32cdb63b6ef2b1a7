/** PINGREQ (MQTT 5.0 §3.12): answered with PINGRESP on the control stream [MQTT-3.12.4-1]. */
import type { ClientConnection } from "../connection.js";

/** Handles PINGREQ. Keepalive already counted the bytes. */
export function handlePing(conn: ClientConnection): void {
  conn.write(conn.control, { cmd: "pingresp" });
}
