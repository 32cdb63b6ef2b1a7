/**
 * A session's outbound side: queueing, packet identifiers, the in-flight window and resending
 * after reconnect (MQTT 5.0 §4.3, §4.4, §4.9). It owns the {@link SessionState} the store sees
 * and talks to its current connection, if any, through {@link SessionLink}.
 */
import type { QoS } from "mqtt-packet";
import type { ClientInfo } from "./options.js";
import type { TimerHandle } from "./scheduler.js";
import type { AppMessage, OutboundRecord, SessionState, SubscriptionRecord } from "./store.js";

/** Why a message was not delivered. */
export type DropReason = "queue-full" | "expired" | "too-large" | "congestion" | "offline";

/** What a session needs from the broker. */
export interface SessionHost {
  now(): number;
  readonly maxQueuedMessages: number;
  readonly queueDropPolicy: "oldest" | "newest";
  readonly queueQos0: boolean;
  /** Records a drop (metrics, event). */
  dropped(session: Session, reason: DropReason, message: AppMessage): void;
  /** Schedules a save of the session state. */
  persist(session: Session): void;
}

/** What a session needs from its live connection. */
export interface SessionLink {
  /** Max QoS 1/2 messages in flight: min(client Receive Maximum, broker maxInflight). */
  readonly sendQuota: number;
  /** Whether the connection's write buffers are over the limit. */
  readonly congested: boolean;
  /** Streams to deliver on, grouped: one entry per distinct stream, with the route to name it. */
  groupByRoute(
    subs: readonly SubscriptionRecord[],
  ): Array<{ route: string | undefined; subs: SubscriptionRecord[] }>;
  /** Sends a PUBLISH; false if it exceeds the client's Maximum Packet Size (dropped). */
  sendPublish(rec: OutboundRecord, dup: boolean): boolean;
  /** Sends a PUBREL for an outbound QoS 2 message. */
  sendPubrel(rec: OutboundRecord): void;
}

/** A client's session: its state, plus timers and the live connection while there is one. */
export class Session {
  /** The connection currently attached, if the client is online. */
  link: SessionLink | undefined;
  /** Session expiry timer while offline. */
  expiryTimer: TimerHandle | undefined;
  /** Will delay timer while a will is pending. */
  willTimer: TimerHandle | undefined;
  /** The client as last connected (for hooks that run while it is offline, like its will). */
  info: ClientInfo | undefined;

  constructor(
    private readonly host: SessionHost,
    /** The persistent state. */
    readonly state: SessionState,
  ) {}

  /** The client identifier. */
  get clientId(): string {
    return this.state.clientId;
  }

  /**
   * Hands an application message to this session for the given matching subscriptions (one
   * client, possibly several overlapping subscriptions). Subscriptions routed to the same stream
   * share one copy with the maximum QoS [MQTT-3.3.4-2] and all their identifiers [MQTT-3.3.4-4];
   * different streams each get their own copy [MQTT-3.3.4-5].
   */
  deliver(message: AppMessage, subs: readonly SubscriptionRecord[]): void {
    const groups = this.link
      ? this.link.groupByRoute(subs)
      : [{ route: undefined, subs: subs as SubscriptionRecord[] }];
    for (const g of groups) this.enqueue(outboundFor(message, g.subs, g.route));
  }

  /** Delivers a retained message for a new subscription, with RETAIN set [MQTT-3.3.1-9]. */
  deliverRetained(message: AppMessage, sub: SubscriptionRecord): void {
    const route = this.link ? this.link.groupByRoute([sub])[0]?.route : undefined;
    const rec: OutboundRecord = {
      message,
      qos: Math.min(message.qos, sub.qos) as QoS,
      retain: true,
      subscriptionIds: sub.subscriptionId ? [sub.subscriptionId] : [],
      ...(route !== undefined ? { route } : {}),
      state: "queued",
    };
    this.enqueue(rec);
  }

  private expired(rec: OutboundRecord): boolean {
    const at = rec.message.expiresAt;
    return at !== undefined && at <= this.host.now();
  }

  /** Sends now if the window allows, else queues (bounded). */
  enqueue(rec: OutboundRecord): void {
    const link = this.link;
    if (rec.qos === 0) {
      if (link) {
        if (this.expired(rec)) this.host.dropped(this, "expired", rec.message);
        else if (link.congested) this.host.dropped(this, "congestion", rec.message);
        else if (!link.sendPublish(rec, false)) this.host.dropped(this, "too-large", rec.message);
        return;
      }
      if (!this.host.queueQos0) {
        this.host.dropped(this, "offline", rec.message);
        return;
      }
    }
    if (
      link &&
      this.state.queue.length === 0 &&
      !link.congested &&
      this.state.inflight.size < link.sendQuota
    ) {
      this.sendNew(rec, link);
      return;
    }
    this.pushQueue(rec);
  }

  private pushQueue(rec: OutboundRecord): void {
    const q = this.state.queue;
    if (q.length >= this.host.maxQueuedMessages) {
      if (this.host.queueDropPolicy === "newest" || q.length === 0) {
        this.host.dropped(this, "queue-full", rec.message);
        return;
      }
      const old = q.shift()!;
      this.host.dropped(this, "queue-full", old.message);
    }
    q.push(rec);
    this.host.persist(this);
  }

  private sendNew(rec: OutboundRecord, link: SessionLink): void {
    if (this.expired(rec)) {
      // [MQTT-3.3.2-5]: expired before onward delivery started.
      this.host.dropped(this, "expired", rec.message);
      return;
    }
    if (rec.qos === 0) {
      if (!link.sendPublish(rec, false)) this.host.dropped(this, "too-large", rec.message);
      return;
    }
    const id = this.allocatePacketId();
    if (id === undefined) {
      this.pushQueue(rec);
      return;
    }
    rec.packetId = id; // [MQTT-2.2.1-4]
    rec.state = "publish";
    this.state.inflight.set(id, rec);
    if (!link.sendPublish(rec, false)) {
      // [MQTT-3.1.2-25]: too large for the client; behave as if it was sent and acknowledged.
      this.state.inflight.delete(id);
      this.host.dropped(this, "too-large", rec.message);
    }
    this.host.persist(this);
  }

  /** An unused, non-zero packet identifier, or undefined if all 65535 are in flight. */
  private allocatePacketId(): number | undefined {
    const inflight = this.state.inflight;
    if (inflight.size >= 65535) return undefined;
    let id = this.state.nextPacketId;
    while (inflight.has(id)) id = id >= 65535 ? 1 : id + 1;
    this.state.nextPacketId = id >= 65535 ? 1 : id + 1;
    return id;
  }

  /** Sends queued messages while the window and the write buffers allow. */
  drain(): void {
    const link = this.link;
    if (!link) return;
    const q = this.state.queue;
    let changed = false;
    while (q.length > 0 && !link.congested && this.state.inflight.size < link.sendQuota) {
      const rec = q.shift()!;
      changed = true;
      this.sendNew(rec, link);
      if (this.link !== link) break;
    }
    if (changed) this.host.persist(this);
  }

  /**
   * After a reconnect with a present session: resend unacknowledged PUBLISH with DUP set and
   * PUBREL, in their original order and with their original identifiers [MQTT-4.4.0-1]
   * [MQTT-3.3.1-1] [MQTT-4.6.0-1], then drain the queue.
   */
  resume(): void {
    const link = this.link;
    if (!link) return;
    for (const rec of this.state.inflight.values()) {
      if (rec.state === "pubrel") link.sendPubrel(rec);
      else if (!link.sendPublish(rec, true)) {
        this.state.inflight.delete(rec.packetId!);
        this.host.dropped(this, "too-large", rec.message);
      }
    }
    this.drain();
  }

  /** PUBACK received. */
  puback(packetId: number): boolean {
    const rec = this.state.inflight.get(packetId);
    if (rec?.qos !== 1) return false;
    this.state.inflight.delete(packetId);
    this.host.persist(this);
    this.drain();
    return true;
  }

  /**
   * PUBREC received. Returns the record to PUBREL, or undefined if the identifier is unknown or
   * the reason code is an error (then the message is acknowledged and gone [MQTT-4.4.0-2]).
   */
  pubrec(packetId: number, reasonCode: number): OutboundRecord | undefined {
    const rec = this.state.inflight.get(packetId);
    if (rec?.qos !== 2) return undefined;
    if (reasonCode >= 0x80) {
      this.state.inflight.delete(packetId);
      this.host.persist(this);
      this.drain();
      return undefined;
    }
    rec.state = "pubrel"; // [MQTT-4.3.3-4]; never resend the PUBLISH now [MQTT-4.3.3-6]
    this.host.persist(this);
    return rec;
  }

  /** PUBCOMP received. */
  pubcomp(packetId: number): boolean {
    const rec = this.state.inflight.get(packetId);
    if (rec?.state !== "pubrel") return false;
    this.state.inflight.delete(packetId);
    this.host.persist(this);
    this.drain();
    return true;
  }
}

/** Builds the outbound copy of `message` for one group of matching subscriptions. */
export function outboundFor(
  message: AppMessage,
  subs: readonly SubscriptionRecord[],
  route: string | undefined,
): OutboundRecord {
  let qos = 0;
  let rap = false;
  const ids: number[] = [];
  for (const s of subs) {
    if (s.qos > qos) qos = s.qos;
    if (s.retainAsPublished) rap = true;
    if (s.subscriptionId) ids.push(s.subscriptionId);
  }
  return {
    message,
    qos: Math.min(message.qos, qos) as QoS, // [MQTT-3.8.4-8]
    retain: rap ? message.retain : false, // [MQTT-3.3.1-12] [MQTT-3.3.1-13]
    subscriptionIds: ids, // [MQTT-3.3.4-3]
    ...(route !== undefined ? { route } : {}),
    state: "queued",
  };
}
