/**
 * Outgoing PUBLISH flows (MQTT 5.0 §4.3): the queue of messages not yet sent, the in-flight QoS 1/2
 * messages of the session, the send quota of the broker's Receive Maximum (§4.9), and the
 * resend of unacknowledged messages after a reconnect [MQTT-4.4.0-1].
 *
 * A message is given a packet identifier, recorded in the session store and counted against the
 * quota only when it is first sent; until then it waits in the queue (which is the offline queue
 * while there is no connection).
 */
import type {
  IPubackPacket,
  IPubcompPacket,
  IPublishPacket,
  IPubrecPacket,
  IPubrelPacket,
  Packet,
} from "mqtt-packet";
import type { PacketChannel } from "./channel.js";
import { afterMaybe, type Deferred, deferred } from "./deferred.js";
import { MqttAckError, MqttOfflineQueueFullError } from "./errors.js";
import type { Link } from "./link.js";
import type { PacketIdAllocator } from "./packet-id.js";
import type { ClientSessionStore, PublishProperties, StoredPublish } from "./session-store.js";
import type { PublishResult, QoS } from "./types.js";

/** A message to publish. */
export interface OutgoingMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: PublishProperties;
}

interface Flight {
  rec: StoredPublish;
  /** Logical stream. */
  key: string;
  /** The link the current phase was sent on (undefined: to be (re)sent). */
  sentOn: Link | undefined;
  /** Whether the PUBLISH went out at least once (a resend carries DUP). */
  everSent: boolean;
  done: Deferred<PublishResult> | undefined;
}

interface Queued {
  msg: OutgoingMessage;
  key: string;
  done: Deferred<PublishResult | undefined>;
}

/** What the outbox needs from the client. */
export interface OutboxHost {
  readonly clientId: string;
  readonly store: ClientSessionStore;
  readonly ids: PacketIdAllocator;
  readonly protocolVersion: 4 | 5;
  /** The connected link (after CONNACK), if any. */
  connectedLink(): Link | undefined;
  /** Whether a publish while offline waits for a reconnect (false: it fails at once). */
  canQueueOffline(): boolean;
  /** The error for an operation that needs a connection the client no longer tries to make. */
  notConnected(what: string): Error;
  /** Reports an error nobody awaits (a store failure for a restored message). */
  reportError(err: Error): void;
}

const DEFAULT_RECEIVE_MAXIMUM = 65535;

/** See the module comment. */
export class Outbox {
  private readonly flights = new Map<number, Flight>();
  private queue: Queued[] = [];
  private receiveMaximum = DEFAULT_RECEIVE_MAXIMUM;
  private idleWaiters: { key: string | undefined; resolve: () => void }[] = [];

  constructor(
    private readonly host: OutboxHost,
    /** Most messages the offline queue holds. */
    private readonly offlineLimit: number,
  ) {}

  /** Restores in-flight messages from a stored session (they count as sent: a resend has DUP). */
  restore(messages: StoredPublish[]): void {
    for (const rec of messages) {
      this.host.ids.reserve(rec.packetId);
      this.flights.set(rec.packetId, {
        rec: { ...rec },
        key: rec.stream ?? "data",
        sentOn: undefined,
        everSent: true,
        done: undefined,
      });
    }
  }

  /** Messages in flight (sent, not completely acknowledged). */
  get inflightCount(): number {
    return this.flights.size;
  }

  /** Messages waiting to be sent (the offline queue while disconnected). */
  get queuedCount(): number {
    return this.queue.length;
  }

  /** Queues or sends a message on logical stream `key`. */
  publish(msg: OutgoingMessage, key: string): Promise<PublishResult | undefined> {
    const link = this.host.connectedLink();
    if (!link) {
      if (!this.host.canQueueOffline())
        return Promise.reject(this.host.notConnected(`publishing to ${msg.topic}`));
      if (this.queue.length >= this.offlineLimit)
        return Promise.reject(new MqttOfflineQueueFullError(this.offlineLimit));
    }
    const done = deferred<PublishResult | undefined>();
    this.queue.push({ msg, key, done });
    if (link) this.pump();
    return done.promise;
  }

  /**
   * A new connection is up. Without a session on the broker, acknowledged-by-PUBREC messages are
   * complete (the broker took ownership) and the others are sent again as new messages
   * [MQTT-3.2.2-5]; with one, they are resent with DUP and PUBRELs resent [MQTT-4.4.0-1].
   */
  attach(receiveMaximum: number | undefined, sessionPresent: boolean): void {
    this.receiveMaximum = receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM;
    const owned: Flight[] = [];
    for (const f of this.flights.values()) {
      f.sentOn = undefined;
      if (sessionPresent) continue;
      if (f.rec.phase === "pubrel") owned.push(f);
      else f.everSent = false;
    }
    for (const f of owned) this.complete(f, 0, undefined, false);
    this.pump();
  }

  /** The connection is gone: nothing is in flight on a link any more. */
  detach(): void {
    for (const f of this.flights.values()) f.sentOn = undefined;
  }

  /** Sends what the quota allows: pending resends first (in their original order), then the queue. */
  pump(): void {
    const link = this.host.connectedLink();
    if (!link) return;
    let inflight = 0;
    for (const f of this.flights.values()) if (f.sentOn === link) inflight++;
    for (const f of this.flights.values()) {
      if (f.sentOn === link) continue;
      // [MQTT-3.3.4-7] no more than Receive Maximum unacknowledged QoS 1/2 PUBLISHes.
      if (inflight >= this.receiveMaximum) return;
      this.sendFlight(link, f);
      inflight++;
    }
    while (this.queue.length > 0) {
      const q = this.queue[0];
      if (q.msg.qos === 0) {
        this.queue.shift();
        link.send(q.key, this.publishPacket(q.msg, 0, false));
        q.done.resolve(undefined);
        continue;
      }
      if (inflight >= this.receiveMaximum) break;
      const id = this.host.ids.allocate();
      if (id === undefined) break;
      this.queue.shift();
      this.startFlight(link, q, id);
      inflight++;
    }
    this.checkIdle();
  }

  private startFlight(link: Link, q: Queued, packetId: number): void {
    const rec: StoredPublish = {
      packetId,
      topic: q.msg.topic,
      payload: q.msg.payload,
      qos: q.msg.qos as 1 | 2,
      retain: q.msg.retain,
      phase: "publish",
      stream: q.key,
      ...(q.msg.properties ? { properties: q.msg.properties } : {}),
    };
    const f: Flight = { rec, key: q.key, sentOn: link, everSent: false, done: deferred() };
    f.done!.promise.then(q.done.resolve, q.done.reject);
    this.flights.set(packetId, f);
    // Record before the first transmission, so what the store holds is what must be resent.
    afterMaybe(
      this.host.store.putOutgoing(this.host.clientId, rec),
      () => {
        if (f.sentOn === link && this.flights.get(packetId) === f) this.transmit(link, f);
      },
      (e) => this.fail(f, e),
    );
  }

  private sendFlight(link: Link, f: Flight): void {
    f.sentOn = link;
    this.transmit(link, f);
  }

  private transmit(link: Link, f: Flight): void {
    if (f.rec.phase === "pubrel") {
      link.send(f.key, { cmd: "pubrel", messageId: f.rec.packetId });
      return;
    }
    // [MQTT-3.3.1-1] DUP on every re-delivery attempt.
    link.send(f.key, this.publishPacket(f.rec, f.rec.packetId, f.everSent));
    f.everSent = true;
  }

  private publishPacket(msg: OutgoingMessage, messageId: number, dup: boolean): IPublishPacket {
    const p: IPublishPacket = {
      cmd: "publish",
      topic: msg.topic,
      payload: msg.payload,
      qos: msg.qos,
      retain: msg.retain,
      dup,
    };
    if (msg.qos > 0) p.messageId = messageId;
    if (msg.properties && this.host.protocolVersion === 5) p.properties = msg.properties;
    return p;
  }

  /** PUBACK: a QoS 1 flow is complete. */
  onPuback(packet: IPubackPacket): void {
    const f = this.flights.get(packet.messageId ?? 0);
    if (f?.rec.qos !== 1) return;
    this.complete(f, packet.reasonCode ?? 0, packet.properties?.reasonString);
  }

  /**
   * PUBREC: the broker owns the QoS 2 message; answer PUBREL on the stream it came on. A failure
   * reason code ends the flow [MQTT-4.3.3-4]. An unknown id is answered with PUBREL 0x92.
   */
  onPubrec(packet: IPubrecPacket, channel: PacketChannel, link: Link): void {
    const id = packet.messageId ?? 0;
    const f = this.flights.get(id);
    const code = packet.reasonCode ?? 0;
    if (f?.rec.qos !== 2) {
      if (code < 0x80) {
        const rel: IPubrelPacket = { cmd: "pubrel", messageId: id };
        if (this.host.protocolVersion === 5) rel.reasonCode = 0x92;
        link.replyChannel(channel).send(rel as Packet);
      }
      return;
    }
    if (code >= 0x80) {
      this.complete(f, code, packet.properties?.reasonString);
      return;
    }
    if (f.rec.phase === "publish") {
      f.rec.phase = "pubrel";
      afterMaybe(
        this.host.store.putOutgoing(this.host.clientId, f.rec),
        () => {},
        (e) => this.host.reportError(e),
      );
    }
    f.sentOn = link;
    link.replyChannel(channel).send({ cmd: "pubrel", messageId: id });
  }

  /**
   * PUBCOMP: a QoS 2 flow is complete. Its only failure code, 0x92 Packet Identifier not found,
   * answers a PUBREL resent after the broker had already completed the flow: the broker took
   * ownership of the message at PUBREC (§4.3.3), so the publish succeeded either way.
   */
  onPubcomp(packet: IPubcompPacket): void {
    const f = this.flights.get(packet.messageId ?? 0);
    if (f?.rec.phase !== "pubrel") return;
    const code = packet.reasonCode ?? 0;
    this.complete(f, code, packet.properties?.reasonString, true, code === 0x92);
  }

  private complete(
    f: Flight,
    reasonCode: number,
    reasonString?: string,
    pump = true,
    delivered = false,
  ): void {
    const id = f.rec.packetId;
    if (this.flights.get(id) !== f) return;
    this.flights.delete(id);
    this.host.ids.release(id);
    afterMaybe(
      this.host.store.deleteOutgoing(this.host.clientId, id),
      () => {},
      (e) => this.host.reportError(e),
    );
    if (reasonCode >= 0x80 && !delivered)
      f.done?.reject(
        new MqttAckError(
          "ERR_MQTT_PUBLISH_REFUSED",
          reasonCode,
          `the publish to ${f.rec.topic}`,
          reasonString,
        ),
      );
    else f.done?.resolve({ messageId: id, reasonCode });
    if (pump) this.pump();
    this.checkIdle();
  }

  private fail(f: Flight, err: Error): void {
    const id = f.rec.packetId;
    if (this.flights.get(id) !== f) return;
    this.flights.delete(id);
    this.host.ids.release(id);
    f.done?.reject(err);
    this.pump();
  }

  /** Rejects everything pending (the client ended); the session store keeps in-flight messages. */
  abort(err: Error): void {
    for (const q of this.queue.splice(0)) q.done.reject(err);
    for (const f of this.flights.values()) f.done?.reject(err);
    this.checkIdle(true);
  }

  /** Rejects queued (never sent) messages: used when the client will not reconnect. */
  rejectQueued(err: Error): void {
    for (const q of this.queue.splice(0)) q.done.reject(err);
    this.checkIdle();
  }

  /** Resolves when nothing of logical stream `key` (or nothing at all) is queued or in flight. */
  idle(key?: string): Promise<void> {
    if (this.isIdle(key)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push({ key, resolve }));
  }

  private isIdle(key: string | undefined): boolean {
    if (key === undefined) return this.flights.size === 0 && this.queue.length === 0;
    for (const f of this.flights.values()) if (f.key === key) return false;
    return !this.queue.some((q) => q.key === key);
  }

  /** Whether logical stream `key` has a message in flight. */
  hasInflight(key: string): boolean {
    for (const f of this.flights.values()) if (f.key === key) return true;
    return false;
  }

  private checkIdle(all = false): void {
    if (this.idleWaiters.length === 0) return;
    const waiting = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiting) {
      if (all || this.isIdle(w.key)) w.resolve();
      else this.idleWaiters.push(w);
    }
  }
}
