/**
 * The events of `MqttClient` (MQTT.js names and arguments).
 */
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, Packet } from "mqtt-packet";

/** Events of `MqttClient` (MQTT.js names and arguments). */
export interface MqttClientEvents {
  /** CONNACK accepted (also after every reconnect). */
  connect: [connack: IConnackPacket];
  /** A delivery: topic, payload, the PUBLISH packet. */
  message: [topic: string, payload: Buffer, packet: IPublishPacket];
  /** A connection that was up went down. */
  close: [];
  /** The client is offline and will try to reconnect. */
  offline: [];
  /** A reconnect attempt starts. */
  reconnect: [];
  /** `end()` finished. */
  end: [];
  /** The broker sent DISCONNECT (MQTT 5.0). */
  disconnect: [packet: IDisconnectPacket];
  /** Errors nobody awaits (a failed reconnect, a protocol violation). Only emitted with a listener. */
  error: [err: Error];
  packetsend: [packet: Packet];
  packetreceive: [packet: Packet];
}

/** Callback of the MQTT.js-style methods. */
export type Callback<T> = (err: Error | undefined, result?: T) => void;
