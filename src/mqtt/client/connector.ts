/**
 * Connections of one client over time: a connection attempt (dial, CONNECT, CONNACK within
 * `connectTimeout`), the connected link and what arrives on it, the loss of a link, and the
 * reconnect loop with exponential backoff. The session it serves (outbox, inbox, subscriptions)
 * belongs to the client and outlives every link.
 *
 * States: idle -> connecting -> connected -> (link lost) -> waiting -> connecting -> ...;
 * a permanent refusal or a lost link without reconnect -> disconnected; `end()` -> ending -> ended.
 */
import type { EventEmitter } from "node:events";
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, Packet } from "mqtt-packet";
import { StreamResetError } from "../../net/quic.js";
import { backoffDelay } from "./backoff.js";
import type { PacketChannel } from "./channel.js";
import { ALPN_MQTT, ALPN_MQTT_NEXT, defaultDialer } from "./dial.js";
import { type DispatchTarget, dispatchPacket } from "./dispatch.js";
import {
  MqttClientClosedError,
  MqttConnackError,
  MqttConnectionError,
  MqttConnectTimeoutError,
  MqttNotConnectedError,
  MqttProtocolError,
  MqttServerDisconnectError,
  MqttStreamRefusedError,
} from "./errors.js";
import type { MqttClientEvents } from "./events.js";
import { buildConnect, type ConnackInfo, readConnack } from "./handshake.js";
import type { Inbox } from "./inbox.js";
import { Link } from "./link.js";
import type { ResolvedOptions } from "./options.js";
import type { Outbox } from "./outbox.js";
import { isTransientConnackCode } from "./reason-codes.js";
import type { Subscriptions } from "./subscriptions.js";
import { sleep, Timer } from "./timers.js";
import type { BrokerAddress } from "./url.js";

type State = "idle" | "connecting" | "connected" | "waiting" | "disconnected" | "ending" | "ended";

/** What the connector serves. */
export interface ConnectorSession {
  readonly options: ResolvedOptions;
  readonly address: BrokerAddress;
  readonly outbox: Outbox;
  readonly inbox: Inbox;
  readonly subscriptions: Subscriptions;
  /** Resolves once the session store was read. */
  readonly loaded: Promise<void>;
  /** Where events go (the client). */
  readonly events: EventEmitter<MqttClientEvents>;
  /** Emits "error" if someone listens. */
  emitError(err: Error): void;
}

/** See the module comment. */
/** MQTT-over-QUIC stream error "stream type" (0xB5): a stream of a kind the broker does not take. */
const QUIC_STREAM_TYPE_REFUSED = 0xb5;

export class Connector implements DispatchTarget {
  readonly outbox: Outbox;
  readonly inbox: Inbox;
  readonly subscriptions: Subscriptions;
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
  /** Why the client stopped trying (a permanent refusal, a takeover, reconnect off). */
  private gaveUpBecause: Error | undefined;
  /** A broker DISCONNECT that forbids reconnecting (session taken over). */
  private finalDisconnect: Error | undefined;
  /** The broker refused a bidi data stream (0xB5): later links speak the uni dialect ("auto"). */
  private bidiRefused = false;

  constructor(private readonly s: ConnectorSession) {
    this.outbox = s.outbox;
    this.inbox = s.inbox;
    this.subscriptions = s.subscriptions;
  }

  /** Whether a link is up (CONNACK received). */
  get connected(): boolean {
    return this.state === "connected";
  }

  /** Whether the client is between connections and will try again. */
  get reconnecting(): boolean {
    return this.state === "waiting" || (this.state === "connecting" && this.attempt > 0);
  }

  /** Whether `end()` was called. */
  get ending(): boolean {
    return this.state === "ending" || this.state === "ended";
  }

  /** Whether an operation made now may wait for a (re)connection. */
  get mayQueue(): boolean {
    return this.state === "idle" || this.state === "connecting" || this.state === "waiting";
  }

  /** What the broker granted on the current (or last) connection. */
  get connackInfo(): ConnackInfo | undefined {
    return this.connack;
  }

  /** The link after CONNACK. */
  get current(): Link | undefined {
    return this.connectedLink;
  }

  /** The link being set up or in use. */
  get anyLink(): Link | undefined {
    return this.link;
  }

  /** The error for an operation that needs a connection the client no longer tries to make. */
  notConnected(what: string): Error {
    return new MqttNotConnectedError(what, this.gaveUpBecause);
  }

  /**
   * First connection: resolves with the CONNACK. With `failFast` a failure ends the client;
   * otherwise it goes to "error" and the reconnect policy (MQTT.js style).
   */
  start(failFast: boolean): Promise<IConnackPacket> {
    if (this.state !== "idle") return Promise.reject(new Error("client already started"));
    const p = this.attemptConnection();
    p.then(
      () => {},
      (err: Error) => {
        if (this.ending) return;
        if (failFast) {
          this.state = "ended";
          this.outbox.abort(err);
          this.subscriptions.abort(err);
        } else this.afterFailedAttempt(err);
      },
    );
    return p;
  }

  private async attemptConnection(): Promise<IConnackPacket> {
    this.state = "connecting";
    await this.s.loaded;
    const { options } = this.s;
    const { scheduler, connectTimeout } = options;
    const started = scheduler.now();
    const raw = options.raw;
    const transport = await (raw.dial ?? defaultDialer)(this.s.address, {
      timeout: connectTimeout,
      ...(raw.ca !== undefined ? { ca: raw.ca } : {}),
      ...(raw.insecure ? { insecure: true } : {}),
      ...(raw.serverName ? { serverName: raw.serverName } : {}),
      ...(raw.cert ? { cert: raw.cert } : {}),
      ...(raw.key ? { key: raw.key } : {}),
      ...(raw.quic ? { quic: raw.quic } : {}),
      alpn: this.offeredAlpn(),
    });
    if (this.state !== "connecting") {
      transport.destroy();
      throw new MqttClientClosedError();
    }
    const multi = transport.multiStream && options.streamMode !== "single";
    const events = this.s.events;
    const nextAlpn = transport.alpn === ALPN_MQTT_NEXT;
    const uni =
      transport.openUniStream !== undefined &&
      (options.quicDataStreams === "uni" ||
        (options.quicDataStreams === "auto" && (nextAlpn || this.bidiRefused)));
    const link: Link = new Link(
      transport,
      options.protocolVersion,
      multi,
      scheduler,
      {
        packet: (p, ch) => {
          events.emit("packetreceive", p);
          dispatchPacket(this, p, ch, link);
        },
        sent: (p) => events.emit("packetsend", p),
        channelLost: (ch, err) => this.onChannelLost(link, ch, err),
        lost: (err) => this.onLinkLost(link, err),
      },
      uni ? "uni" : "bidi",
      nextAlpn,
    );
    this.link = link;
    const timeout = new Timer(scheduler, () => link.destroy(new MqttConnectTimeoutError(connectTimeout)));
    timeout.start(Math.max(0, connectTimeout - (scheduler.now() - started)));
    const connack = new Promise<IConnackPacket>((resolve, reject) => {
      this.connackWaiter = { link, resolve, reject };
    });
    link.control.send(buildConnect(options));
    try {
      return await connack;
    } finally {
      timeout.stop();
      this.connackWaiter = undefined;
    }
  }

  isConnected(link: Link): boolean {
    return this.connectedLink === link;
  }

  onConnack(packet: IConnackPacket, link: Link): void {
    const waiter = this.connackWaiter;
    if (waiter?.link !== link) return;
    let info: ConnackInfo;
    try {
      info = readConnack(packet, this.s.options);
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
      const { store, clientId } = this.s.options;
      for (const id of this.inbox.pendingQos2) void store.deleteIncoming(clientId, id);
      this.inbox.clear();
    }
    this.subscriptions.attach(link, info.sessionPresent, link.multiStream);
    this.outbox.attach(info.receiveMaximum, info.sessionPresent);
    waiter.resolve(packet);
    this.s.events.emit("connect", packet);
  }

  onServerDisconnect(packet: IDisconnectPacket, link: Link): void {
    this.s.events.emit("disconnect", packet);
    const code = packet.reasonCode ?? 0;
    const err = new MqttServerDisconnectError(code, packet.properties?.reasonString);
    // Session taken over: another connection with our client id replaced us; do not fight it.
    if (code === 0x8e) this.finalDisconnect = err;
    link.destroy(err);
  }

  protocolError(link: Link, err: MqttProtocolError): void {
    const pkt: Packet | undefined =
      this.s.options.protocolVersion === 5 && this.connectedLink === link
        ? { cmd: "disconnect", reasonCode: err.reasonCode }
        : undefined;
    void link.close(pkt, 1000, err);
  }

  /** Resolves an incoming topic alias (MQTT 5.0 §3.3.2.3.4); aliases live as long as the link. */
  resolveTopic(packet: IPublishPacket, link: Link): IPublishPacket | undefined {
    const alias = packet.properties?.topicAlias;
    if (alias === undefined) return packet;
    const max = this.s.options.raw.topicAliasMaximum ?? 0;
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

  /**
   * ALPN offered over QUIC, in our order (the broker picks by its own preference): "mqtt" for
   * EMQX-style bidi data streams, "MQTT-next" for the uni dialect (mqtt.ai flow headers).
   */
  private offeredAlpn(): string[] {
    switch (this.s.options.quicDataStreams) {
      case "bidi":
        return [ALPN_MQTT];
      case "uni":
        return [ALPN_MQTT_NEXT, ALPN_MQTT];
      default:
        return this.bidiRefused ? [ALPN_MQTT_NEXT, ALPN_MQTT] : [ALPN_MQTT, ALPN_MQTT_NEXT];
    }
  }

  private onChannelLost(link: Link, ch: PacketChannel, err: Error | undefined): void {
    if (ch.kind === "data" && err instanceof StreamResetError && err.errorCode === QUIC_STREAM_TYPE_REFUSED) {
      // A `mqtt5` broker takes client data on uni streams only; whatever we sent on this stream
      // is lost with it. Reconnect in the uni dialect ("auto"); QoS 1/2 are resent with DUP.
      if (this.s.options.quicDataStreams === "auto") this.bidiRefused = true;
      link.destroy(new MqttStreamRefusedError(ch.key, err.errorCode));
      return;
    }
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
    if (err) this.s.emitError(err);
    this.s.events.emit("close");
    if (this.ending) return;
    if (this.finalDisconnect || this.s.options.reconnect === false) {
      this.giveUp(
        this.finalDisconnect ?? err ?? new MqttConnectionError("the connection closed and reconnect is off"),
      );
      return;
    }
    this.state = "waiting";
    this.s.events.emit("offline");
    this.scheduleReconnect();
  }

  private afterFailedAttempt(err: Error): void {
    if (this.ending) return;
    this.s.emitError(err);
    const permanent = err instanceof MqttConnackError && !isTransientConnackCode(err.reasonCode);
    if (permanent || this.s.options.reconnect === false) {
      this.giveUp(err);
      return;
    }
    if (this.state !== "waiting") {
      this.state = "waiting";
      this.s.events.emit("offline");
    }
    this.scheduleReconnect();
  }

  private giveUp(err: Error): void {
    this.state = "disconnected";
    this.gaveUpBecause = err;
    this.outbox.rejectQueued(new MqttNotConnectedError("the queued publish", err));
  }

  private scheduleReconnect(): void {
    const policy = this.s.options.reconnect;
    if (policy === false) return;
    const delay = backoffDelay(this.attempt++, policy, this.s.options.random);
    const s = sleep(this.s.options.scheduler, delay);
    this.reconnectSleep = s;
    s.promise.then(() => {
      if (this.reconnectSleep !== s || this.state !== "waiting") return;
      this.reconnectSleep = undefined;
      this.s.events.emit("reconnect");
      this.attemptConnection().then(
        () => {},
        (e: Error) => {
          if (this.state === "connecting") this.state = "waiting";
          this.afterFailedAttempt(e);
        },
      );
    });
  }

  /** `end()` begins: no more reconnects. Returns the link to close, if any. */
  beginEnd(): Link | undefined {
    this.state = "ending";
    this.reconnectSleep?.cancel();
    this.reconnectSleep = undefined;
    return this.link;
  }

  /**
   * Closes `link` for `end()`: DISCONNECT (with `reasonCode` on MQTT 5.0) when it is connected,
   * then the network connection.
   */
  async finishEnd(link: Link | undefined, reasonCode: number, graceMs: number): Promise<void> {
    if (link && !link.isGone) {
      const disconnect: Packet | undefined =
        this.connectedLink === link
          ? this.s.options.protocolVersion === 5
            ? { cmd: "disconnect", reasonCode }
            : { cmd: "disconnect" }
          : undefined;
      await link.close(disconnect, graceMs);
    }
    this.link = undefined;
    this.connectedLink = undefined;
    this.state = "ended";
  }
}
