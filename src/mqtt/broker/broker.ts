/**
 * The MQTT broker: sessions, routing, retained messages, wills, listeners, metrics.
 *
 * ```ts
 * const broker = new Broker({ authenticate: ({ username }) => username === "alice" });
 * const { port } = await broker.listenTcp({ port: 1883 });
 * broker.handle(transport);          // any MqttTransport: QUIC adapter, in-memory pair...
 * broker.on("publish", (msg) => console.log(msg.topic));
 * await broker.close();
 * ```
 *
 * The broker is transport-agnostic: it serves an {@link MqttTransport} (a control stream plus
 * optional data streams), and TCP, QUIC and in-memory connections share one session and routing
 * core, so a TCP publisher reaches a QUIC subscriber and back. Time comes from the injected
 * {@link Scheduler}; persistence from the injected stores.
 *
 * Stream rules (MQTT over QUIC, DESIGN.md), decided here so that every dialect works:
 * - The control stream accepts every packet a client may send. A client that never opens a
 *   data stream is a single-stream client and needs nothing else; EMQX-style and mqtt.ai-style
 *   clients also keep SUBSCRIBE (and sometimes PUBLISH) there. So a data packet on the control
 *   stream is never an error.
 * - A data stream (later client-opened bidi stream) accepts PUBLISH, PUBACK, PUBREC, PUBREL,
 *   PUBCOMP, SUBSCRIBE and UNSUBSCRIBE only; CONNECT, PINGREQ, DISCONNECT, AUTH there are a
 *   protocol error that resets that stream (code 0x82). Data streams are read only after CONNACK.
 * - Replies go back where the request came from: PUBACK/PUBREC/PUBCOMP on the PUBLISH's or
 *   PUBREL's stream, SUBACK/UNSUBACK on the SUBSCRIBE's stream, and every delivery for a
 *   subscription on the stream that carried its SUBSCRIBE (one copy per stream when
 *   overlapping subscriptions live on different streams). If that stream is gone, the control
 *   stream. Resends after reconnect go on the control stream.
 * - A unidirectional stream carries PUBLISH only; its acks go on the control stream. Any client
 *   stream may start with an mqtt.ai flow header (0x11-0x13), which is parsed and recorded.
 * - An error on a data or uni stream (malformed, oversize, protocol) resets that stream with the
 *   reason code; errors about the whole session (Receive Maximum 0x93, quota) and any error on
 *   the control stream end the connection: DISCONNECT with the reason code (v5), then close.
 * - Traffic on any stream counts for keepalive.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { QoS } from "mqtt-packet";
import { MquicttError } from "../../errors.js";
import { listenQuic, type MqttQuicListenOptions } from "../../net/mqtt-quic.js";
import type { QuicEndpoint } from "../../net/quic.js";
import { systemScheduler } from "../../net/scheduler.js";
import { listenTcp, type TcpListener, type TcpListenOptions } from "../../net/tcp.js";
import { listenTls, type TlsListenOptions } from "../../net/tls.js";
import { type MqttError, ReasonCode } from "../errors.js";
import { isValidTopicName } from "../topic.js";
import type { MqttTransport } from "../transport.js";
import { ClientConnection, type DisconnectInfo } from "./connection.js";
import {
  type BrokerOptions,
  type ClientInfo,
  NEVER_EXPIRES,
  type ResolvedOptions,
  resolveOptions,
} from "./options.js";
import type { Scheduler } from "./scheduler.js";
import { type DropReason, Session, type SessionHost } from "./session.js";
import {
  type AppMessage,
  type Awaitable,
  MemoryRetainedStore,
  MemorySessionStore,
  type MessageProperties,
  newSessionState,
  type RetainedStore,
  type SessionState,
  type SessionStore,
  type SubscriptionRecord,
} from "./store.js";
import { SubscriptionTree } from "./subscriptions.js";

/** Counters of a running broker. */
export interface BrokerMetrics {
  /** Network connections being served (CONNECT or not). */
  readonly connections: number;
  /** Connected MQTT clients. */
  readonly clients: number;
  /** Sessions held (online and offline). */
  readonly sessions: number;
  /** Subscriptions held. */
  readonly subscriptions: number;
  /** Application messages received from clients (and `broker.publish`). */
  readonly messagesIn: number;
  /** PUBLISH packets sent to clients. */
  readonly messagesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Messages not delivered to a session, by reason. */
  readonly dropped: Readonly<Record<DropReason, number>>;
  /** Connections ended because of a client error (malformed packet, protocol error...). */
  readonly clientErrors: number;
  /** Data streams reset because of an error on them. */
  readonly streamResets: number;
  /** Retained messages not stored because `maxRetainedMessages` was reached. */
  readonly retainedRejected: number;
  /** Retained messages held. */
  readonly retained: number;
}

/** A message not delivered to a session. */
export interface DropInfo {
  readonly reason: DropReason;
  readonly clientId: string;
  readonly message: AppMessage;
}

/** Events of a {@link Broker}. */
export interface BrokerEvents {
  /** A client completed CONNECT (CONNACK 0x00 sent). */
  clientConnect: [client: ClientInfo, sessionPresent: boolean];
  /** A connected client went away. */
  clientDisconnect: [client: ClientInfo, info: DisconnectInfo];
  /** An application message was accepted for routing (`client` undefined for wills and `broker.publish`). */
  publish: [message: AppMessage, client: ClientInfo | undefined];
  subscribe: [subscriptions: SubscriptionRecord[], client: ClientInfo];
  unsubscribe: [filters: string[], client: ClientInfo];
  /** A message was dropped for one session. */
  drop: [info: DropInfo];
  /** A client broke the protocol (its connection or stream was ended); the broker goes on. */
  clientError: [error: MqttError, client: ClientInfo];
  /** A store operation failed. */
  storeError: [error: Error];
}

/** A message to publish from the broker side. */
export interface PublishOptions {
  topic: string;
  payload: Buffer | Uint8Array | string;
  qos?: QoS;
  retain?: boolean;
  properties?: MessageProperties;
  /** Message Expiry Interval, seconds. */
  messageExpiryInterval?: number;
}

/** @internal Mutable counters behind {@link BrokerMetrics}. */
export interface MetricsCounters {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: Record<DropReason, number>;
  clientErrors: number;
  streamResets: number;
  retainedRejected: number;
}

/** Runs `then` on a value or, when it is a promise, on its result (keeps the sync path sync). */
function settle<T, R>(v: Awaitable<T>, then: (v: T) => Awaitable<R>): Awaitable<R> {
  return v instanceof Promise ? v.then(then) : then(v);
}

/**
 * An MQTT 3.1.1 / 5.0 broker over any byte-stream transport. See the module comment.
 */
/** How long `close()` waits for QUIC clients' DISCONNECT to leave before closing the listeners. */
const SHUTDOWN_FLUSH_MS = 500;

export class Broker extends EventEmitter<BrokerEvents> implements SessionHost {
  /** Options with defaults applied. */
  readonly options: ResolvedOptions;
  /** The clock and timers. */
  readonly scheduler: Scheduler;
  /** @internal */
  readonly hooks: Pick<BrokerOptions, "authenticate" | "authorizePublish" | "authorizeSubscribe">;
  /** @internal */
  readonly sessions = new Map<string, Session>();
  /** @internal */
  readonly tree = new SubscriptionTree();
  /** @internal */
  readonly retained: RetainedStore;
  /** @internal */
  readonly metricsInternal: MetricsCounters = {
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: { "queue-full": 0, expired: 0, "too-large": 0, congestion: 0, offline: 0 },
    clientErrors: 0,
    streamResets: 0,
    retainedRejected: 0,
  };
  private readonly sessionStore: SessionStore;
  private readonly connections = new Set<ClientConnection>();
  private clientCount = 0;
  private retainedCount = 0;
  private readonly dirty = new Set<Session>();
  private flushScheduled = false;
  private readonly tcpListeners: TcpListener[] = [];
  private readonly quicListeners: QuicEndpoint[] = [];
  private readonly generateId: () => string;
  private startPromise: Promise<void> | undefined;
  private started = false;
  private closing = false;

  constructor(opts: BrokerOptions = {}) {
    super();
    this.options = resolveOptions(opts);
    this.scheduler = opts.scheduler ?? systemScheduler;
    this.sessionStore = opts.sessionStore ?? new MemorySessionStore();
    this.retained = opts.retainedStore ?? new MemoryRetainedStore();
    this.hooks = {
      ...(opts.authenticate ? { authenticate: opts.authenticate } : {}),
      ...(opts.authorizePublish ? { authorizePublish: opts.authorizePublish } : {}),
      ...(opts.authorizeSubscribe ? { authorizeSubscribe: opts.authorizeSubscribe } : {}),
    };
    this.generateId = opts.generateClientId ?? (() => `mquictt-${randomBytes(9).toString("base64url")}`);
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Loads persisted sessions and retained messages. Called by `listenTcp` and before the first
   * CONNECT is processed; call it yourself to fail early on a broken store. Idempotent.
   */
  start(): Promise<void> {
    this.startPromise ??= (async () => {
      const states = await this.sessionStore.loadAll();
      const now = this.scheduler.now();
      for (const state of states) {
        const session = new Session(this, state);
        this.sessions.set(state.clientId, session);
        for (const sub of state.subscriptions.values()) this.tree.add(state.clientId, sub);
        state.disconnectedAt ??= now;
        this.startOfflineTimers(session);
      }
      this.retainedCount = await this.retained.count();
      this.started = true;
    })();
    return this.startPromise;
  }

  /** @internal Resolves once `start()` has completed. */
  ready(): Awaitable<void> {
    return this.started ? undefined : this.start();
  }

  /**
   * Serves one client connection. Returns immediately; the connection lives until the client or
   * the broker ends it.
   */
  handle(transport: MqttTransport): void {
    if (this.closing) {
      transport.close(0, "broker closing");
      return;
    }
    const conn = new ClientConnection(this, transport);
    this.connections.add(conn);
  }

  /** Listens for MQTT over TCP; resolves with the bound address. */
  async listenTcp(opts: TcpListenOptions = {}): Promise<{ address: string; port: number }> {
    await this.start();
    const listener = await listenTcp(opts, (t) => this.handle(t));
    this.tcpListeners.push(listener);
    return listener.address();
  }

  /**
   * Listens for MQTT over TLS over TCP (`mqtts://`, port 8883 by default; `cert`/`key`
   * required; node:tls, TLS 1.2 and 1.3). Resolves with the bound address.
   */
  async listenTls(opts: TlsListenOptions): Promise<{ address: string; port: number }> {
    await this.start();
    const listener = await listenTls(opts, (t) => this.handle(t));
    this.tcpListeners.push(listener);
    return listener.address();
  }

  /**
   * Listens for MQTT over QUIC (UDP 14567 and ALPN "mqtt" by default; `cert`/`key` required).
   * Every stream dialect of DESIGN.md is recognised from the client's behaviour.
   */
  async listenQuic(opts: MqttQuicListenOptions): Promise<{ address: string; port: number }> {
    await this.start();
    const endpoint = await listenQuic(opts, (t) => this.handle(t));
    this.quicListeners.push(endpoint);
    const a = endpoint.address();
    return { address: a.address, port: a.port };
  }

  /**
   * Stops listening, disconnects every client (v5: DISCONNECT 0x8B Server shutting down) and
   * cancels all timers. Sessions stay in the store.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // A QUIC connection's DISCONNECT leaves before its CONNECTION_CLOSE (QuicMqttTransport.close),
    // but closing the listener ends every connection at once: wait for them first (bounded).
    const quicGone: Promise<void>[] = [];
    for (const conn of [...this.connections]) {
      if (conn.transport.kind === "quic")
        quicGone.push(new Promise((resolve) => conn.transport.on("close", () => resolve())));
      conn.disconnect(ReasonCode.ServerShuttingDown, "server shutting down");
    }
    if (quicGone.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(quicGone),
        new Promise((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_FLUSH_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    await Promise.all(this.tcpListeners.splice(0).map((l) => l.close()));
    await Promise.all(this.quicListeners.splice(0).map((l) => l.close()));
    for (const s of this.sessions.values()) {
      s.expiryTimer?.cancel();
      s.willTimer?.cancel();
    }
    await this.flush();
  }

  /** Current counters. */
  get metrics(): BrokerMetrics {
    const m = this.metricsInternal;
    return {
      connections: this.connections.size,
      clients: this.clientCount,
      sessions: this.sessions.size,
      subscriptions: this.tree.size,
      messagesIn: m.messagesIn,
      messagesOut: m.messagesOut,
      bytesIn: m.bytesIn,
      bytesOut: m.bytesOut,
      dropped: { ...m.dropped },
      clientErrors: m.clientErrors,
      streamResets: m.streamResets,
      retainedRejected: m.retainedRejected,
      retained: this.retainedCount,
    };
  }

  /** Connected clients. */
  get clients(): ClientInfo[] {
    const out: ClientInfo[] = [];
    for (const c of this.connections) if (c.phase === "connected") out.push(c.info);
    return out;
  }

  /** A session's state (for inspection and tests); undefined if there is none. */
  session(clientId: string): Readonly<SessionState> | undefined {
    return this.sessions.get(clientId)?.state;
  }

  /** Publishes a message from the broker itself (no publishing client). */
  async publish(opts: PublishOptions): Promise<void> {
    if (!isValidTopicName(opts.topic)) {
      throw new MquicttError(
        "ERR_MQTT_TOPIC_NAME_INVALID",
        `invalid topic name ${JSON.stringify(opts.topic)}`,
      );
    }
    await this.ready();
    const payload = typeof opts.payload === "string" ? Buffer.from(opts.payload) : Buffer.from(opts.payload);
    const message: AppMessage = {
      topic: opts.topic,
      payload,
      qos: opts.qos ?? 0,
      retain: opts.retain ?? false,
      ...(opts.properties ? { properties: opts.properties } : {}),
      ...(opts.messageExpiryInterval
        ? { expiresAt: this.scheduler.now() + opts.messageExpiryInterval * 1000 }
        : {}),
    };
    await this.route(message, undefined);
  }

  // ---------------------------------------------------------------- SessionHost

  now(): number {
    return this.scheduler.now();
  }
  get maxQueuedMessages(): number {
    return this.options.maxQueuedMessages;
  }
  get queueDropPolicy(): "oldest" | "newest" {
    return this.options.queueDropPolicy;
  }
  get queueQos0(): boolean {
    return this.options.queueQos0;
  }

  dropped(session: Session, reason: DropReason, message: AppMessage): void {
    this.metricsInternal.dropped[reason]++;
    if (this.listenerCount("drop") > 0) this.emit("drop", { reason, clientId: session.clientId, message });
  }

  persist(session: Session): void {
    if (session.state.expiryInterval === 0 || this.sessions.get(session.clientId) !== session) return;
    this.dirty.add(session);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const s of batch) {
      try {
        await this.sessionStore.save(s.state);
      } catch (e) {
        this.emit("storeError", e as Error);
      }
    }
  }

  private storeCall(fn: () => Awaitable<void>): void {
    try {
      const r = fn();
      if (r) r.catch((e: unknown) => this.emit("storeError", e as Error));
    } catch (e) {
      this.emit("storeError", e as Error);
    }
  }

  // ---------------------------------------------------------------- routing

  /**
   * @internal Routes an accepted application message: updates the retained store, then hands the
   * message to every session with a matching subscription (shared groups: one member each).
   * Returns the number of sessions it was handed to.
   */
  route(message: AppMessage, from: ClientInfo | undefined): Awaitable<number> {
    this.metricsInternal.messagesIn++;
    if (this.listenerCount("publish") > 0) this.emit("publish", message, from);
    if (message.retain) {
      const r = this.storeRetained(message);
      if (r) return r.then(() => this.dispatch(message));
    }
    return this.dispatch(message);
  }

  private storeRetained(message: AppMessage): Promise<void> | undefined {
    if (message.payload.length === 0) {
      // [MQTT-3.3.1-6] [MQTT-3.3.1-7]: an empty payload clears, and is never stored.
      return settle(this.retained.delete(message.topic), () => this.refreshRetainedCount()) as
        | Promise<void>
        | undefined;
    }
    const store = (): Awaitable<void> =>
      // [MQTT-3.3.1-5]: replace the retained message of the topic.
      settle(this.retained.set({ ...message, retain: true }), () => this.refreshRetainedCount());
    if (this.retainedCount < this.options.maxRetainedMessages) return store() as Promise<void> | undefined;
    // Full: replacing an existing topic is fine, a new topic is not retained.
    return settle(this.retained.match(message.topic), (list) => {
      if (list.length > 0) return store();
      this.metricsInternal.retainedRejected++;
    }) as Promise<void> | undefined;
  }

  private refreshRetainedCount(): void | Promise<void> {
    const n = this.retained.count();
    if (n instanceof Promise) {
      return n.then((v) => {
        this.retainedCount = v;
      });
    }
    this.retainedCount = n;
  }

  private dispatch(message: AppMessage): number {
    const { normal, shared } = this.tree.match(message.topic);
    if (normal.length === 0 && shared.length === 0) return 0;
    const perClient = new Map<string, SubscriptionRecord[]>();
    for (const [clientId, sub] of normal) {
      // [MQTT-3.8.3-3]: No Local.
      if (sub.noLocal && clientId === message.from) continue;
      const list = perClient.get(clientId);
      if (list) list.push(sub);
      else perClient.set(clientId, [sub]);
    }
    for (const group of shared) {
      const picked = group.pick((id) => this.sessions.get(id)?.link !== undefined);
      if (!picked) continue;
      const [clientId, sub] = picked;
      const list = perClient.get(clientId);
      if (list) list.push(sub);
      else perClient.set(clientId, [sub]);
    }
    let n = 0;
    for (const [clientId, subs] of perClient) {
      const session = this.sessions.get(clientId);
      if (!session) continue;
      session.deliver(message, subs);
      n++;
    }
    return n;
  }

  // ---------------------------------------------------------------- sessions

  /** @internal A fresh client identifier not used by any session [MQTT-3.2.2-16]. */
  assignClientId(): string {
    for (;;) {
      const id = this.generateId();
      if (!this.sessions.has(id)) return id;
    }
  }

  /** @internal Whether one more client may connect. */
  canAcceptClient(): boolean {
    return this.clientCount < this.options.maxConnections;
  }

  /**
   * @internal Binds a connection to its session after a successful CONNECT: takes over an
   * existing connection [MQTT-3.1.4-3], applies Clean Start [MQTT-3.1.2-4] [MQTT-3.1.2-5]
   * [MQTT-3.1.2-6], cancels a pending will [MQTT-3.1.3-9]. Returns Session Present.
   */
  attachSession(
    conn: ClientConnection,
    clientId: string,
    cleanStart: boolean,
    expiryInterval: number,
  ): boolean {
    let session = this.sessions.get(clientId);
    const old = session?.link as ClientConnection | undefined;
    if (old && old !== conn) {
      old.takenOver = true;
      old.disconnect(ReasonCode.SessionTakenOver, "session taken over");
    }
    if (session && cleanStart) {
      this.endSession(session);
      session = undefined;
    }
    const present = session !== undefined;
    if (session) {
      session.expiryTimer?.cancel();
      session.expiryTimer = undefined;
      if (session.willTimer) {
        session.willTimer.cancel();
        session.willTimer = undefined;
      }
      session.state.will = undefined;
      session.state.expiryInterval = expiryInterval;
      session.state.disconnectedAt = undefined;
    } else {
      session = new Session(this, newSessionState(clientId, expiryInterval));
      this.sessions.set(clientId, session);
    }
    session.link = conn;
    session.info = conn.info;
    conn.session = session;
    this.clientCount++;
    this.persist(session);
    return present;
  }

  /** @internal A connection ended (whoever ended it). */
  connectionLost(conn: ClientConnection, wasConnected: boolean, info: DisconnectInfo): void {
    this.connections.delete(conn);
    const session = conn.session;
    if (!wasConnected || !session) return;
    this.clientCount--;
    conn.session = undefined;
    if (session.link === conn) session.link = undefined;
    if (this.listenerCount("clientDisconnect") > 0) this.emit("clientDisconnect", conn.info, info);
    if (this.sessions.get(session.clientId) !== session) return;
    if (conn.willSuppressed) session.state.will = undefined; // [MQTT-3.1.2-10]
    session.state.disconnectedAt = this.scheduler.now();
    if (conn.takenOver) {
      // The new connection decides the session's fate; only the will proceeds now.
      this.startWillTimer(session);
      return;
    }
    if (this.closing) {
      // Shutting down is not the client's fault: keep its will and session for the next start.
      this.persist(session);
      return;
    }
    this.startOfflineTimers(session);
    this.persist(session);
  }

  /** Will delay and session expiry for an offline session. */
  private startOfflineTimers(session: Session): void {
    const expiry = session.state.expiryInterval;
    if (expiry === 0) {
      this.endSession(session);
      return;
    }
    this.startWillTimer(session);
    if (expiry !== NEVER_EXPIRES) {
      const since = this.scheduler.now() - (session.state.disconnectedAt ?? this.scheduler.now());
      session.expiryTimer = this.scheduler.setTimer(Math.max(0, expiry * 1000 - since), () => {
        session.expiryTimer = undefined;
        // [MQTT-4.1.0-2]: discard the session once the interval has passed.
        if (!session.link && this.sessions.get(session.clientId) === session) this.endSession(session);
      });
    }
  }

  private startWillTimer(session: Session): void {
    const will = session.state.will;
    if (!will || session.willTimer) return;
    // [MQTT-3.1.2-8]: after the Will Delay Interval, or when the session ends, whichever first.
    if (will.delayInterval === 0) {
      this.publishWill(session);
      return;
    }
    session.willTimer = this.scheduler.setTimer(will.delayInterval * 1000, () => {
      session.willTimer = undefined;
      if (!session.link) this.publishWill(session);
    });
  }

  private publishWill(session: Session): void {
    const will = session.state.will;
    if (!will) return;
    session.state.will = undefined; // [MQTT-3.1.2-10]
    session.willTimer?.cancel();
    session.willTimer = undefined;
    const message: AppMessage = {
      ...will.message,
      ...(will.expiryInterval ? { expiresAt: this.scheduler.now() + will.expiryInterval * 1000 } : {}),
    };
    const go = (): void => {
      const r = this.route(message, undefined);
      if (r instanceof Promise) r.catch((e: unknown) => this.emit("storeError", e as Error));
    };
    const auth = this.hooks.authorizePublish;
    if (!auth) {
      go();
      return;
    }
    const info: ClientInfo = session.info ?? {
      clientId: session.clientId,
      username: undefined,
      protocolVersion: 5,
      transport: { kind: "memory", remoteAddress: "" },
    };
    const allowed = (r: boolean | number): void => {
      if (r === true || r === 0) go();
    };
    try {
      const r = auth(info, message.topic, message);
      if (r instanceof Promise) r.then(allowed, () => {});
      else allowed(r);
    } catch {
      // a throwing hook refuses
    }
  }

  /** @internal Ends a session: its pending will goes out, its subscriptions and state go. */
  endSession(session: Session): void {
    session.expiryTimer?.cancel();
    session.expiryTimer = undefined;
    if (session.state.will && !session.link) this.publishWill(session);
    session.willTimer?.cancel();
    session.willTimer = undefined;
    for (const filter of session.state.subscriptions.keys()) this.tree.remove(session.clientId, filter);
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    this.dirty.delete(session);
    this.storeCall(() => this.sessionStore.delete(session.clientId));
  }

  /** @internal A client broke the protocol. */
  clientError(conn: ClientConnection, err: MqttError): void {
    this.metricsInternal.clientErrors++;
    if (this.listenerCount("clientError") > 0) this.emit("clientError", err, conn.info);
  }
}
