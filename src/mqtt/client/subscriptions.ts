/**
 * The client's subscriptions: groups (one per `subscribe()` call or `subscriber()`, each with the
 * logical stream its SUBSCRIBE and deliveries use), SUBSCRIBE/UNSUBSCRIBE requests awaiting their
 * acks, resubscription after a reconnect, and the routing of deliveries to subscribers.
 *
 * Routing: on MQTT 5.0 each subscriber's SUBSCRIBE carries a Subscription Identifier (§3.8.2.1.2)
 * and a delivery goes to the subscribers whose identifiers it carries. A delivery without one
 * goes to the subscriber whose own stream it came on (if its filter matches); and when
 * identifiers are not in use at all (3.1.1, or a broker without them), a delivery elsewhere goes
 * to every subscriber whose filter matches its topic.
 */
import type { ISubscription, Packet } from "mqtt-packet";
import { parseSharedFilter, topicMatches } from "../topic.js";
import type { PacketChannel } from "./channel.js";
import { type Deferred, deferred } from "./deferred.js";
import { MqttUnsupportedError } from "./errors.js";
import type { Link } from "./link.js";
import type { PacketIdAllocator } from "./packet-id.js";
import type { MqttMessage, SubscribeOptions, UserProperties } from "./types.js";

/** The receiving end of a group's deliveries (a `Subscriber`). */
export interface SubscriptionSink {
  /** A delivery. */
  push(message: MqttMessage): void;
  /** The subscription failed (refused on resubscribe); no more deliveries. */
  fail(err: Error): void;
  /** The client ended; no more deliveries. */
  end(): void;
}

/** Subscriptions made together, on one logical stream. */
export interface SubGroup {
  /** Also the MQTT 5.0 Subscription Identifier when identifiers are used (1..268435455). */
  readonly id: number;
  /** Logical stream of the SUBSCRIBE and its deliveries. */
  readonly key: string;
  /** Whether the stream belongs to this group alone (ended once the group is gone). */
  readonly dedicated: boolean;
  readonly filters: Map<string, SubscribeOptions>;
  readonly sink: SubscriptionSink | undefined;
  readonly userProperties: UserProperties | undefined;
  live: boolean;
}

interface SubOp {
  packetId: number;
  kind: "subscribe" | "unsubscribe";
  group: SubGroup;
  entries: [string, SubscribeOptions][];
  /** A resubscription after a reconnect (retain handling 1 keeps retained messages from repeating). */
  resubscribe: boolean;
  sentOn: Link | undefined;
  done: Deferred<number[]>;
}

/** What the registry needs from the client. */
export interface SubscriptionsHost {
  readonly protocolVersion: 4 | 5;
  readonly ids: PacketIdAllocator;
  connectedLink(): Link | undefined;
  canQueueOffline(): boolean;
  /** The error for an operation that needs a connection the client no longer tries to make. */
  notConnected(what: string): Error;
  /** Whether Subscription Identifiers are in use on the current connection. */
  subscriptionIdsInUse(): boolean;
  /** A resubscription failed after a reconnect (no caller awaits it). */
  resubscribeFailed(group: SubGroup, codes: number[]): void;
}

const MAX_SUBSCRIPTION_ID = 268_435_455;

/** See the module comment. */
export class Subscriptions {
  private readonly groups = new Map<number, SubGroup>();
  private readonly ops = new Map<number, SubOp>();
  private nextGroupId = 1;

  constructor(private readonly host: SubscriptionsHost) {}

  /** Live groups. */
  get all(): SubGroup[] {
    return [...this.groups.values()];
  }

  /** SUBSCRIBE/UNSUBSCRIBE requests not yet acknowledged. */
  get pendingCount(): number {
    return this.ops.size;
  }

  /** A group id no live group uses. */
  private newGroupId(): number {
    for (;;) {
      const id = this.nextGroupId;
      this.nextGroupId = id >= MAX_SUBSCRIPTION_ID ? 1 : id + 1;
      if (!this.groups.has(id)) return id;
    }
  }

  /**
   * Subscribes `entries` as one group on logical stream `key` (or `key(groupId)`). Resolves with
   * the SUBACK's codes, one per entry.
   */
  subscribe(
    entries: [string, SubscribeOptions][],
    key: string | ((groupId: number) => string),
    opts: { dedicated: boolean; sink?: SubscriptionSink; userProperties?: UserProperties },
  ): { group: SubGroup; codes: Promise<number[]> } {
    const id = this.newGroupId();
    const group: SubGroup = {
      id,
      key: typeof key === "string" ? key : key(id),
      dedicated: opts.dedicated,
      filters: new Map(entries),
      sink: opts.sink,
      userProperties: opts.userProperties,
      live: true,
    };
    if (!this.host.connectedLink() && !this.host.canQueueOffline()) {
      return { group, codes: Promise.reject(this.host.notConnected("subscribing")) };
    }
    this.groups.set(id, group);
    return { group, codes: this.request("subscribe", group, entries, false) };
  }

  /** Unsubscribes `topics` wherever they are subscribed. Resolves with the UNSUBACK codes. */
  unsubscribe(topics: string[]): Promise<number[]> {
    if (!this.host.connectedLink() && !this.host.canQueueOffline())
      return Promise.reject(this.host.notConnected("unsubscribing"));
    const requests: Promise<number[]>[] = [];
    const found = new Set<string>();
    for (const g of this.groups.values()) {
      const mine = topics.filter((t) => g.filters.has(t));
      if (mine.length === 0) continue;
      for (const t of mine) found.add(t);
      requests.push(this.removeFrom(g, mine));
    }
    const rest = topics.filter((t) => !found.has(t));
    if (rest.length > 0) {
      // Not subscribed here (perhaps by an earlier process on a persistent session): ask anyway.
      const g: SubGroup = {
        id: 0,
        key: "data",
        dedicated: false,
        filters: new Map(),
        sink: undefined,
        userProperties: undefined,
        live: false,
      };
      requests.push(
        this.request(
          "unsubscribe",
          g,
          rest.map((t) => [t, {}]),
          false,
        ),
      );
    }
    return Promise.all(requests).then((all) => all.flat());
  }

  /** Unsubscribes every filter of a group (a subscriber closing). */
  close(group: SubGroup): Promise<number[]> {
    if (!group.live) return Promise.resolve([]);
    return this.removeFrom(group, [...group.filters.keys()]);
  }

  private removeFrom(g: SubGroup, topics: string[]): Promise<number[]> {
    for (const t of topics) g.filters.delete(t);
    if (g.filters.size === 0) {
      g.live = false;
      this.groups.delete(g.id);
    }
    return this.request(
      "unsubscribe",
      g,
      topics.map((t) => [t, {}]),
      false,
    );
  }

  private request(
    kind: SubOp["kind"],
    group: SubGroup,
    entries: [string, SubscribeOptions][],
    resubscribe: boolean,
  ): Promise<number[]> {
    const packetId = this.host.ids.allocate();
    if (packetId === undefined)
      return Promise.reject(new MqttUnsupportedError("all 65535 packet identifiers are in use"));
    const op: SubOp = { packetId, kind, group, entries, resubscribe, sentOn: undefined, done: deferred() };
    this.ops.set(packetId, op);
    const link = this.host.connectedLink();
    if (link) this.send(link, op);
    return op.done.promise;
  }

  private send(link: Link, op: SubOp): void {
    op.sentOn = link;
    link.send(op.group.key, this.packetOf(op));
  }

  private packetOf(op: SubOp): Packet {
    const v5 = this.host.protocolVersion === 5;
    if (op.kind === "unsubscribe")
      return { cmd: "unsubscribe", messageId: op.packetId, unsubscriptions: op.entries.map(([t]) => t) };
    const subscriptions: ISubscription[] = op.entries.map(([topic, o]) => {
      const s: ISubscription = { topic, qos: o.qos ?? 0 };
      if (v5) {
        if (o.nl) s.nl = true;
        if (o.rap) s.rap = true;
        const rh = o.rh ?? 0;
        // [MQTT-3.3.1-10] retain handling 1: no retained messages for a subscription that exists.
        s.rh = op.resubscribe && rh === 0 ? 1 : rh;
      }
      return s;
    });
    const packet: Packet = { cmd: "subscribe", messageId: op.packetId, subscriptions };
    if (v5) {
      const properties: { subscriptionIdentifier?: number; userProperties?: UserProperties } = {};
      if (op.group.sink && this.host.subscriptionIdsInUse()) properties.subscriptionIdentifier = op.group.id;
      if (op.group.userProperties) properties.userProperties = op.group.userProperties;
      if (Object.keys(properties).length > 0) packet.properties = properties;
    }
    return packet;
  }

  /**
   * A connection is up. Pending requests are sent again; live groups are subscribed again when
   * the broker has no session, or when `rebind` (multi-stream QUIC: their streams are new, and a
   * SUBSCRIBE on the new stream moves the deliveries there).
   */
  attach(link: Link, sessionPresent: boolean, rebind: boolean): void {
    if (!sessionPresent || rebind) {
      const pendingSub = new Set<SubGroup>();
      for (const op of this.ops.values()) if (op.kind === "subscribe") pendingSub.add(op.group);
      for (const g of this.groups.values()) {
        if (pendingSub.has(g) || !g.live) continue;
        this.request("subscribe", g, [...g.filters], true).then(
          (codes) => {
            if (codes.some((c) => c >= 0x80)) this.host.resubscribeFailed(g, codes);
          },
          () => {},
        );
      }
    }
    for (const op of this.ops.values()) if (op.sentOn !== link) this.send(link, op);
  }

  /** The connection is gone. */
  detach(): void {
    for (const op of this.ops.values()) op.sentOn = undefined;
  }

  /** SUBACK or UNSUBACK. */
  onAck(kind: "subscribe" | "unsubscribe", messageId: number | undefined, codes: number[]): boolean {
    const op = this.ops.get(messageId ?? 0);
    if (!op || op.kind !== kind) return false;
    this.ops.delete(op.packetId);
    this.host.ids.release(op.packetId);
    if (kind === "subscribe") {
      codes.forEach((c, i) => {
        if (c >= 0x80) op.group.filters.delete(op.entries[i]?.[0] ?? "");
      });
      if (op.group.filters.size === 0 && op.group.live) {
        op.group.live = false;
        this.groups.delete(op.group.id);
      }
    }
    if (!op.group.live && op.group.dedicated && !this.hasPendingFor(op.group))
      op.sentOn?.endChannel(op.group.key);
    op.done.resolve(codes);
    return true;
  }

  private hasPendingFor(g: SubGroup): boolean {
    for (const op of this.ops.values()) if (op.group === g) return true;
    return false;
  }

  /** Rejects every pending request and ends every subscriber (the client ended). */
  abort(err: Error): void {
    for (const op of this.ops.values()) {
      this.host.ids.release(op.packetId);
      op.done.reject(err);
    }
    this.ops.clear();
    for (const g of this.groups.values()) g.sink?.end();
  }

  /** Whether logical stream `key` still carries a subscription or a pending request. */
  usesKey(key: string): boolean {
    for (const g of this.groups.values()) if (g.key === key) return true;
    for (const op of this.ops.values()) if (op.group.key === key) return true;
    return false;
  }

  /** The subscribers a delivery goes to (see the module comment). */
  route(message: MqttMessage, channel: PacketChannel): SubscriptionSink[] {
    const sinks: SubscriptionSink[] = [];
    const idsInUse = this.host.subscriptionIdsInUse();
    const raw = message.properties?.subscriptionIdentifier;
    if (idsInUse && raw !== undefined) {
      for (const id of Array.isArray(raw) ? raw : [raw]) {
        const g = this.groups.get(id);
        if (g?.sink && !sinks.includes(g.sink)) sinks.push(g.sink);
      }
      return sinks;
    }
    const matching = [...this.groups.values()].filter(
      (g) => g.sink && [...g.filters.keys()].some((f) => matches(f, message.topic)),
    );
    const own = matching.filter((g) => g.key === channel.key);
    // With identifiers in use, a delivery without one matched no subscriber's subscription,
    // unless it came on that subscriber's own stream.
    for (const g of own.length > 0 || idsInUse ? own : matching) sinks.push(g.sink!);
    return sinks;
  }
}

function matches(filter: string, topic: string): boolean {
  const shared = parseSharedFilter(filter);
  return topicMatches(shared ? shared.filter : filter, topic);
}
