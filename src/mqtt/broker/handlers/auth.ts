/** AUTH (MQTT 5.0 §3.15). Enhanced authentication is not offered, so AUTH is always an error. */
import type { IAuthPacket } from "mqtt-packet";
import { MqttError } from "../../errors.js";
import type { ClientConnection } from "../connection.js";

/** Handles AUTH: a Protocol Error, as the CONNECT carried no Authentication Method [MQTT-4.12.0-7]. */
export function handleAuth(_conn: ClientConnection, _p: IAuthPacket): void {
  throw MqttError.protocol("AUTH without an authentication method");
}
