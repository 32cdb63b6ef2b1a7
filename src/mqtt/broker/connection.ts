/**
 * One client network connection: its streams, packet reading with backpressure, the stream rules
 * of MQTT over QUIC, keepalive, topic aliases, outbound writes, and how it ends.
 *
 * Packets are handled one at a time per connection, in arrival order. A handler may return a
 * promise (async hooks or stores); until it settles, further packets wait and the streams that
 * deliver them are paused, so a busy connection holds at most one chunk per stream.
 *
 * Errors: an MqttError thrown by a handler on a data or uni stream resets that stream only (the
 * reason code is the reset code), unless the error concerns the whole session (Receive Maximum,
 * quota); on the control stream it ends the connection with DISCONNECT (v5) or a plain close
 * (3.1.1). [MQTT-4.13.1-1]
 */
import { type Duplex, PassThrough } from "node:stream";
import type { IDisconnectPacket, IPublishPacket, Packet } from "mqtt-packet";
import mqttPacket from "mqtt-packet";
import { connackReturnCodeV3, MqttError, ReasonCode, reasonCodeName } from "../errors.js";
import { type MqttTransport, type StreamInfo, TransportCloseCode } from "../transport.js";
import type { Broker } from "./broker.js";
import { decodeFlowHeader, isFlowHeaderStart, MAX_FLOW_HEADER_LENGTH } from "./flow-header.js";
import { PacketDecoder } from "./framing.js";
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from "./handlers/acks.js";
import { handleAuth } from "./handlers/auth.js";
import { handleConnect } from "./handlers/connect.js";
import { handleDisconnect } from "./handlers/disconnect.js";
import { handlePing } from "./handlers/ping.js";
import { handlePublish } from "./handlers/publish.js";
import { handleSubscribe } from "./handlers/subscribe.js";
import { handleUnsubscribe } from "./handlers/unsubscribe.js";
import type { ClientInfo } from "./options.js";
import type { TimerHandle } from "./scheduler.js";
import type { Session, SessionLink } from "./session.js";
import type { OutboundRecord, SubscriptionRecord } from "./store.js";
import { ALLOWED_PACKETS, type StreamKind, StreamState } from "./stream-state.js";

/** Largest packet size MQTT can express: a client that sets no limit gets this. */
const MQTT_MAX_PACKET = 268_435_460;

/** Reason codes that concern the whole connection even when raised on a data stream. */
const CONNECTION_SCOPED = new Set<number>([
  ReasonCode.ReceiveMaximumExceeded,
  ReasonCode.QuotaExceeded,
  ReasonCode.SessionTakenOver,
  ReasonCode.KeepAliveTimeout,
  ReasonCode.ServerShuttingDown,
]);

/** Where a connection is in its life. */
export type ConnectionPhase = "awaiting-connect" | "connecting" | "connected" | "closed";

/** How a connection ended. */
export interface DisconnectInfo {
  /** The MQTT reason code (0 for a normal DISCONNECT or close). */
  readonly reasonCode: number;
  /** Who ended it. */
  readonly initiator: "client" | "server" | "network";
  /** Human-readable detail. */
  readonly reason: string;
}

/** A client's network connection as the broker serves it. */
export class ClientConnection implements SessionLink {
  phase: ConnectionPhase = "awaiting-connect";
  /** Protocol level: 3, 4 or 5 (known after CONNECT). */
  version = 4;
  clientId = "";
  username: string | undefined;
  session: Session | undefined;
  /** Hook-facing description (complete after CONNECT). */
  info: ClientInfo;

  // Limits the client told us (v5 CONNECT properties).
  clientReceiveMaximum = 65535;
  clientMaxPacketSize = MQTT_MAX_PACKET;
  clientTopicAliasMaximum = 0;
  requestProblemInformation = true;

  // The maps and sets below are allocated on first use: most connections never use topic
  // aliases or per-stream routes, and an empty Map costs ~180 bytes (bench/idle-scale.ts).
  private inAliases: Map<number, string> | undefined;
  /** Outbound topic aliases: topic -> alias and the stream that established it. */
  private outAliases: Map<string, { alias: number; stream: StreamState }> | undefined;
  /** Delivery routes: subscription filter -> the stream that carried its SUBSCRIBE. */
  private routes: Map<string, StreamState> | undefined;
  /** QoS 1/2 PUBLISH received and waiting in the inbox (they count against Receive Maximum). */
  inboxQos = 0;
  /** The client sent DISCONNECT 0x00 (or 3.1.1 DISCONNECT): no will. [MQTT-3.14.4-3] */
  willSuppressed = false;
  /** Set while this connection is being replaced by a newer one for the same client id. */
  takenOver = false;
  /**
   * Set by a DISCONNECT: the packets the client sent on its other streams before it are still
   * being read (bounded by `disconnectDrainTimeout`), then the connection closes.
   */
  private draining: DrainState | undefined;

  /** Inbound topic aliases [MQTT-3.3.2-7]: not carried over between connections. */
  get inboundAliases(): Map<number, string> {
    if (this.inAliases === undefined) this.inAliases = new Map();
    return this.inAliases;
  }

  readonly control: StreamState;
  private readonly streams = new Set<StreamState>();
  private held: StreamState[] = [];
  /** Data streams to end once the inbox no longer holds their packets (allocated while non-empty). */
  private pendingEnd: Set<StreamState> | undefined;
  private datagrams: StreamState | undefined;
  private inbox: InboxItem[] = [];
  private inboxBytes = 0;
  /** The peer went away while packets still waited: handle them, then finish ending. */
  private peerLost: { initiator: DisconnectInfo["initiator"]; reason: string } | undefined;
  private pumping = false;
  private busy = false;
  private streamCount = 0;

  private keepaliveMs = 0;
  private lastActivity: number;
  private keepaliveTimer: TimerHandle | undefined;
  private connectTimer: TimerHandle | undefined;
  private ended: DisconnectInfo | undefined;

  constructor(
    readonly broker: Broker,
    readonly transport: MqttTransport,
  ) {
    this.lastActivity = broker.scheduler.now();
    this.info = {
      clientId: "",
      username: undefined,
      protocolVersion: 4,
      transport: {
        kind: transport.kind,
        remoteAddress: transport.remoteAddress,
        ...(transport.peerCertificate ? { peerCertificate: transport.peerCertificate } : {}),
        ...(transport.alpn !== undefined ? { alpn: transport.alpn } : {}),
      },
    };
    this.control = this.addStream(transport.control, "control", "control");
    transport.on("stream", (stream: Duplex, info: StreamInfo) => this.onStream(stream, info));
    transport.on("close", () => this.lost("network", "connection closed"));
    transport.on("datagram", (data: Uint8Array) => this.onDatagram(data));
    this.connectTimer = broker.scheduler.setTimer(broker.options.connectTimeout, () => {
      if (this.phase === "awaiting-connect") this.close(TransportCloseCode.Normal, "no CONNECT in time");
    });
    this.startReading(this.control);
  }

  // ---------------------------------------------------------------- streams and reading

  private addStream(duplex: Duplex, kind: StreamKind, label: string): StreamState {
    const ss = new StreamState(
      duplex,
      kind,
      label,
      this.broker.options.maxPacketSize,
      kind === "control" ? undefined : this.version,
    );
    // The control stream of MQTT-over-QUIC may start with a control flow header; TCP never does.
    if (kind === "control" && this.transport.kind === "tcp") ss.expectFlowHeader = false;
    this.streams.add(ss);
    const gone = (): void => this.streamGone(ss);
    duplex.on("error", gone);
    duplex.on("close", gone);
    duplex.on("end", () => this.streamEnded(ss));
    return ss;
  }

  private onStream(duplex: Duplex, info: StreamInfo): void {
    if (this.phase === "closed") {
      duplex.destroy();
      return;
    }
    if (++this.streamCount > this.broker.options.maxStreamsPerConnection) {
      this.transport.resetStream(duplex, ReasonCode.QuotaExceeded);
      return;
    }
    const kind: StreamKind = info.bidi ? "data" : "uni";
    const ss = this.addStream(duplex, kind, `${info.bidi ? "bidi" : "uni"} ${info.id ?? this.streamCount}`);
    // The server holds data streams until CONNACK (DESIGN.md).
    if (this.phase === "connected") this.startReading(ss);
    else this.held.push(ss);
  }

  private startReading(ss: StreamState): void {
    ss.duplex.on("data", (chunk: Buffer) => this.onData(ss, chunk));
    if (this.inboxFull) this.pause(ss);
  }

  /** @internal Called once CONNACK is sent: start reading the data streams opened before it. */
  releaseHeldStreams(): void {
    const held = this.held;
    this.held = [];
    for (const ss of held) {
      ss.decoder = new PacketDecoder(this.version);
      if (ss.alive) this.startReading(ss);
    }
  }

  private pause(ss: StreamState): void {
    if (ss.paused) return;
    ss.paused = true;
    ss.duplex.pause();
  }

  private resumeAll(): void {
    for (const ss of this.streams) {
      if (ss.paused && ss.alive) {
        ss.paused = false;
        ss.duplex.resume();
      }
    }
  }

  private onData(ss: StreamState, chunk: Buffer): void {
    if (!ss.alive || ss.readFailed || this.phase === "closed") return;
    // [MQTT-3.14.4-1]: nothing follows DISCONNECT on the control stream.
    if (this.draining && ss.kind === "control") return;
    this.lastActivity = this.broker.scheduler.now(); // keepalive counts every stream
    this.broker.metricsInternal.bytesIn += chunk.length;
    ss.framer.push(chunk);
    if (ss.expectFlowHeader && !this.readFlowHeader(ss)) return;
    try {
      for (;;) {
        const frame = ss.framer.next();
        if (!frame) break;
        const packet = ss.decoder.decode(frame);
        if (packet.cmd === "publish" && packet.qos > 0) this.inboxQos++;
        this.inboxBytes += frame.length;
        this.inbox.push({ ss, packet, size: frame.length });
      }
    } catch (e) {
      // Handled in order, after the packets that preceded it; the rest of the stream is unusable.
      ss.framer.clear();
      ss.readFailed = true;
      this.inbox.push({ ss, error: e, size: 0 });
    }
    this.pump();
    if (this.inboxFull) this.pause(ss);
  }

  /**
   * Whether to stop reading: packets are waiting on a busy handler and the inbox is at its bound.
   * Below the bound we keep reading, so what a client sent before leaving is never stuck in a
   * paused stream's buffer when the stream is destroyed.
   */
  private get inboxFull(): boolean {
    return this.busy && (this.inbox.length >= INBOX_MAX_PACKETS || this.inboxBytes >= INBOX_MAX_BYTES);
  }

  /** One QUIC DATAGRAM: an optional flow header and exactly one QoS 0 PUBLISH. */
  private onDatagram(data: Uint8Array): void {
    if (this.phase !== "connected") return;
    this.lastActivity = this.broker.scheduler.now();
    this.broker.metricsInternal.bytesIn += data.length;
    this.datagrams ??= new StreamState(
      new PassThrough(),
      "datagram",
      "datagram",
      this.broker.options.maxPacketSize,
      this.version,
    );
    const ss = this.datagrams;
    let buf = Buffer.from(data.buffer, data.byteOffset, data.length);
    try {
      if (buf.length > 0 && isFlowHeaderStart(buf[0]!)) {
        const r = decodeFlowHeader(buf);
        if (r.kind !== "header") throw MqttError.protocol("bad flow header in a datagram");
        buf = buf.subarray(r.header.length);
      }
      ss.framer.clear();
      ss.framer.push(buf);
      const frame = ss.framer.next();
      if (!frame || ss.framer.bufferedBytes > 0)
        throw MqttError.malformed("a datagram must hold exactly one packet");
      const packet = ss.decoder.decode(frame);
      if (packet.cmd !== "publish" || packet.qos !== 0)
        throw MqttError.protocol("only QoS 0 PUBLISH in datagrams");
      this.inboxBytes += frame.length;
      this.inbox.push({ ss, packet, size: frame.length });
    } catch (e) {
      this.fail(ss, e);
      return;
    }
    this.pump();
  }

  /** Consumes an optional flow header; false while it is incomplete or the stream was dropped. */
  private readFlowHeader(ss: StreamState): boolean {
    const head = ss.framer.peek(MAX_FLOW_HEADER_LENGTH);
    if (head.length === 0) return false;
    if (!isFlowHeaderStart(head[0]!)) {
      ss.expectFlowHeader = false;
      return true;
    }
    const r = decodeFlowHeader(head);
    if (r.kind === "incomplete") {
      if (head.length >= MAX_FLOW_HEADER_LENGTH)
        this.failStream(ss, MqttError.protocol("flow header too long"));
      return false;
    }
    if (r.kind === "invalid") {
      this.failStream(ss, MqttError.protocol(r.reason));
      return false;
    }
    ss.framer.take(r.header.length);
    ss.flow = r.header;
    ss.expectFlowHeader = false;
    return true;
  }

  private streamEnded(ss: StreamState): void {
    ss.readEnded = true;
    if (this.draining) {
      this.maybeFinishDrain();
      if (ss.kind === "control") return;
    }
    if (ss.kind === "control") {
      // Closing the control stream closes the connection (DESIGN.md); a TCP FIN likewise.
      this.lost("client", "control stream ended");
      return;
    }
    this.maybeEndStream(ss);
  }

  /**
   * Ends our side of a data stream the client finished, once nothing is routed to it and none of
   * its packets still wait to be handled (their acks belong on it).
   */
  private maybeEndStream(ss: StreamState): void {
    if (ss.kind !== "data" || !ss.readEnded || ss.routes > 0 || !ss.writable) return;
    if (this.busy || this.inbox.some((item) => item.ss === ss)) {
      if (this.pendingEnd === undefined) this.pendingEnd = new Set();
      this.pendingEnd.add(ss);
      return;
    }
    if (this.pendingEnd?.delete(ss) && this.pendingEnd.size === 0) this.pendingEnd = undefined;
    ss.duplex.end();
  }

  private streamGone(ss: StreamState): void {
    if (!ss.alive) return;
    ss.alive = false;
    this.streams.delete(ss);
    if (this.draining) this.maybeFinishDrain();
    if (ss.kind === "control") {
      this.lost("network", "control stream closed");
      return;
    }
    // Deliveries routed to a dead stream fall back to the control stream.
    if (this.routes) for (const [filter, s] of this.routes) if (s === ss) this.routes.delete(filter);
    if (this.outAliases)
      for (const [topic, a] of this.outAliases) if (a.stream === ss) this.outAliases.delete(topic);
  }

  // ---------------------------------------------------------------- dispatch

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.busy && this.inbox.length > 0 && this.phase !== "closed") {
        const item = this.inbox.shift()!;
        this.inboxBytes -= item.size;
        const ss = item.ss;
        if ("packet" in item && item.packet.cmd === "publish" && item.packet.qos > 0) this.inboxQos--;
        if (ss.abandoned) continue; // reset by us after an error: drop what it still had
        if (this.draining && ss.kind === "control") continue; // [MQTT-3.14.4-1]
        let r: void | Promise<void>;
        try {
          if ("error" in item) throw item.error;
          r = this.dispatch(ss, item.packet);
        } catch (e) {
          this.fail(ss, e);
          continue;
        }
        if (r) {
          this.busy = true;
          r.then(
            () => this.settle(),
            (e: unknown) => {
              this.fail(ss, e);
              this.settle();
            },
          );
        }
      }
    } finally {
      this.pumping = false;
    }
    if (!this.busy) {
      if (this.peerLost && this.inbox.length === 0) {
        const { initiator, reason } = this.peerLost;
        this.peerLost = undefined;
        this.lost(initiator, reason);
        return;
      }
      this.resumeAll();
      if (this.pendingEnd) for (const ss of this.pendingEnd) this.maybeEndStream(ss);
      if (this.draining) this.maybeFinishDrain();
    }
  }

  private settle(): void {
    this.busy = false;
    this.pump();
  }

  private dispatch(ss: StreamState, packet: Packet): void | Promise<void> {
    if (this.phase === "awaiting-connect") {
      if (packet.cmd !== "connect" || ss.kind !== "control") {
        // [MQTT-3.1.0-1]: the first packet must be CONNECT; anything else closes, no CONNACK.
        this.broker.clientError(this, MqttError.protocol(`${packet.cmd} before CONNECT`));
        this.close(TransportCloseCode.Normal, `${packet.cmd} before CONNECT`);
        return;
      }
      return handleConnect(this, packet);
    }
    if (this.phase !== "connected") return;
    if (!ALLOWED_PACKETS[ss.kind].has(packet.cmd)) {
      throw MqttError.protocol(`${packet.cmd} is not allowed on a ${ss.kind} stream`);
    }
    switch (packet.cmd) {
      case "connect":
        throw MqttError.protocol("second CONNECT"); // [MQTT-3.1.0-2]
      case "publish":
        return handlePublish(this, ss, packet);
      case "puback":
        return handlePuback(this, ss, packet);
      case "pubrec":
        return handlePubrec(this, ss, packet);
      case "pubrel":
        return handlePubrel(this, ss, packet);
      case "pubcomp":
        return handlePubcomp(this, ss, packet);
      case "subscribe":
        return handleSubscribe(this, ss, packet);
      case "unsubscribe":
        return handleUnsubscribe(this, ss, packet);
      case "pingreq":
        return handlePing(this);
      case "disconnect":
        return handleDisconnect(this, packet);
      case "auth":
        return handleAuth(this, packet);
      default:
        throw MqttError.protocol(`unexpected ${packet.cmd}`);
    }
  }

  /** Handles an error raised while reading or handling a packet of `ss`. */
  private fail(ss: StreamState, e: unknown): void {
    const err =
      e instanceof MqttError
        ? e
        : new MqttError(
            ReasonCode.ImplementationSpecificError,
            `internal error: ${(e as Error)?.message ?? e}`,
            {
              cause: e,
            },
          );
    if (ss.kind === "datagram") {
      // An unreliable datagram: drop it, report it, keep everything else.
      this.broker.clientError(this, err);
      return;
    }
    if (ss.kind !== "control" && !CONNECTION_SCOPED.has(err.reasonCode) && this.phase === "connected") {
      this.failStream(ss, err);
      return;
    }
    this.broker.clientError(this, err);
    if (this.phase === "awaiting-connect" || this.phase === "connecting") {
      // An error in CONNECT: v5 may learn why from a CONNACK; 3.1.1 only hears about an
      // unsupported protocol version (return code 1), anything else just closes. [MQTT-3.1.4-1]
      this.version = this.control.decoder.protocolVersion ?? 4;
      if (this.version === 5 || err.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
        if (err.reasonCode === ReasonCode.UnsupportedProtocolVersion) this.version = 4;
        this.refuseConnect(err.reasonCode, err.message);
      } else {
        this.close(TransportCloseCode.Normal, err.message, err.reasonCode);
      }
      return;
    }
    this.disconnect(err.reasonCode, err.message);
  }

  /** Resets one stream after an error on it; the connection goes on. */
  failStream(ss: StreamState, err: MqttError): void {
    if (ss.abandoned) return;
    ss.abandoned = true;
    this.broker.metricsInternal.streamResets++;
    this.broker.clientError(this, err);
    ss.framer.clear();
    this.streamGone(ss);
    this.transport.resetStream(ss.duplex, err.reasonCode);
  }

  // ---------------------------------------------------------------- keepalive

  /** @internal Starts keepalive supervision: 1.5 x the interval [MQTT-3.1.2-22]. */
  startKeepalive(seconds: number): void {
    this.keepaliveTimer?.cancel();
    this.keepaliveMs = seconds * 1500;
    if (this.keepaliveMs > 0) this.armKeepalive(this.keepaliveMs);
  }

  private armKeepalive(ms: number): void {
    this.keepaliveTimer = this.broker.scheduler.setTimer(ms, () => {
      if (this.phase === "closed") return;
      const idle = this.broker.scheduler.now() - this.lastActivity;
      if (idle >= this.keepaliveMs) {
        this.broker.clientError(this, new MqttError(ReasonCode.KeepAliveTimeout, "keep alive timeout"));
        this.disconnect(ReasonCode.KeepAliveTimeout, "keep alive timeout");
      } else {
        this.armKeepalive(this.keepaliveMs - idle);
      }
    });
  }

  /** @internal */
  cancelConnectTimer(): void {
    this.connectTimer?.cancel();
    this.connectTimer = undefined;
  }

  // ---------------------------------------------------------------- writing

  private genOpts(): object {
    return this.version === 5
      ? { protocolVersion: 5, properties: { maximumPacketSize: this.clientMaxPacketSize } }
      : { protocolVersion: this.version };
  }

  /** The stream to answer on: `ss` if writable, else the control stream. */
  replyStream(ss: StreamState): StreamState {
    return ss.writable ? ss : this.control;
  }

  /**
   * Encodes and writes a packet; false if it could not be written (closed, too large for the
   * client [MQTT-3.1.2-24], or not encodable).
   */
  write(ss: StreamState, packet: Packet): boolean {
    const target = this.replyStream(ss);
    if (!target.writable) return false;
    let buf: Buffer;
    try {
      buf = mqttPacket.generate(packet, this.genOpts());
    } catch (e) {
      this.broker.clientError(
        this,
        new MqttError(
          ReasonCode.ImplementationSpecificError,
          `cannot encode ${packet.cmd}: ${(e as Error).message}`,
        ),
      );
      return false;
    }
    if (buf.length > this.clientMaxPacketSize) return false;
    this.broker.metricsInternal.bytesOut += buf.length;
    if (!target.duplex.write(buf)) this.watchDrain(target);
    return true;
  }

  /** Resumes sending queued messages once a congested stream drains (or goes away). */
  private watchDrain(ss: StreamState): void {
    if (ss.drainWatched) return;
    ss.drainWatched = true;
    const done = (): void => {
      ss.duplex.off("drain", done);
      ss.duplex.off("close", done);
      ss.drainWatched = false;
      if (this.phase === "connected") this.session?.drain();
    };
    ss.duplex.on("drain", done);
    ss.duplex.on("close", done);
  }

  /** Bytes written and not yet taken by the transport, over all streams. */
  get pendingBytes(): number {
    let n = 0;
    for (const ss of this.streams) if (ss.writable) n += ss.duplex.writableLength;
    return n;
  }

  // SessionLink --------------------------------------------------------------

  get sendQuota(): number {
    return Math.min(this.clientReceiveMaximum, this.broker.options.maxInflight); // [MQTT-3.3.4-9]
  }

  get congested(): boolean {
    if (this.phase !== "connected") return true;
    const over = this.pendingBytes > this.broker.options.maxPendingBytes;
    if (over) {
      for (const ss of this.streams) if (ss.writable && ss.duplex.writableNeedDrain) this.watchDrain(ss);
    }
    return over;
  }

  groupByRoute(
    subs: readonly SubscriptionRecord[],
  ): Array<{ route: string | undefined; subs: SubscriptionRecord[] }> {
    if (subs.length === 1) {
      const s = this.routeStream(subs[0]!.filter);
      return [
        { route: s === this.control ? undefined : subs[0]!.filter, subs: subs as SubscriptionRecord[] },
      ];
    }
    const groups = new Map<StreamState, { route: string | undefined; subs: SubscriptionRecord[] }>();
    for (const sub of subs) {
      const s = this.routeStream(sub.filter);
      let g = groups.get(s);
      if (!g) {
        g = { route: s === this.control ? undefined : sub.filter, subs: [] };
        groups.set(s, g);
      }
      g.subs.push(sub);
    }
    return [...groups.values()];
  }

  private routeStream(filter: string | undefined): StreamState {
    if (filter === undefined) return this.control;
    const s = this.routes?.get(filter);
    return s?.writable ? s : this.control;
  }

  /** @internal Routes a subscription's deliveries to the stream that carried its SUBSCRIBE. */
  setRoute(filter: string, ss: StreamState): void {
    const prev = this.routes?.get(filter);
    if (prev === ss) return;
    if (prev) {
      prev.routes--;
      this.maybeEndStream(prev);
    }
    if (ss.kind === "uni") return;
    if (this.routes === undefined) this.routes = new Map();
    this.routes.set(filter, ss);
    ss.routes++;
  }

  /** @internal */
  clearRoute(filter: string): void {
    const prev = this.routes?.get(filter);
    if (!prev) return;
    this.routes?.delete(filter);
    prev.routes--;
    this.maybeEndStream(prev);
  }

  sendPublish(rec: OutboundRecord, dup: boolean): boolean {
    const ss = this.routeStream(rec.route);
    const m = rec.message;
    const packet: IPublishPacket = {
      cmd: "publish",
      topic: m.topic,
      payload: m.payload,
      qos: rec.qos,
      retain: rec.retain,
      dup: rec.qos > 0 && dup, // [MQTT-3.3.1-2] [MQTT-3.3.1-3]
      ...(rec.qos > 0 ? { messageId: rec.packetId! } : {}),
    };
    if (this.version === 5) {
      const props: NonNullable<IPublishPacket["properties"]> = { ...m.properties };
      if (m.expiresAt !== undefined) {
        // [MQTT-3.3.2-6]: the remaining lifetime.
        const left = Math.ceil((m.expiresAt - this.broker.scheduler.now()) / 1000);
        if (left > 0) props.messageExpiryInterval = left;
      }
      if (rec.subscriptionIds.length === 1) props.subscriptionIdentifier = rec.subscriptionIds[0]!;
      else if (rec.subscriptionIds.length > 1) props.subscriptionIdentifier = [...rec.subscriptionIds];
      this.applyOutboundAlias(packet, props, ss);
      if (Object.keys(props).length > 0) packet.properties = props;
    }
    const ok = this.write(ss, packet);
    if (ok) this.broker.metricsInternal.messagesOut++;
    return ok;
  }

  /**
   * Outbound topic aliases within the client's Topic Alias Maximum [MQTT-3.1.2-26]
   * [MQTT-3.1.2-27] [MQTT-3.3.2-11]. Streams are not ordered relative to each other, so the short
   * form is used only on the stream that established the alias; aliases are never reassigned.
   */
  private applyOutboundAlias(
    packet: IPublishPacket,
    props: NonNullable<IPublishPacket["properties"]>,
    ss: StreamState,
  ): void {
    if (this.clientTopicAliasMaximum === 0) return;
    if (this.outAliases === undefined) this.outAliases = new Map();
    const entry = this.outAliases.get(packet.topic);
    if (entry) {
      if (entry.stream === ss) {
        props.topicAlias = entry.alias;
        packet.topic = "";
      }
      return;
    }
    if (this.outAliases.size < this.clientTopicAliasMaximum) {
      const alias = this.outAliases.size + 1;
      this.outAliases.set(packet.topic, { alias, stream: ss });
      props.topicAlias = alias;
    }
  }

  sendPubrel(rec: OutboundRecord): void {
    this.write(this.routeStream(rec.route), { cmd: "pubrel", messageId: rec.packetId! });
  }

  // ---------------------------------------------------------------- ending

  /**
   * Ends the connection because of an error or a server decision, telling a v5 client why with
   * DISCONNECT [MQTT-3.14.0-1]; then closes the network connection [MQTT-4.13.2-1].
   */
  disconnect(reasonCode: number, reason: string): void {
    if (this.phase === "closed") return;
    if (this.phase === "connected" && this.version === 5) {
      const packet: IDisconnectPacket = { cmd: "disconnect", reasonCode };
      if (this.requestProblemInformation && reason) packet.properties = { reasonString: reason };
      this.write(this.control, packet);
    }
    this.close(
      reasonCode === ReasonCode.ServerBusy ? TransportCloseCode.Overloaded : TransportCloseCode.Normal,
      reason || reasonCodeName(reasonCode),
      reasonCode,
    );
  }

  /** Refuses a CONNECT with a CONNACK carrying the reason, then closes [MQTT-3.2.2-7]. */
  refuseConnect(reasonCode: number, reason: string): void {
    if (this.phase === "closed") return;
    if (this.version === 5) {
      this.write(this.control, {
        cmd: "connack",
        sessionPresent: false, // [MQTT-3.2.2-6]
        reasonCode,
        ...(reason ? { properties: { reasonString: reason } } : {}),
      });
    } else {
      this.write(this.control, {
        cmd: "connack",
        sessionPresent: false,
        returnCode: connackReturnCodeV3(reasonCode),
      });
    }
    this.close(
      reasonCode === ReasonCode.ServerBusy ? TransportCloseCode.Overloaded : TransportCloseCode.Normal,
      reason,
      reasonCode,
    );
  }

  /**
   * @internal A DISCONNECT arrived on the control stream. QUIC does not order streams with each
   * other, so packets the client sent on its data streams just before it (a QoS 0 PUBLISH on a
   * fresh uni stream, say) may still be on their way to us, or read a tick later; they count
   * (MQTT 5.0 §4.6: a PUBLISH sent is a PUBLISH to be processed). Reading goes on until the
   * streams surfaced so far have handed over what already arrived, and then until every data
   * stream the client opened has ended, the client closes the connection, or
   * `disconnectDrainTimeout` passes, whichever comes first; then the connection closes normally.
   * Nothing more is read from the control stream [MQTT-3.14.4-1].
   */
  closeAfterDisconnect(reasonCode: number): void {
    if (this.phase !== "connected" || this.draining) return;
    this.keepaliveTimer?.cancel();
    const draining: DrainState = { reasonCode, timer: undefined, settled: false };
    this.draining = draining;
    draining.timer = this.broker.scheduler.setTimer(this.broker.options.disconnectDrainTimeout, () => {
      draining.timer = undefined;
      this.finishDrain();
    });
    // Two event-loop turns: the rest of the QUIC events of the datagrams already received (new
    // streams announced after the control stream's data), then their first reads (a tick later).
    setImmediate(() =>
      setImmediate(() => {
        draining.settled = true;
        this.maybeFinishDrain();
      }),
    );
  }

  /** Closes once the drain after DISCONNECT has nothing left to wait for. */
  private maybeFinishDrain(): void {
    const d = this.draining;
    if (!d?.settled || this.busy || this.inbox.length > 0 || this.pumping) return;
    for (const ss of this.streams) {
      if (ss.kind !== "control" && ss.alive && !ss.abandoned && !ss.readEnded) return;
    }
    for (const ss of this.held) if (ss.alive && !ss.readEnded) return;
    this.finishDrain();
  }

  private finishDrain(): void {
    const d = this.draining;
    if (!d || this.phase === "closed") return;
    if (this.busy || this.inbox.length > 0) {
      // A handler is still running (a store, a hook): finish it first, then close.
      d.settled = true;
      return;
    }
    d.timer?.cancel();
    d.timer = undefined;
    this.close(TransportCloseCode.Normal, "client disconnected", d.reasonCode, "client");
  }

  /** Closes the network connection (after flushing) and cleans up. */
  close(code: number, reason: string, reasonCode = 0, initiator: "server" | "client" = "server"): void {
    if (this.phase === "closed") return;
    this.lost(initiator, reason, reasonCode, false);
    this.transport.close(code, reason);
  }

  /** The connection is over, whoever ended it. Runs once. */
  private lost(
    initiator: DisconnectInfo["initiator"],
    reason: string,
    reasonCode = 0,
    peerGone = true,
  ): void {
    if (this.ended) return;
    if (this.draining && peerGone && this.phase === "connected") {
      // The client left after its DISCONNECT: what it sent before counts; the close is normal.
      this.draining.settled = true;
      if (this.busy || this.inbox.length > 0) {
        this.keepaliveTimer?.cancel();
        return;
      }
      this.finishDrain();
      return;
    }
    if (peerGone && this.phase === "connected" && (this.busy || this.inbox.length > 0)) {
      // Packets that arrived before the peer left still count (a DISCONNECT among them decides
      // the will); finish them first. Their replies have nowhere to go and are dropped.
      this.peerLost ??= { initiator, reason };
      this.keepaliveTimer?.cancel();
      return;
    }
    if (this.draining) {
      this.draining.timer?.cancel();
      this.draining.timer = undefined;
    }
    this.ended = { initiator, reason, reasonCode };
    const wasConnected = this.phase === "connected";
    this.phase = "closed";
    this.keepaliveTimer?.cancel();
    this.cancelConnectTimer();
    this.inbox = [];
    this.inboxBytes = 0;
    this.inboxQos = 0;
    for (const ss of this.held) ss.duplex.destroy();
    this.held = [];
    this.broker.connectionLost(this, wasConnected, this.ended);
    // The peer went away (control stream ended or broke, network loss): tear the rest down.
    if (peerGone) this.transport.close(TransportCloseCode.ControlStreamDown, reason);
  }

  /** Whether the connection has ended (re-read after an await). */
  get isClosed(): boolean {
    return this.phase === "closed";
  }

  /** How the connection ended, once it did. */
  get endInfo(): DisconnectInfo | undefined {
    return this.ended;
  }
}

/** The wait after DISCONNECT for packets the client sent before it on other streams. */
interface DrainState {
  readonly reasonCode: number;
  timer: TimerHandle | undefined;
  /** The streams surfaced so far have handed over what had arrived. */
  settled: boolean;
}

/** A received packet waiting to be handled, or a read error to report in its turn. */
type InboxItem =
  | { readonly ss: StreamState; readonly packet: Packet; readonly size: number }
  | { readonly ss: StreamState; readonly error: unknown; readonly size: number };

/** Bounds of the packets held while a handler is busy (beyond them, reading pauses). */
const INBOX_MAX_PACKETS = 1024;
const INBOX_MAX_BYTES = 1024 * 1024;
