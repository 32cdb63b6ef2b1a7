/**
 * One network connection to the broker as MQTT uses it (a "link"; the MQTT session outlives it):
 * the control channel, data channels opened lazily by logical key, server-opened delivery
 * channels, and the keepalive.
 *
 * Stream mapping (DESIGN.md, MQTT over QUIC): in multi-stream mode the first stream is the control
 * stream (CONNECT, CONNACK, PINGREQ/PINGRESP, AUTH, DISCONNECT) and every other packet travels on a
 * data stream named by a key ("data", "pub:1", "topic:a/b", "sub:2"...); data streams are opened
 * only after CONNACK. In single-stream mode (and over TCP) every key is the control stream.
 *
 * Data streams are bidirectional (EMQX style) or, in the `uni` dialect (ALPN "MQTT-next", the
 * Rust `mqtt5` broker), unidirectional: each begins with a client-data flow header (mqtt.ai
 * "simple multistreams"; flow ids even, 2, 4, 6...) and the broker answers on the control stream.
 */
import { parser as createParser, type Packet } from "mqtt-packet";
import { MquicttError } from "../../errors.js";
import { decodeFlowHeader, encodeFlowHeader, FlowType, isFlowHeaderStart } from "../flow-header.js";
import { PacketChannel } from "./channel.js";
import type { ClientTransport, MigrateOptions } from "./dial.js";
import { MqttConnectionError, MqttKeepaliveTimeoutError } from "./errors.js";
import { type ClientScheduler, Timer } from "./timers.js";

/** What a link reports to the client, synchronously. */
export interface LinkEvents {
  /** A packet arrived on `channel`. */
  packet(packet: Packet, channel: PacketChannel): void;
  /** A packet was sent on `channel`. */
  sent(packet: Packet, channel: PacketChannel): void;
  /** A client-opened data channel failed or was ended by the broker while we still used it. */
  channelLost(channel: PacketChannel, err: Error | undefined): void;
  /** The connection is gone (`err` unless it ended normally). Called once. */
  lost(err: Error | undefined): void;
}

/** Longest wait for the PINGRESP that precedes a DISCONNECT after QoS 0 on data streams, ms. */
const DISCONNECT_SYNC_MAX_MS = 2000;

/** See the module comment. */
export class Link {
  readonly control: PacketChannel;
  private readonly channels = new Map<string, PacketChannel>();
  private readonly serverChannels = new Set<PacketChannel>();
  private dataAllowed = false;
  private gone = false;
  private lastSent: number;
  private keepaliveMs = 0;
  private readonly pingTimer: Timer;
  private readonly pingDeadline: Timer;
  private serverStreams = 0;
  /** The pseudo-channel that QoS 0 PUBLISHes in DATAGRAM frames arrive on (never written to). */
  private readonly datagrams: PacketChannel;
  /** Sequence of the next client flow (flow id = 2 x sequence: client flows are even). */
  private nextFlow = 1n;
  /** A QoS 0 PUBLISH went out on a data stream since the last PINGRESP (see `close`). */
  private unsyncedQos0 = false;
  private closing = false;
  private pingWaiters: (() => void)[] = [];

  constructor(
    private readonly transport: ClientTransport,
    private readonly protocolVersion: 4 | 5,
    /** Whether packets other than CONNECT-class ones get their own streams. */
    readonly multiStream: boolean,
    private readonly scheduler: ClientScheduler,
    private readonly events: LinkEvents,
    /** How data streams are opened: bidi (EMQX style) or uni (mqtt.ai style). */
    readonly dataStreams: "bidi" | "uni" = "bidi",
    /** Whether each uni data stream starts with a client-data flow header (ALPN "MQTT-next"). */
    private readonly flowHeaders = false,
  ) {
    this.lastSent = scheduler.now();
    this.pingTimer = new Timer(scheduler, () => this.onPingTimer());
    this.pingDeadline = new Timer(scheduler, () =>
      this.destroy(new MqttKeepaliveTimeoutError(this.keepaliveMs / 1000)),
    );
    this.control = this.makeChannel("control", "control");
    this.datagrams = this.makeChannel("datagram", "server-uni");
    this.control.attach(transport.control);
    transport.onServerStream((stream, bidi) => {
      if (this.gone) {
        stream.destroy();
        return;
      }
      const ch = this.makeChannel(`server:${++this.serverStreams}`, bidi ? "server-bidi" : "server-uni");
      this.serverChannels.add(ch);
      ch.attach(stream);
    });
    transport.onDatagram?.((data) => this.onDatagram(data));
    transport.onClose((err) => this.finish(err));
  }

  /** A QUIC DATAGRAM: one whole packet; only a QoS 0 PUBLISH is accepted there [DESIGN.md]. */
  private onDatagram(data: Uint8Array): void {
    if (this.gone || !this.dataAllowed) return;
    const parser = createParser({ protocolVersion: this.protocolVersion });
    parser.on("packet", (p: Packet) => {
      if (p.cmd === "publish" && p.qos === 0) this.events.packet(p, this.datagrams);
    });
    parser.on("error", () => {});
    let buf = Buffer.from(data.buffer, data.byteOffset, data.length);
    if (buf.length > 0 && isFlowHeaderStart(buf[0]!)) {
      // An optional flow header before the packet (mqtt.ai datagrams); a bad one drops the datagram.
      const r = decodeFlowHeader(buf);
      if (r.kind !== "header") return;
      buf = buf.subarray(r.header.length);
    }
    parser.parse(buf);
  }

  /** The ALPN protocol the broker chose (QUIC). */
  get alpn(): string | undefined {
    return this.transport.alpn;
  }

  /** What the transport is ("quic", "tcp", "tls"...). */
  get kind(): string {
    return this.transport.kind;
  }

  /** QUIC: moves the connection to a new local socket (`MqttClient.migrate`). */
  migrate(opts: MigrateOptions): Promise<void> {
    if (!this.transport.migrate)
      return Promise.reject(
        new MquicttError(
          "ERR_MQTT_MIGRATION",
          `a ${this.transport.kind} connection cannot migrate (QUIC only)`,
        ),
      );
    return this.transport.migrate(opts);
  }

  /** Whether the link is closed or closing. */
  get isGone(): boolean {
    return this.gone;
  }

  /** Called on CONNACK: data streams may be opened from now on [DESIGN.md: held until CONNACK]. */
  allowData(): void {
    this.dataAllowed = true;
  }

  /**
   * The channel for a logical key, opening a data stream for it if needed. In single-stream mode,
   * or before CONNACK, or for "control", this is the control channel.
   */
  channel(key: string): PacketChannel {
    if (!this.multiStream || key === "control" || !this.dataAllowed) return this.control;
    let ch = this.channels.get(key);
    if (ch && !ch.isClosed && !ch.isEnding) return ch;
    const uni = this.dataStreams === "uni" && this.transport.openUniStream !== undefined;
    ch = this.makeChannel(key, uni ? "data-uni" : "data");
    this.channels.set(key, ch);
    const opening = ch;
    const open = uni ? this.transport.openUniStream!() : this.transport.openStream();
    open.then(
      (s) => {
        if (uni && this.flowHeaders && !opening.isClosed) {
          // Expiry 0: the flow's state (its subscriptions) ends with the stream.
          const flowId = 2n * this.nextFlow++;
          s.write(encodeFlowHeader({ type: FlowType.ClientData, flowId, expiryInterval: 0n, flags: 0 }));
        }
        opening.attach(s);
      },
      (e: Error) => opening.destroy(e),
    );
    return ch;
  }

  /** Whether a data channel for `key` is open (for tests and stream accounting). */
  hasChannel(key: string): boolean {
    const ch = this.channels.get(key);
    return ch !== undefined && !ch.isClosed;
  }

  /** Sends a packet on the channel of `key`. False once the link is gone. */
  send(key: string, packet: Packet): boolean {
    if (this.gone) return false;
    return this.channel(key).send(packet);
  }

  /**
   * Where to answer a packet that arrived on `ch`: on the same stream, except for a server-opened
   * unidirectional stream (the control stream) [DESIGN.md] and a stream we already ended.
   */
  replyChannel(ch: PacketChannel): PacketChannel {
    if (ch.kind === "server-uni") return this.control;
    if (ch.isClosed || ch.isEnding) return this.channel("data");
    return ch;
  }

  /** Pauses or resumes reading the data stream of `key` (never the control stream). */
  setPaused(key: string, paused: boolean): void {
    if (!this.multiStream || key === "control") return;
    this.channels.get(key)?.setPaused(paused);
  }

  /** Ends the data channel of `key` (FIN) once it is no longer needed. */
  endChannel(key: string): void {
    const ch = this.channels.get(key);
    if (!ch) return;
    this.channels.delete(key);
    ch.end();
  }

  /** Starts the keepalive: a PINGREQ whenever nothing was sent for `seconds` (0 disables). */
  startKeepalive(seconds: number): void {
    this.keepaliveMs = seconds * 1000;
    if (this.keepaliveMs > 0 && !this.gone) this.pingTimer.start(this.keepaliveMs);
  }

  /** A PINGRESP arrived. */
  onPingResponse(): void {
    this.pingDeadline.stop();
    this.unsyncedQos0 = false;
    for (const w of this.pingWaiters.splice(0)) w();
  }

  /** PINGREQ on the control stream; resolves on the PINGRESP, after `ms`, or when the link goes. */
  private roundTrip(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = new Timer(this.scheduler, () => done());
      const done = (): void => {
        timer.stop();
        this.pingWaiters = this.pingWaiters.filter((w) => w !== done);
        resolve();
      };
      this.pingWaiters.push(done);
      timer.start(ms);
      this.control.send({ cmd: "pingreq" });
    });
  }

  private onPingTimer(): void {
    if (this.gone) return;
    const idle = this.scheduler.now() - this.lastSent;
    if (idle >= this.keepaliveMs - 1) {
      // [MQTT-3.1.2-23] a Control Packet within every keepalive period; traffic on any stream counts.
      this.control.send({ cmd: "pingreq" });
      if (!this.pingDeadline.isArmed) this.pingDeadline.start(this.keepaliveMs);
      this.pingTimer.start(this.keepaliveMs);
    } else {
      this.pingTimer.start(this.keepaliveMs - idle);
    }
  }

  /**
   * Sends `packet` (a DISCONNECT, or nothing) on the control stream and closes the connection
   * gracefully; no packet is sent after it [MQTT-3.14.4-1]. `err` is what `lost` reports.
   */
  async close(packet: Packet | undefined, graceMs: number, err?: Error): Promise<void> {
    if (this.gone || this.closing) return;
    if (packet?.cmd === "disconnect" && this.unsyncedQos0) {
      // QUIC does not order streams: a QoS 0 PUBLISH just written on a data stream can reach the
      // broker after a DISCONNECT on the control stream, and a broker that acts on DISCONNECT at
      // once drops it (the `mqtt5` broker does). Finish the data streams, then one PINGREQ /
      // PINGRESP round trip on the control stream (bounded) before the DISCONNECT.
      this.closing = true;
      for (const ch of this.channels.values()) ch.end();
      await this.roundTrip(Math.min(graceMs, DISCONNECT_SYNC_MAX_MS));
      if (this.gone) return;
    }
    if (packet) this.control.send(packet);
    this.gone = true;
    this.closeError = err;
    this.stopTimers();
    for (const ch of this.channels.values()) ch.end();
    try {
      await this.transport.close(graceMs);
    } finally {
      this.finish(err);
    }
  }

  /** Resolves once the link is gone. */
  whenGone(): Promise<void> {
    if (this.lostReported) return Promise.resolve();
    return new Promise((resolve) => this.goneWaiters.push(resolve));
  }

  /** Drops the connection now (keepalive timeout, protocol error, a lost stream). */
  destroy(err: Error | undefined): void {
    if (this.gone) {
      this.finish(err);
      return;
    }
    this.gone = true;
    this.closeError = err;
    this.stopTimers();
    this.transport.destroy(err);
    this.finish(err);
  }

  private lostReported = false;
  private goneWaiters: (() => void)[] = [];
  /** Why we are closing, when we close because of an error: what `lost` reports. */
  private closeError: Error | undefined;

  private finish(err: Error | undefined): void {
    this.gone = true;
    this.stopTimers();
    for (const w of this.pingWaiters.splice(0)) w();
    if (this.lostReported) return;
    this.lostReported = true;
    this.events.lost(this.closeError ?? err);
    for (const w of this.goneWaiters.splice(0)) w();
  }

  private stopTimers(): void {
    this.pingTimer.stop();
    this.pingDeadline.stop();
  }

  private makeChannel(key: string, kind: PacketChannel["kind"]): PacketChannel {
    return new PacketChannel(key, kind, this.protocolVersion, {
      packet: (p, ch) => {
        if (!this.gone) this.events.packet(p, ch);
      },
      sent: (p, ch) => {
        this.lastSent = this.scheduler.now();
        if (p.cmd === "publish" && p.qos === 0 && ch.kind !== "control") this.unsyncedQos0 = true;
        this.events.sent(p, ch);
      },
      peerEnded: (ch) => {
        if (this.gone) return;
        if (ch.kind === "control")
          this.destroy(new MqttConnectionError("the broker closed the control stream"));
        else if (ch.kind === "data" && !ch.isEnding) this.dataChannelLost(ch, undefined);
      },
      closed: (ch, err) => {
        this.serverChannels.delete(ch);
        if (this.gone) return;
        if (ch.kind === "control") {
          this.destroy(err ?? new MqttConnectionError("the control stream closed"));
          return;
        }
        if ((ch.kind === "data" || ch.kind === "data-uni") && this.channels.get(ch.key) === ch) {
          this.channels.delete(ch.key);
          if (!ch.isEnding || err) this.dataChannelLost(ch, err);
        }
      },
    });
  }

  private dataChannelLost(ch: PacketChannel, err: Error | undefined): void {
    if (this.channels.get(ch.key) === ch) this.channels.delete(ch.key);
    ch.destroy();
    this.events.channelLost(ch, err);
  }
}
