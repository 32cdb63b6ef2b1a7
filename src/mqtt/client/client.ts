/**
 * The MQTT client's public face. It owns the session (outbox, inbox, subscriptions), which
 * outlives connections, and offers the API in two shapes: `publisher()`/`subscriber()` with
 * streams of their own, and MQTT.js's `publish`/`subscribe`/`unsubscribe`/`on("message")`/`end`.
 * Connections themselves (attempts, keepalive, reconnect) are the `Connector`'s.
 */
import { EventEmitter } from "node:events";
import type { IConnackPacket, IPublishPacket } from "mqtt-packet";
import type { PacketChannel } from "./channel.js";
import { Connector } from "./connector.js";
import type { MigrateOptions } from "./dial.js";
import { MqttAckError, MqttClientClosedError, MqttNotConnectedError } from "./errors.js";
import type { Callback, MqttClientEvents } from "./events.js";
import type { ConnackInfo } from "./handshake.js";
import { Inbox } from "./inbox.js";
import type { Link } from "./link.js";
import { type ConnectOptions, type ResolvedOptions, resolveOptions, toBuffer } from "./options.js";
import { Outbox } from "./outbox.js";
import { PacketIdAllocator } from "./packet-id.js";
import { Publisher } from "./publisher.js";
import type { ClientSessionStore } from "./session-store.js";
import { StreamKeys } from "./stream-keys.js";
import { Subscriber } from "./subscriber.js";
import { type SubGroup, Subscriptions } from "./subscriptions.js";
import { sleep } from "./timers.js";
import type {
  MqttMessage,
  Payload,
  PublishOptions,
  PublishResult,
  SubscribeOptions,
  SubscriberOptions,
  SubscriptionGrant,
  UserProperties,
} from "./types.js";
import { type BrokerAddress, parseBrokerUrl } from "./url.js";
import { checkFilters, checkPacketSize, checkPublish } from "./validate.js";

export type { Callback, MqttClientEvents };

/**
 * An MQTT client over QUIC or TCP. Create it with `connect()` (resolves once connected) or
 * `createClient()` (returns at once, connects in the background, MQTT.js style).
 */
export class MqttClient extends EventEmitter<MqttClientEvents> {
  /** The options with their defaults. */
  readonly options: ResolvedOptions;
  /** The broker address parsed from the URL. */
  readonly address: BrokerAddress;
  /** @internal */ readonly outbox: Outbox;
  /** @internal */ readonly inbox: Inbox;
  /** @internal */ readonly subscriptions: Subscriptions;
  private readonly connector: Connector;
  private readonly keys: StreamKeys;
  private readonly subscriberGroups = new WeakMap<Subscriber, SubGroup>();
  private endPromise: Promise<void> | undefined;

  constructor(url: string | URL, opts: ConnectOptions = {}) {
    super();
    this.address = parseBrokerUrl(url);
    this.options = resolveOptions(opts);
    this.keys = new StreamKeys(this.options.streamMode, this.options.perTopicStreamLimit);
    const ids = new PacketIdAllocator();
    const host = {
      clientId: this.options.clientId,
      store: this.options.store,
      ids,
      protocolVersion: this.options.protocolVersion,
      connectedLink: () => this.connector.current,
      canQueueOffline: () => this.connector.mayQueue,
      notConnected: (what: string) => this.connector.notConnected(what),
      reportError: (e: Error) => this.emitError(e),
    };
    this.outbox = new Outbox(host, this.options.offlineQueueLimit);
    this.inbox = new Inbox({ ...host, deliver: (p, ch) => this.deliver(p, ch) });
    this.subscriptions = new Subscriptions({
      ...host,
      subscriptionIdsInUse: () => this.connector.connackInfo?.subscriptionIdentifiersAvailable === true,
      resubscribeFailed: (g, codes) => this.resubscribeFailed(g, codes),
    });
    this.connector = new Connector({
      options: this.options,
      address: this.address,
      outbox: this.outbox,
      inbox: this.inbox,
      subscriptions: this.subscriptions,
      loaded: this.loadSession(),
      events: this,
      emitError: (e) => this.emitError(e),
    });
  }

  /** The client identifier (keys the session store). */
  get clientId(): string {
    return this.options.clientId;
  }

  /** The session store. */
  get store(): ClientSessionStore {
    return this.options.store;
  }

  /** Whether a connection is up (CONNACK received). */
  get connected(): boolean {
    return this.connector.connected;
  }

  /** Whether the client is between connections and will try again. */
  get reconnecting(): boolean {
    return this.connector.reconnecting;
  }

  /** Whether `end()` was called. */
  get disconnecting(): boolean {
    return this.connector.ending;
  }

  /** What the broker granted on the current connection (limits, session present). */
  get connackInfo(): ConnackInfo | undefined {
    return this.connector.connackInfo;
  }

  /**
   * How the current QUIC connection carries data: the ALPN the broker chose ("mqtt",
   * "MQTT-next") and the data stream dialect in use ("bidi", "uni", or "none" in single-stream
   * mode and over TCP). Undefined between connections.
   */
  get quicDialect(): { alpn: string | undefined; dataStreams: "bidi" | "uni" | "none" } | undefined {
    const link = this.connector.anyLink;
    if (!link) return undefined;
    return { alpn: link.alpn, dataStreams: link.multiStream ? link.dataStreams : "none" };
  }

  /**
   * MQTT over QUIC: moves the connection to a new local UDP socket, on a new port or on the
   * address of another network interface (`host`) after a network change, without reconnecting:
   * session, streams and messages in flight carry on, and the broker follows the connection once
   * it has validated the new address (QUIC connection migration, RFC 9000 §9.2). Rejects with
   * `MqttNotConnectedError` while offline, `ERR_MQTT_MIGRATION` over TCP, and `ERR_QUIC_MIGRATION`
   * when the QUIC connection cannot migrate (handshake not confirmed, the broker disabled active
   * migration or gave no spare connection ID); the connection is unchanged then.
   */
  async migrate(opts: MigrateOptions = {}): Promise<void> {
    const link = this.connector.current;
    if (!link) throw new MqttNotConnectedError("migrate()");
    await link.migrate(opts);
  }

  /** The transport of the current connection ("quic", "tcp", "tls"), if any. */
  get transportKind(): string | undefined {
    return this.connector.anyLink?.kind;
  }

  /** @internal The connected link (tests inspect streams through it). */
  get currentLink(): Link | undefined {
    return this.connector.current;
  }

  private async loadSession(): Promise<void> {
    const { store, clientId, clean } = this.options;
    if (clean) {
      await store.clear(clientId);
      return;
    }
    const snap = await store.load(clientId);
    if (!snap) return;
    this.outbox.restore(snap.outgoing);
    this.inbox.restore(snap.incoming);
  }

  private emitError(err: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }

  /**
   * @internal First connection (see `connect` and `createClient`): with `failFast` a failure ends
   * the client, otherwise it goes to "error" and the reconnect policy.
   */
  start(failFast: boolean): Promise<IConnackPacket> {
    return this.connector.start(failFast);
  }

  /**
   * Ends the client: waits (up to `endTimeout`) for in-flight messages, sends DISCONNECT (no will
   * is published) and closes the connection. `force` skips the wait. Pending operations reject
   * with ERR_MQTT_CLIENT_CLOSED; subscribers finish. MQTT.js signature; also returns a promise.
   */
  end(
    force?: boolean | Callback<void>,
    opts?: { reasonCode?: number } | Callback<void>,
    cb?: Callback<void>,
  ): Promise<void> {
    const callback = [force, opts, cb].find((x) => typeof x === "function") as Callback<void> | undefined;
    const f = typeof force === "boolean" ? force : false;
    const o = typeof opts === "object" ? opts : {};
    this.endPromise ??= this.doEnd(f, o.reasonCode ?? 0);
    if (callback) this.endPromise.then(() => callback(undefined), callback);
    return this.endPromise;
  }

  private async doEnd(force: boolean, reasonCode: number): Promise<void> {
    const wasConnected = this.connector.connected;
    const link = this.connector.beginEnd();
    const { endTimeout, scheduler } = this.options;
    if (wasConnected && link && !force) {
      const t = sleep(scheduler, endTimeout);
      await Promise.race([this.outbox.idle(), t.promise, link.whenGone()]);
      t.cancel();
    }
    const closed = new MqttClientClosedError();
    this.outbox.abort(closed);
    this.subscriptions.abort(closed);
    await this.connector.finishEnd(link, reasonCode, force ? 0 : Math.min(endTimeout, 1000));
    this.emit("end");
  }

  private deliver(packet: IPublishPacket, channel: PacketChannel): void {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const msg: MqttMessage = {
      topic: packet.topic,
      payload,
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup,
      properties: packet.properties,
      packet,
    };
    try {
      this.emit("message", packet.topic, payload, packet);
    } catch (e) {
      this.emitError(e as Error);
    }
    for (const sink of this.subscriptions.route(msg, channel)) sink.push(msg);
  }

  private resubscribeFailed(group: SubGroup, codes: number[]): void {
    const code = codes.find((c) => c >= 0x80) ?? 0x80;
    const filters = [...group.filters.keys()].join(", ") || "a filter";
    const err = new MqttAckError("ERR_MQTT_SUBSCRIBE_REFUSED", code, `the resubscription to ${filters}`);
    group.sink?.fail(err);
    this.emitError(err);
  }

  // ---------------------------------------------------------------------------------------------
  // Publishing

  /** @internal Publishes on a logical stream (used by `Publisher`). */
  publishOn(
    key: string,
    topic: string,
    payload: Payload,
    opts: PublishOptions,
  ): Promise<PublishResult | undefined> {
    if (this.disconnecting) return Promise.reject(new MqttClientClosedError());
    const connack = this.connector.connackInfo;
    const bad = checkPublish(topic, opts, connack);
    if (bad) return Promise.reject(bad);
    const msg = {
      topic,
      payload: toBuffer(payload),
      qos: opts.qos ?? 0,
      retain: opts.retain ?? false,
      ...(opts.properties ? { properties: opts.properties } : {}),
    };
    const max = connack?.maximumPacketSize;
    const tooLarge =
      max && checkPacketSize({ cmd: "publish", dup: false, ...msg }, this.options.protocolVersion, max);
    if (tooLarge) return Promise.reject(tooLarge);
    return this.outbox.publish(msg, key);
  }

  /** @internal Waits for a publisher's messages, then ends its stream. */
  async releaseStream(key: string): Promise<void> {
    await this.outbox.idle(key);
    this.connector.current?.endChannel(key);
  }

  /**
   * Publishes a message (MQTT.js shape). Resolves when sent (QoS 0) or acknowledged (QoS 1: PUBACK,
   * QoS 2: PUBCOMP); while offline it is queued (up to `offlineQueueLimit`). In per-topic mode each
   * topic gets its own data stream.
   */
  publish(
    topic: string,
    message: Payload,
    opts?: PublishOptions | Callback<PublishResult | undefined>,
    cb?: Callback<PublishResult | undefined>,
  ): Promise<PublishResult | undefined> {
    const callback = typeof opts === "function" ? opts : cb;
    const o = typeof opts === "object" ? opts : {};
    return withCallback(this.publishOn(this.keys.forTopic(topic), topic, message, o), callback);
  }

  /**
   * A publisher owning a data stream for `topic` (multi-stream modes). With `initialPayload`, publishes
   * it first (with `opts`) and resolves once that publish completes.
   */
  async publisher(topic: string, initialPayload?: Payload, opts: PublishOptions = {}): Promise<Publisher> {
    if (this.disconnecting) throw new MqttClientClosedError();
    const bad = checkPublish(topic, opts, this.connector.connackInfo);
    if (bad) throw bad;
    const key = this.keys.forPublisher();
    const pub = new Publisher(this, topic, key);
    // Open the stream now when connected, so the publisher owns it from the start.
    if (key !== "control") this.connector.current?.channel(key);
    if (initialPayload !== undefined) await pub.publish(initialPayload, opts);
    return pub;
  }

  // ---------------------------------------------------------------------------------------------
  // Subscribing

  /**
   * Subscribes (MQTT.js shape): a filter, a list, or a `{ filter: options }` map. Resolves with the
   * grants (`qos` is the granted QoS, or a failure code >= 0x80). In per-topic mode each call gets
   * its own data stream, on which its deliveries arrive.
   */
  subscribe(
    topic: string | string[] | Record<string, SubscribeOptions>,
    opts?: SubscribeOptions | Callback<SubscriptionGrant[]>,
    cb?: Callback<SubscriptionGrant[]>,
  ): Promise<SubscriptionGrant[]> {
    const callback = typeof opts === "function" ? opts : cb;
    const o = typeof opts === "object" ? opts : {};
    const entries: [string, SubscribeOptions][] =
      typeof topic === "string"
        ? [[topic, o]]
        : Array.isArray(topic)
          ? topic.map((t) => [t, o])
          : Object.entries(topic).map(([t, x]) => [t, { ...o, ...x }]);
    const p = this.doSubscribe(
      entries,
      this.keys.subscribeCallsOwnStreams,
      o.properties?.userProperties,
    ).then(({ codes }) => entries.map(([t], i) => ({ topic: t, qos: codes[i] ?? 0x80 })));
    return withCallback(p, callback);
  }

  private doSubscribe(
    entries: [string, SubscribeOptions][],
    ownStream: boolean,
    userProperties: UserProperties | undefined,
    sink?: Subscriber,
  ): Promise<{ group: SubGroup; codes: number[] }> {
    if (this.disconnecting) return Promise.reject(new MqttClientClosedError());
    const bad = checkFilters(entries.map(([t]) => t));
    if (bad) return Promise.reject(bad);
    const { key, dedicated } = this.keys.forSubscription(ownStream);
    const { group, codes } = this.subscriptions.subscribe(entries, key, {
      dedicated,
      ...(sink ? { sink } : {}),
      ...(userProperties ? { userProperties } : {}),
    });
    return codes.then((c) => ({ group, codes: c }));
  }

  /**
   * A subscription with its own data stream, as an async iterable. Resolves once the broker granted
   * it; rejects with ERR_MQTT_SUBSCRIBE_REFUSED when it did not. Leaving the `for await` loop
   * unsubscribes and ends the stream.
   */
  async subscriber(filter: string, opts: SubscriberOptions = {}): Promise<Subscriber> {
    const sub = new Subscriber(this, filter, opts.highWaterMark);
    const { group, codes } = await this.doSubscribe(
      [[filter, opts]],
      true,
      opts.properties?.userProperties,
      sub,
    );
    this.subscriberGroups.set(sub, group);
    const code = codes[0] ?? 0x80;
    if (code >= 0x80) {
      sub.end();
      throw new MqttAckError("ERR_MQTT_SUBSCRIBE_REFUSED", code, `the subscription to ${filter}`);
    }
    sub.grantedQos = code;
    return sub;
  }

  /** @internal Backpressure of a slow subscriber: only its own stream stops being read. */
  flowControl(sub: Subscriber, paused: boolean): void {
    const group = this.subscriberGroups.get(sub);
    if (group?.dedicated) this.connector.current?.setPaused(group.key, paused);
  }

  /** @internal Closes a subscriber: UNSUBSCRIBE on its stream, then the stream ends. */
  async closeSubscriber(sub: Subscriber): Promise<void> {
    const group = this.subscriberGroups.get(sub);
    if (!group?.live || this.disconnecting) return;
    if (!this.connector.current && !this.connector.mayQueue) return;
    const done = this.subscriptions.close(group);
    // Offline, the UNSUBSCRIBE waits for the next connection; leaving a loop must not.
    if (this.connector.current) await done;
    else done.catch(() => {});
  }

  /** Unsubscribes (MQTT.js shape). Rejects with ERR_MQTT_UNSUBSCRIBE_REFUSED on a failure code. */
  unsubscribe(
    topic: string | string[],
    opts?: { properties?: { userProperties?: UserProperties } } | Callback<void>,
    cb?: Callback<void>,
  ): Promise<void> {
    const callback = typeof opts === "function" ? opts : cb;
    const topics = typeof topic === "string" ? [topic] : topic;
    const p = this.disconnecting
      ? Promise.reject(new MqttClientClosedError())
      : this.subscriptions.unsubscribe(topics).then((codes) => {
          const bad = codes.find((c) => c >= 0x80);
          if (bad !== undefined)
            throw new MqttAckError(
              "ERR_MQTT_UNSUBSCRIBE_REFUSED",
              bad,
              `the unsubscription from ${topics.join(", ")}`,
            );
        });
    return withCallback(p, callback);
  }
}

/** Calls an MQTT.js-style callback when `p` settles, and returns `p`. */
function withCallback<T>(p: Promise<T>, callback: Callback<T> | undefined): Promise<T> {
  if (callback)
    p.then(
      (r) => callback(undefined, r),
      (e: Error) => callback(e),
    );
  return p;
}

/**
 * Connects to a broker and resolves once the broker accepted the connection (CONNACK); rejects with
 * a typed error otherwise (ERR_MQTT_CONNACK with the reason, ERR_MQTT_CONNECTION, ERR_QUIC_*...).
 *
 * ```ts
 * const client = await connect("mqtt+quic://localhost:14567", { ca });
 * ```
 */
export async function connect(url: string | URL, opts: ConnectOptions = {}): Promise<MqttClient> {
  const client = new MqttClient(url, opts);
  await client.start(true);
  return client;
}

/**
 * Creates a client and starts connecting in the background (MQTT.js's `mqtt.connect` shape):
 * listen for "connect" and "error"; publishes before the connection are queued.
 */
export function createClient(url: string | URL, opts: ConnectOptions = {}): MqttClient {
  const client = new MqttClient(url, opts);
  client.start(false).catch(() => {});
  return client;
}
