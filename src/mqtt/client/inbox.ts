/**
 * Incoming PUBLISH flows (MQTT 5.0 §4.3): QoS 1 is acknowledged with PUBACK after delivery; QoS 2
 * uses the "deliver on PUBLISH, remember the packet id until PUBREL" method (§4.3.3 method B), so a
 * resent PUBLISH with the same id is acknowledged again but not delivered twice. The remembered
 * ids are session state and live in the session store.
 *
 * Acknowledgements go back on the stream the packet came on (a server-opened unidirectional
 * stream: on the control stream) [DESIGN.md].
 */
import type { IPublishPacket, IPubrelPacket, Packet } from "mqtt-packet";
import type { PacketChannel } from "./channel.js";
import { afterMaybe } from "./deferred.js";
import type { Link } from "./link.js";
import type { ClientSessionStore } from "./session-store.js";

/** What the inbox needs from the client. */
export interface InboxHost {
  readonly clientId: string;
  readonly store: ClientSessionStore;
  readonly protocolVersion: 4 | 5;
  /** Hands a message to the application. */
  deliver(packet: IPublishPacket, channel: PacketChannel): void;
  reportError(err: Error): void;
}

/** See the module comment. */
export class Inbox {
  private readonly qos2 = new Set<number>();

  constructor(private readonly host: InboxHost) {}

  /** Restores the QoS 2 packet ids awaiting PUBREL from a stored session. */
  restore(ids: number[]): void {
    for (const id of ids) this.qos2.add(id);
  }

  /** Forgets the session (the broker has none). */
  clear(): void {
    this.qos2.clear();
  }

  /** QoS 2 packet ids awaiting PUBREL. */
  get pendingQos2(): number[] {
    return [...this.qos2];
  }

  /** A PUBLISH from the broker (its topic alias already resolved). */
  onPublish(packet: IPublishPacket, channel: PacketChannel, link: Link): void {
    const id = packet.messageId ?? 0;
    if (packet.qos === 0) {
      this.host.deliver(packet, channel);
      return;
    }
    if (packet.qos === 1) {
      // [MQTT-4.3.2-5] every QoS 1 PUBLISH is a new message, DUP or not.
      this.host.deliver(packet, channel);
      link.replyChannel(channel).send({ cmd: "puback", messageId: id });
      return;
    }
    const pubrec = () => {
      if (!link.isGone) link.replyChannel(channel).send({ cmd: "pubrec", messageId: id });
    };
    if (this.qos2.has(id)) {
      // A resend of a message already delivered: acknowledge, do not deliver again. [MQTT-4.3.3-9]
      pubrec();
      return;
    }
    this.qos2.add(id);
    this.host.deliver(packet, channel);
    afterMaybe(this.host.store.putIncoming(this.host.clientId, id), pubrec, (e) => this.host.reportError(e));
  }

  /** PUBREL: the QoS 2 flow ends; answer PUBCOMP (0x92 for an id we do not know, MQTT 5.0). */
  onPubrel(packet: IPubrelPacket, channel: PacketChannel, link: Link): void {
    const id = packet.messageId ?? 0;
    const known = this.qos2.delete(id);
    const pubcomp = () => {
      if (link.isGone) return;
      const p: Packet = { cmd: "pubcomp", messageId: id };
      if (!known && this.host.protocolVersion === 5) p.reasonCode = 0x92;
      link.replyChannel(channel).send(p);
    };
    if (!known) {
      pubcomp();
      return;
    }
    afterMaybe(this.host.store.deleteIncoming(this.host.clientId, id), pubcomp, (e) =>
      this.host.reportError(e),
    );
  }
}
