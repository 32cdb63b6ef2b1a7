/**
 * The MQTT client: connection lifecycle (connect, keepalive, reconnect with backoff), the session
 * (outbox, inbox, subscriptions) that outlives connections, and the public API in two shapes:
 * `publisher()`/`subscriber()` with streams of their own, and MQTT.js's `publish`/`subscribe`/
 * `on("message")`.
 *
 * Lifecycle: idle -> connecting -> connected -> (connection lost) -> waiting -> connecting ...;
 * `end()` -> ending -> ended. A connection attempt is one `Link`; everything else lives here.
 */
import { EventEmitter } from "node:events";
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, Packet } from "mqtt-packet";
import { isValidTopicFilter, isValidTopicName } from "../topic.js";
import { backoffDelay } from "./backoff.js";
import type { PacketChannel } from "./channel.js";
import { defaultDialer } from "./dial.js";
import { dispatchPacket } from "./dispatch.js";
import {
  MqttAckError,
  MqttClientClosedError,
  MqttConnackError,
  MqttConnectionError,
  MqttConnectTimeoutError,
  MqttInvalidTopicError,
  MqttNotConnectedError,
  MqttProtocolError,
  MqttServerDisconnectError,
  MqttUnsupportedError,
} from "./errors.js";
import { buildConnect, type ConnackInfo, readConnack } from "./handshake.js";
import { Inbox } from "./inbox.js";
import { Link } from "./link.js";
import { type ConnectOptions, type ResolvedOptions, resolveOptions, toBuffer } from "./options.js";
import { Outbox } from "./outbox.js";
import { PacketIdAllocator } from "./packet-id.js";
import { Publisher } from "./publisher.js";
import { isTransientConnackCode } from "./reason-codes.js";
import type { ClientSessionStore } from "./session-store.js";
import { Subscriber } from "./subscriber.js";
import { type SubGroup, Subscriptions } from "./subscriptions.js";
import { sleep, Timer } from "./timers.js";
import type {
  MqttMessage,
  Payload,
  PublishOptions,
  PublishResult,
  SubscribeOptions,
  SubscriptionGrant,
} from "./types.js";
import { type BrokerAddress, parseBrokerUrl } from "./url.js";

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

type State = "idle" | "connecting" | "connected" | "waiting" | "disconnected" | "ending" | "ended";

/** Callback of the MQTT.js-style methods. */
export type Callback<T> = (err: Error | undefined, result?: T) => void;

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
  private readonly ids = new PacketIdAllocator();
  private state: State = "idle";
  private link: Link | undefined;
  private connectedLink: Link | undefined;
  private connack: ConnackInfo | undefined;
  private connackWaiter:
    | { link: Link; resolve: (p: IConnackPacket) => void; reject: (e: Error) => void }
    | undefined;
  private aliases = new Map<number, string>();
  private attempt = 0;
  private reconnectSleep: { cancel: () => void } | undefined;
  private readonly sessionLoaded: Promise<void>;
  private readonly topicKeys = new Set<string>();
  private publisherSeq = 0;
  private endPromise: Promise<void> | undefined;
  private disconnectError: Error | undefined;
  private gaveUpBecause: Error | undefined;

  constructor(url: string | URL, opts: ConnectOptions = {}) {
    super();
    this.address = parseBrokerUrl(url);
    this.options = resolveOptions(opts);
    const host = {
      clientId: this.options.clientId,
      store: this.options.store,
      ids: this.ids,
      protocolVersion: this.options.protocolVersion,
      connectedLink: () => this.connectedLink,
      canQueueOffline: () => this.canQueueOffline(),
      notConnected: (what: string) => new MqttNotConnectedError(what, this.gaveUpBecause),
      reportError: (e: Error) => this.emitError(e),
    };
    this.outbox = new Outbox(host, this.options.offlineQueueLimit);
    this.inbox = new Inbox({ ...host, deliver: (p, ch) => this.deliver(p, ch) });
    this.subscriptions = new Subscriptions({
      ...host,
      subscriptionIdsInUse: () => this.connack?.subscriptionIdentifiersAvailable === true,
      resubscribeFailed: (g, codes) => this.resubscribeFailed(g, codes),
    });
    this.sessionLoaded = this.loadSession();
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
    return this.state === "connected";
  }

  /** Whether the client is between connections and will try again. */
  get reconnecting(): boolean {
    return this.state === "waiting" || (this.state === "connecting" && this.attempt > 0);
  }

  /** Whether `end()` was called. */
  get disconnecting(): boolean {
    return this.state === "ending" || this.state === "ended";
  }

  /** What the broker granted on the current connection (limits, session present). */
  get connackInfo(): ConnackInfo | undefined {
    return this.connack;
  }

  /** The transport of the current connection ("quic", "tcp", "tls"), if any. */
  get transportKind(): string | undefined {
    return this.link?.kind;
  }

  /** @internal The connected link (tests inspect streams through it). */
  get currentLink(): Link | undefined {
    return this.connectedLink;
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

  private canQueueOffline(): boolean {
    return this.state === "idle" || this.state === "connecting" || this.state === "waiting";
  }

  private emitError(err: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  /**
   * First connection: resolves with the CONNACK, or rejects (and ends the client) if it fails.
   * `createClient` users call `start(false)`: failures then go to "error" and the reconnect policy.
   * @internal
   */
  start(failFast: boolean): Promise<IConnackPacket> {
    if (this.state !== "idle") return Promise.reject(new Error("client already started"));
    const p = this.runAttempt();
    p.then(
      () => {},
      (err: Error) => {
        if (this.disconnecting) return;
        if (failFast) {
          this.state = "ended";
          this.outbox.abort(err);
          this.subscriptions.abort(err);
        } else this.afterFailedAttempt(err);
      },
    );
    return p;
  }

  private async runAttempt(): Promise<IConnackPacket> {
    this.state = "connecting";
    await this.sessionLoaded;
    const { scheduler, connectTimeout } = this.options;
    const started = scheduler.now();
    const raw = this.options.raw;
    const transport = await (raw.dial ?? defaultDialer)(this.address, {
      timeout: connectTimeout,
      ...(raw.ca !== undefined ? { ca: raw.ca } : {}),
      ...(raw.insecure ? { insecure: true } : {}),
      ...(raw.serverName ? { serverName: raw.serverName } : {}),
      ...(raw.cert ? { cert: raw.cert } : {}),
      ...(raw.key ? { key: raw.key } : {}),
      ...(raw.quic ? { quic: raw.quic } : {}),
    });
    if (this.state !== "connecting") {
      transport.destroy();
      throw new MqttClientClosedError();
    }
    const multi = transport.multiStream && this.options.streamMode !== "single";
    const link: Link = new Link(transport, this.options.protocolVersion, multi, scheduler, {
      packet: (p, ch) => {
        this.emit("packetreceive", p);
        dispatchPacket(this, p, ch, link);
      },
      sent: (p) => this.emit("packetsend", p),
      channelLost: (ch, err) => this.onChannelLost(link, ch, err),
      lost: (err) => this.onLinkLost(link, err),
    });
    this.link = link;
    const timeout = new Timer(scheduler, () => link.destroy(new MqttConnectTimeoutError(connectTimeout)));
    timeout.start(Math.max(0, connectTimeout - (scheduler.now() - started)));
    const connack = new Promise<IConnackPacket>((resolve, reject) => {
      this.connackWaiter = { link, resolve, reject };
    });
    link.control.send(buildConnect(this.options));
    try {
      return await connack;
    } finally {
      timeout.stop();
      this.connackWaiter = undefined;
    }
  }

  /** @internal */
  isConnected(link: Link): boolean {
    return this.connectedLink === link;
  }

  /** @internal CONNACK on `link`. */
  onConnack(packet: IConnackPacket, link: Link): void {
    const waiter = this.connackWaiter;
    if (!waiter || waiter.link !== link) return;
    let info: ConnackInfo;
    try {
      info = readConnack(packet, this.options);
    } catch (e) {
      link.destroy(e as Error);
      waiter.reject(e as Error);
      return;
    }
    this.connack = info;
    this.connectedLink = link;
    this.aliases = new Map();
    this.state = "connected";
    this.attempt = 0;
    link.allowData();
    link.startKeepalive(info.keepalive);
    // [MQTT-3.2.2-5] the broker has no session: ours is discarded (the outbox resends what it
    // has as new messages). A session present while we have no state is accepted: a restarted
    // process with a memory store still wants the messages the broker kept for it.
    if (!info.sessionPresent) {
      for (const id of this.inbox.pendingQos2) void this.options.store.deleteIncoming(this.clientId, id);
      this.inbox.clear();
    }
    this.subscriptions.attach(link, info.sessionPresent, link.multiStream);
    this.outbox.attach(info.receiveMaximum, info.sessionPresent);
    waiter.resolve(packet);
    this.emit("connect", packet);
  }

  /** @internal DISCONNECT from the broker (MQTT 5.0 §3.14). */
  onServerDisconnect(packet: IDisconnectPacket, link: Link): void {
    this.emit("disconnect", packet);
    const code = packet.reasonCode ?? 0;
    const err = new MqttServerDisconnectError(code, packet.properties?.reasonString);
    // Session taken over: another connection with our client id replaced us; do not fight it.
    if (code === 0x8e) this.disconnectError = err;
    link.destroy(err);
  }

  /** @internal */
  protocolError(link: Link, err: MqttProtocolError): void {
    const pkt: Packet | undefined =
      this.options.protocolVersion === 5 && this.connectedLink === link
        ? { cmd: "disconnect", reasonCode: err.reasonCode }
        : undefined;
    void link.close(pkt, 1000, err);
  }

  /** @internal Resolves an incoming topic alias (MQTT 5.0 §3.3.2.3.4). */
  resolveTopic(packet: IPublishPacket, link: Link): IPublishPacket | undefined {
    const alias = packet.properties?.topicAlias;
    if (alias === undefined) return packet;
    const max = this.options.raw.topicAliasMaximum ?? 0;
    if (alias === 0 || alias > max) {
      this.protocolError(
        link,
        new MqttProtocolError(`broker used topic alias ${alias} (maximum ${max})`, 0x94),
      );
      return undefined;
    }
    if (packet.topic) {
      this.aliases.set(alias, packet.topic);
      return packet;
    }
    const topic = this.aliases.get(alias);
    if (topic === undefined) {
      this.protocolError(link, new MqttProtocolError(`broker used unknown topic alias ${alias}`, 0x82));
      return undefined;
    }
    return { ...packet, topic };
  }

  private onChannelLost(link: Link, ch: PacketChannel, err: Error | undefined): void {
    if (!this.outbox.hasInflight(ch.key) && !this.subscriptions.usesKey(ch.key)) return;
    // Its acknowledgements or deliveries are gone with it: start over on a new connection,
    // which resends (DUP) and resubscribes.
    link.destroy(
      new MqttConnectionError(
        `data stream ${ch.key} ${err ? `failed: ${err.message}` : "was ended by the broker"}`,
        err ? { cause: err } : undefined,
      ),
    );
  }

  private onLinkLost(link: Link, err: Error | undefined): void {
    if (this.link !== link) return;
    const wasConnected = this.connectedLink === link;
    this.link = undefined;
    this.connectedLink = undefined;
    this.outbox.detach();
    this.subscriptions.detach();
    if (this.connackWaiter?.link === link) {
      this.connackWaiter.reject(err ?? new MqttConnectionError("the connection closed before CONNACK"));
      return;
    }
    if (!wasConnected) return;
    if (err) this.emitError(err);
    this.emit("close");
    if (this.disconnecting) return;
    if (this.disconnectError || this.options.reconnect === false) {
      this.giveUp(
        this.disconnectError ?? err ?? new MqttConnectionError("the connection closed and reconnect is off"),
      );
      return;
    }
    this.state = "waiting";
    this.emit("offline");
    this.scheduleReconnect();
  }

  private afterFailedAttempt(err: Error): void {
    if (this.disconnecting) return;
    this.emitError(err);
    const permanent = err instanceof MqttConnackError && !isTransientConnackCode(err.reasonCode);
    if (permanent || this.options.reconnect === false) {
      this.giveUp(err);
      return;
    }
    if (this.state !== "waiting") {
      this.state = "waiting";
      this.emit("offline");
    }
    this.scheduleReconnect();
  }

  private giveUp(err: Error): void {
    this.state = "disconnected";
    this.gaveUpBecause = err;
    this.outbox.rejectQueued(new MqttNotConnectedError("the queued publish", err));
  }

  private scheduleReconnect(): void {
    if (this.options.reconnect === false) return;
    const delay = backoffDelay(this.attempt++, this.options.reconnect, this.options.random);
    const s = sleep(this.options.scheduler, delay);
    this.reconnectSleep = s;
    s.promise.then(() => {
      if (this.reconnectSleep !== s || this.state !== "waiting") return;
      this.reconnectSleep = undefined;
      this.emit("reconnect");
      this.runAttempt().then(
        () => {},
        (e: Error) => {
          if (this.state === "connecting") this.state = "waiting";
          this.afterFailedAttempt(e);
        },
      );
    });
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
    const wasConnected = this.state === "connected";
    this.state = "ending";
    this.reconnectSleep?.cancel();
    this.reconnectSleep = undefined;
    const link = this.link;
    const { endTimeout, scheduler } = this.options;
    if (wasConnected && link && !force) {
      const t = sleep(scheduler, endTimeout);
      await Promise.race([this.outbox.idle(), t.promise, link.whenGone()]);
      t.cancel();
    }
    const closed = new MqttClientClosedError();
    this.outbox.abort(closed);
    this.subscriptions.abort(closed);
    if (link && !link.isGone) {
      const disconnect: Packet | undefined =
        this.connectedLink === link
          ? this.options.protocolVersion === 5
            ? { cmd: "disconnect", reasonCode }
            : { cmd: "disconnect" }
          : undefined;
      await link.close(disconnect, force ? 0 : Math.min(endTimeout, 1000));
    }
    this.link = undefined;
    this.connectedLink = undefined;
    this.state = "ended";
    this.emit("end");
  }

  // ---------------------------------------------------------------------------------------------
  // Deliveries

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
    const err = new MqttAckError(
      "ERR_MQTT_SUBSCRIBE_REFUSED",
      code,
      `the resubscription to ${[...group.filters.keys()].join(", ") || "a filter"}`,
    );
    group.sink?.fail(err);
    this.emitError(err);
  }

  // ---------------------------------------------------------------------------------------------
  // Publishing

  private checkPublish(topic: string, opts: PublishOptions): Error | undefined {
    if (!isValidTopicName(topic))
      return new MqttInvalidTopicError(
        `invalid topic name ${JSON.stringify(topic)}: it must be non-empty, without wildcards (+, #) or U+0000`,
      );
    const qos = opts.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2)
      return new MqttUnsupportedError(`QoS must be 0, 1 or 2, not ${qos}`);
    const c = this.connack;
    // [MQTT-3.2.2-11] no QoS above the broker's Maximum QoS.
    if (c && qos > c.maximumQoS)
      return new MqttUnsupportedError(
        `the broker accepts QoS up to ${c.maximumQoS}; this publish asked for ${qos}`,
      );
    // [MQTT-3.2.2-14] no retained messages to a broker without them.
    if (c && opts.retain && !c.retainAvailable)
      return new MqttUnsupportedError("the broker does not support retained messages");
    return undefined;
  }

  private keyForTopic(topic: string): string {
    switch (this.options.streamMode) {
      case "single":
        return "control";
      case "multi":
        return "data";
      default: {
        const key = `topic:${topic}`;
        if (this.topicKeys.has(key)) return key;
        if (this.topicKeys.size >= this.options.perTopicStreamLimit) return "data";
        this.topicKeys.add(key);
        return key;
      }
    }
  }

  /** @internal Publishes on a logical stream (used by `Publisher`). */
  publishOn(
    key: string,
    topic: string,
    payload: Payload,
    opts: PublishOptions,
  ): Promise<PublishResult | undefined> {
    if (this.disconnecting) return Promise.reject(new MqttClientClosedError());
    const bad = this.checkPublish(topic, opts);
    if (bad) return Promise.reject(bad);
    return this.outbox.publish(
      {
        topic,
        payload: toBuffer(payload),
        qos: opts.qos ?? 0,
        retain: opts.retain ?? false,
        ...(opts.properties ? { properties: opts.properties } : {}),
      },
      key,
    );
  }

  /** @internal Waits for a publisher's messages, then ends its stream. */
  async releaseStream(key: string): Promise<void> {
    await this.outbox.idle(key);
    this.connectedLink?.endChannel(key);
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
    const p = this.publishOn(this.keyForTopic(topic), topic, message, o);
    if (callback)
      p.then(
        (r) => callback(undefined, r),
        (e: Error) => callback(e),
      );
    return p;
  }

  /**
   * A publisher owning a data stream for `topic` (multi-stream modes). With `initialPayload`, publishes
   * it first (with `opts`) and resolves once that publish completes.
   */
  async publisher(topic: string, initialPayload?: Payload, opts: PublishOptions = {}): Promise<Publisher> {
    if (this.disconnecting) throw new MqttClientClosedError();
    const bad = this.checkPublish(topic, opts);
    if (bad) throw bad;
    const key = this.options.streamMode === "single" ? "control" : `pub:${++this.publisherSeq}`;
    const pub = new Publisher(this, topic, key);
    // Open the stream now when connected, so the publisher owns it from the start.
    if (this.connectedLink && key !== "control") this.connectedLink.channel(key);
    if (initialPayload !== undefined) await pub.publish(initialPayload, opts);
    return pub;
  }

  // ---------------------------------------------------------------------------------------------
  // Subscribing

  private subscriptionKey(dedicated: boolean): string | ((id: number) => string) {
    if (this.options.streamMode === "single") return "control";
    if (dedicated) return (id) => `sub:${id}`;
    return "data";
  }

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
    const p = this.doSubscribe(entries, this.options.streamMode === "per-topic", o).then(({ codes }) =>
      entries.map(([t], i) => ({ topic: t, qos: codes[i] ?? 0x80 })),
    );
    if (callback)
      p.then(
        (r) => callback(undefined, r),
        (e: Error) => callback(e),
      );
    return p;
  }

  private doSubscribe(
    entries: [string, SubscribeOptions][],
    dedicated: boolean,
    o: SubscribeOptions,
    sink?: Subscriber,
  ): Promise<{ group: SubGroup; codes: number[] }> {
    if (this.disconnecting) return Promise.reject(new MqttClientClosedError());
    if (entries.length === 0)
      return Promise.reject(new MqttInvalidTopicError("no topic filter to subscribe to"));
    for (const [t] of entries)
      if (!isValidTopicFilter(t))
        return Promise.reject(
          new MqttInvalidTopicError(
            `invalid topic filter ${JSON.stringify(t)}: # must be last and alone in its level, + alone in its level`,
          ),
        );
    const isDedicated = dedicated && this.options.streamMode !== "single";
    const { group, codes } = this.subscriptions.subscribe(entries, this.subscriptionKey(isDedicated), {
      dedicated: isDedicated,
      ...(sink ? { sink } : {}),
      ...(o.properties?.userProperties ? { userProperties: o.properties.userProperties } : {}),
    });
    return codes.then((c) => ({ group, codes: c }));
  }

  /**
   * A subscription with its own data stream, as an async iterable. Resolves once the broker granted
   * it; rejects with ERR_MQTT_SUBSCRIBE_REFUSED when it did not. Leaving the `for await` loop
   * unsubscribes and ends the stream.
   */
  async subscriber(filter: string, opts: SubscribeOptions = {}): Promise<Subscriber> {
    const sub = new Subscriber(this, filter);
    const { group, codes } = await this.doSubscribe([[filter, opts]], true, opts, sub);
    subscriberGroups.set(sub, group);
    const code = codes[0] ?? 0x80;
    if (code >= 0x80) {
      sub.end();
      throw new MqttAckError("ERR_MQTT_SUBSCRIBE_REFUSED", code, `the subscription to ${filter}`);
    }
    sub.grantedQos = code;
    return sub;
  }

  /** @internal Closes a subscriber: UNSUBSCRIBE on its stream, then the stream ends. */
  async closeSubscriber(sub: Subscriber): Promise<void> {
    const group = subscriberGroups.get(sub);
    if (!group?.live || this.disconnecting) return;
    if (!this.connectedLink && !this.canQueueOffline()) return;
    await this.subscriptions.close(group);
  }

  /** Unsubscribes (MQTT.js shape). Rejects with ERR_MQTT_UNSUBSCRIBE_REFUSED on a failure code. */
  unsubscribe(
    topic: string | string[],
    opts?: { properties?: { userProperties?: Record<string, string> } } | Callback<void>,
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
    if (callback)
      p.then(
        () => callback(undefined),
        (e: Error) => callback(e),
      );
    return p;
  }
}

const subscriberGroups = new WeakMap<Subscriber, SubGroup>();

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
