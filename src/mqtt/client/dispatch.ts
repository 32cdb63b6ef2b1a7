/**
 * Routing of packets from the broker to their handlers: one place that says which packet goes
 * where, and which packets a client must never receive.
 */
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, Packet } from "mqtt-packet";
import type { PacketChannel } from "./channel.js";
import { MqttProtocolError } from "./errors.js";
import type { Inbox } from "./inbox.js";
import type { Link } from "./link.js";
import type { Outbox } from "./outbox.js";
import type { Subscriptions } from "./subscriptions.js";

/** The handlers the dispatcher calls. */
export interface DispatchTarget {
  readonly outbox: Outbox;
  readonly inbox: Inbox;
  readonly subscriptions: Subscriptions;
  /** Whether CONNACK already arrived on this link. */
  isConnected(link: Link): boolean;
  onConnack(packet: IConnackPacket, link: Link): void;
  onServerDisconnect(packet: IDisconnectPacket, link: Link): void;
  /** Resolves a topic alias; undefined (after failing the link) when it is invalid. */
  resolveTopic(packet: IPublishPacket, link: Link): IPublishPacket | undefined;
  protocolError(link: Link, err: MqttProtocolError): void;
}

/** Hands one packet from `channel` of `link` to its handler. */
export function dispatchPacket(t: DispatchTarget, packet: Packet, channel: PacketChannel, link: Link): void {
  if (!t.isConnected(link)) {
    // [MQTT-3.2.0-1] the first packet from the server is CONNACK.
    if (packet.cmd === "connack") t.onConnack(packet, link);
    else
      t.protocolError(link, new MqttProtocolError(`broker sent ${packet.cmd.toUpperCase()} before CONNACK`));
    return;
  }
  switch (packet.cmd) {
    case "publish": {
      const p = t.resolveTopic(packet, link);
      if (p) t.inbox.onPublish(p, channel, link);
      return;
    }
    case "puback":
      t.outbox.onPuback(packet);
      return;
    case "pubrec":
      t.outbox.onPubrec(packet, channel, link);
      return;
    case "pubcomp":
      t.outbox.onPubcomp(packet);
      return;
    case "pubrel":
      t.inbox.onPubrel(packet, channel, link);
      return;
    case "suback":
      t.subscriptions.onAck("subscribe", packet.messageId, packet.granted as number[]);
      return;
    case "unsuback":
      t.subscriptions.onAck("unsubscribe", packet.messageId, packet.granted ?? []);
      return;
    case "pingresp":
      link.onPingResponse();
      return;
    case "disconnect":
      t.onServerDisconnect(packet, link);
      return;
    case "auth":
      t.protocolError(
        link,
        new MqttProtocolError("broker sent AUTH, but enhanced authentication is not supported"),
      );
      return;
    default:
      t.protocolError(link, new MqttProtocolError(`a broker never sends ${packet.cmd.toUpperCase()}`));
  }
}
