/**
 * Broker options, hooks and their defaults. Every resource a client can make the broker hold has
 * a bound here.
 */
import type { QoS } from "mqtt-packet";
import type { Scheduler } from "./scheduler.js";
import type { AppMessage, Awaitable, RetainedStore, SessionStore } from "./store.js";

/** Who a hook is asked about. */
export interface ClientInfo {
  readonly clientId: string;
  readonly username: string | undefined;
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  readonly protocolVersion: number;
  readonly transport: TransportInfo;
}

/** Facts about the network connection of a client. */
export interface TransportInfo {
  readonly kind: "tcp" | "quic" | "memory";
  readonly remoteAddress: string;
  /** The client's TLS certificate (DER), when the transport has one. */
  readonly peerCertificate?: Uint8Array;
  /** The negotiated ALPN protocol (QUIC: "mqtt" or "MQTT-next"). */
  readonly alpn?: string;
}

/** What `authenticate` is given. */
export interface AuthenticateContext {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  readonly protocolVersion: number;
  readonly transport: TransportInfo;
}

/**
 * The answer of a hook: true/false, or an MQTT 5 reason code (0x00 accept; 0x80 and above
 * refuse with that code; for subscriptions 0x00-0x02 grant that QoS).
 */
export type HookResult = boolean | number;

/** Broker options. */
export interface BrokerOptions {
  /** Clock and timers (default: the system clock). Tests pass a ManualScheduler. */
  scheduler?: Scheduler;
  /** Session persistence (default: in memory). */
  sessionStore?: SessionStore;
  /** Retained message persistence (default: in memory). */
  retainedStore?: RetainedStore;

  /** Accepts or refuses a CONNECT (default: accept everyone). Refusal codes: 0x86, 0x87, 0x8A... */
  authenticate?: (ctx: AuthenticateContext) => Awaitable<HookResult>;
  /** May this client publish to this topic? Refused QoS 1/2 get 0x87 in PUBACK/PUBREC (v5). */
  authorizePublish?: (client: ClientInfo, topic: string, message: AppMessage) => Awaitable<HookResult>;
  /** May this client subscribe to this filter? A number 0-2 grants that QoS. */
  authorizeSubscribe?: (client: ClientInfo, filter: string, qos: QoS) => Awaitable<HookResult>;

  /** Largest packet accepted from a client, bytes (default 1 MiB; advertised in CONNACK v5). */
  maxPacketSize?: number;
  /** Receive Maximum advertised to v5 clients: their unacknowledged QoS 1/2 PUBLISH (default 256). */
  receiveMaximum?: number;
  /** Topic Alias Maximum advertised to v5 clients (default 64; 0 disables inbound aliases). */
  topicAliasMaximum?: number;
  /** Outbound QoS 1/2 messages in flight per client, on top of the client's Receive Maximum (default 256). */
  maxInflight?: number;
  /** Messages queued per session while offline or out of quota (default 1000). */
  maxQueuedMessages?: number;
  /** Which message a full queue drops (default "oldest"). */
  queueDropPolicy?: "oldest" | "newest";
  /** Queue QoS 0 messages for offline persistent sessions too (default false). */
  queueQos0?: boolean;
  /** Bytes written to a client's streams and not yet taken by the transport, beyond which QoS 0
   * messages are dropped and QoS 1/2 wait in the queue (default 4 MiB). */
  maxPendingBytes?: number;
  /** Subscriptions per session (default 1000); more get 0x97 Quota exceeded. */
  maxSubscriptionsPerClient?: number;
  /** Retained messages held (default 100 000); new topics beyond are not retained. */
  maxRetainedMessages?: number;
  /** Upper bound for Session Expiry Interval, seconds (default 0xFFFFFFFF, no bound). */
  maxSessionExpiryInterval?: number;
  /** Session expiry for MQTT 3.1.1 clients with clean session 0, seconds (default never). */
  persistentSessionExpiry?: number;
  /** Server Keep Alive sent to v5 clients, seconds (default: use the client's value). */
  serverKeepAlive?: number;
  /** Time allowed between the network connection and CONNECT, ms (default 10 000). */
  connectTimeout?: number;
  /** Connected clients allowed at once (default unbounded); more get 0x89 Server busy. */
  maxConnections?: number;
  /** Client-opened streams per connection (default 256); more are reset. */
  maxStreamsPerConnection?: number;
  /**
   * After a client's DISCONNECT, how long (ms) the broker keeps reading the connection's other
   * streams for packets the client sent before it (QUIC streams are not ordered with each other),
   * at most; it closes sooner once every data stream the client opened has ended (default 250).
   */
  disconnectDrainTimeout?: number;
  /** Makes Assigned Client Identifiers (default: "mquictt-" + random). */
  generateClientId?: () => string;
}

/** Options with every default applied. */
export interface ResolvedOptions {
  readonly maxPacketSize: number;
  readonly receiveMaximum: number;
  readonly topicAliasMaximum: number;
  readonly maxInflight: number;
  readonly maxQueuedMessages: number;
  readonly queueDropPolicy: "oldest" | "newest";
  readonly queueQos0: boolean;
  readonly maxPendingBytes: number;
  readonly maxSubscriptionsPerClient: number;
  readonly maxRetainedMessages: number;
  readonly maxSessionExpiryInterval: number;
  readonly persistentSessionExpiry: number;
  readonly serverKeepAlive: number | undefined;
  readonly connectTimeout: number;
  readonly maxConnections: number;
  readonly maxStreamsPerConnection: number;
  readonly disconnectDrainTimeout: number;
}

/** Session Expiry Interval meaning "never". */
export const NEVER_EXPIRES = 0xffffffff;

/** Applies defaults. */
export function resolveOptions(o: BrokerOptions): ResolvedOptions {
  return {
    maxPacketSize: o.maxPacketSize ?? 1024 * 1024,
    receiveMaximum: clamp(o.receiveMaximum ?? 256, 1, 65535),
    topicAliasMaximum: clamp(o.topicAliasMaximum ?? 64, 0, 65535),
    maxInflight: clamp(o.maxInflight ?? 256, 1, 65535),
    maxQueuedMessages: Math.max(0, o.maxQueuedMessages ?? 1000),
    queueDropPolicy: o.queueDropPolicy ?? "oldest",
    queueQos0: o.queueQos0 ?? false,
    maxPendingBytes: o.maxPendingBytes ?? 4 * 1024 * 1024,
    maxSubscriptionsPerClient: o.maxSubscriptionsPerClient ?? 1000,
    maxRetainedMessages: o.maxRetainedMessages ?? 100_000,
    maxSessionExpiryInterval: o.maxSessionExpiryInterval ?? NEVER_EXPIRES,
    persistentSessionExpiry: o.persistentSessionExpiry ?? NEVER_EXPIRES,
    serverKeepAlive: o.serverKeepAlive,
    connectTimeout: o.connectTimeout ?? 10_000,
    maxConnections: o.maxConnections ?? Number.POSITIVE_INFINITY,
    maxStreamsPerConnection: o.maxStreamsPerConnection ?? 256,
    disconnectDrainTimeout: Math.max(0, o.disconnectDrainTimeout ?? 250),
  };
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, Math.floor(v)));
}
