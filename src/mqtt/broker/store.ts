/**
 * Persistence: what a session and the retained messages look like at rest, the two store
 * interfaces, and the in-memory stores used by default.
 *
 * The broker keeps every session it knows in memory while it runs (routing needs the
 * subscriptions) and treats a {@link SessionStore} as write-behind durability: `loadAll()` once
 * at start, `save(state)` after each batch of changes (coalesced per microtask), `delete()` when a
 * session ends. Every method may return a promise. A durable store must copy or serialize the
 * state inside `save` (the broker goes on mutating the live object), and can diff successive
 * saves of the same client if it wants incremental writes.
 */
import type { QoS, UserProperties } from "mqtt-packet";
import { topicMatches } from "../topic.js";

/** A value or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/** PUBLISH properties that travel with an application message (MQTT 5.0 §3.3.2.3). */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

/** An application message as the broker stores and routes it. */
export interface AppMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties?: MessageProperties;
  /** Absolute expiry time on the broker's scheduler clock (ms); undefined = never. */
  readonly expiresAt?: number;
  /** The publishing client's id (for No Local), if a client published it. */
  readonly from?: string;
}

/** A subscription of a session (MQTT 5.0 §3.8.3.1). */
export interface SubscriptionRecord {
  /** The filter as subscribed, `$share/group/...` included. */
  readonly filter: string;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  readonly subscriptionId?: number;
}

/** An outbound message of a session: queued, or in flight with a packet identifier. */
export interface OutboundRecord {
  readonly message: AppMessage;
  /** Delivery QoS: min(message QoS, granted QoS). */
  readonly qos: QoS;
  /** RETAIN flag to send (Retain As Published, or retained-on-subscribe). */
  readonly retain: boolean;
  /** Subscription identifiers to send. */
  readonly subscriptionIds: readonly number[];
  /** The subscription filter whose stream carries it (multi-stream routing); none = control. */
  readonly route?: string;
  /** Packet identifier once sent. */
  packetId?: number;
  /** Where a QoS 1/2 exchange stands: PUBLISH sent (awaiting PUBACK/PUBREC) or PUBREL sent. */
  state: "queued" | "publish" | "pubrel";
}

/** A Will Message (MQTT 5.0 §3.1.2.5, §3.1.3.2). */
export interface WillRecord {
  readonly message: AppMessage;
  /** Will Delay Interval in seconds (0 for MQTT 3.1.1). */
  readonly delayInterval: number;
  /** Message Expiry Interval in seconds, if the will had one (applied when published). */
  readonly expiryInterval?: number;
}

/** A session at rest (MQTT 5.0 §4.1: the server's Session State). */
export interface SessionState {
  readonly clientId: string;
  /** Session Expiry Interval in seconds; 0xFFFFFFFF = never expires. */
  expiryInterval: number;
  readonly subscriptions: Map<string, SubscriptionRecord>;
  /** QoS 1/2 messages sent and not yet completely acknowledged, in send order, by packet id. */
  readonly inflight: Map<number, OutboundRecord>;
  /** Messages waiting to be sent (client offline, or its receive quota exhausted). */
  readonly queue: OutboundRecord[];
  /** Packet identifiers of QoS 2 PUBLISH received and PUBREC'd, awaiting PUBREL. */
  readonly inboundQos2: Set<number>;
  /** The Will Message of the last connection, until published or cleared. */
  will?: WillRecord;
  /** Scheduler time the client disconnected, while it is offline. */
  disconnectedAt?: number;
  /** Next packet identifier to try. */
  nextPacketId: number;
}

/** A fresh, empty session state. */
export function newSessionState(clientId: string, expiryInterval: number): SessionState {
  return {
    clientId,
    expiryInterval,
    subscriptions: new Map(),
    inflight: new Map(),
    queue: [],
    inboundQos2: new Set(),
    nextPacketId: 1,
  };
}

/** Where sessions persist. */
export interface SessionStore {
  /** Every stored session (called once when the broker starts). */
  loadAll(): Awaitable<Iterable<SessionState>>;
  /** Stores (replaces) a session. The broker keeps mutating `state` afterwards. */
  save(state: SessionState): Awaitable<void>;
  /** Removes a session. */
  delete(clientId: string): Awaitable<void>;
}

/** Where retained messages persist. */
export interface RetainedStore {
  /** Stores or replaces the retained message of `message.topic`. */
  set(message: AppMessage): Awaitable<void>;
  /** Removes the retained message of a topic. */
  delete(topic: string): Awaitable<void>;
  /** Retained messages whose topic matches `filter` (a plain, non-shared filter). */
  match(filter: string): Awaitable<AppMessage[]>;
  /** Number of retained messages. */
  count(): Awaitable<number>;
}

/** Keeps sessions in a Map (no durability; the default). */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, SessionState>();

  loadAll(): Iterable<SessionState> {
    return [...this.sessions.values()];
  }

  save(state: SessionState): void {
    this.sessions.set(state.clientId, state);
  }

  delete(clientId: string): void {
    this.sessions.delete(clientId);
  }
}

interface RetainedNode {
  readonly children: Map<string, RetainedNode>;
  message?: AppMessage;
}

/** Retained messages in a topic-level tree, so `match` walks only the levels a filter names. */
export class MemoryRetainedStore implements RetainedStore {
  private readonly root: RetainedNode = { children: new Map() };
  private size = 0;

  set(message: AppMessage): void {
    let node = this.root;
    for (const level of message.topic.split("/")) {
      let child = node.children.get(level);
      if (!child) {
        child = { children: new Map() };
        node.children.set(level, child);
      }
      node = child;
    }
    if (!node.message) this.size++;
    node.message = message;
  }

  delete(topic: string): void {
    const path: RetainedNode[] = [this.root];
    const levels = topic.split("/");
    for (const level of levels) {
      const child = path[path.length - 1]!.children.get(level);
      if (!child) return;
      path.push(child);
    }
    const leaf = path[path.length - 1]!;
    if (!leaf.message) return;
    leaf.message = undefined;
    this.size--;
    // Prune empty branches.
    for (let i = levels.length; i > 0; i--) {
      const node = path[i]!;
      if (node.message || node.children.size > 0) break;
      path[i - 1]!.children.delete(levels[i - 1]!);
    }
  }

  match(filter: string): AppMessage[] {
    const out: AppMessage[] = [];
    const levels = filter.split("/");
    const walk = (node: RetainedNode, i: number): void => {
      if (i === levels.length) {
        if (node.message) out.push(node.message);
        return;
      }
      const level = levels[i]!;
      if (level === "#") {
        collect(node, i === 0);
        return;
      }
      if (level === "+") {
        for (const [name, child] of node.children) {
          if (i === 0 && name.startsWith("$")) continue; // [MQTT-4.7.2-1]
          walk(child, i + 1);
        }
        return;
      }
      const child = node.children.get(level);
      if (child) walk(child, i + 1);
    };
    const collect = (node: RetainedNode, atRoot: boolean): void => {
      if (node.message && !atRoot) out.push(node.message);
      for (const [name, child] of node.children) {
        if (atRoot && name.startsWith("$")) continue; // [MQTT-4.7.2-1]
        collectAll(child);
      }
    };
    const collectAll = (node: RetainedNode): void => {
      if (node.message) out.push(node.message);
      for (const child of node.children.values()) collectAll(child);
    };
    walk(this.root, 0);
    return out.filter((m) => topicMatches(filter, m.topic));
  }

  count(): number {
    return this.size;
  }
}
