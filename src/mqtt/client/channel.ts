/**
 * One MQTT packet stream: a byte stream (a QUIC stream or a TCP socket) with an mqtt-packet
 * parser on its readable side and the packet encoder on its writable side.
 *
 * A channel can be created before its stream exists (a QUIC data stream still being opened):
 * packets sent meanwhile are encoded and buffered, then written in order once `attach()` gives
 * it the stream, so callers never wait for a stream to send.
 */
import type { Duplex } from "node:stream";
import { parser as createParser, generate, type Packet, type Parser } from "mqtt-packet";
import {
  decodeFlowHeader,
  type FlowHeader,
  isFlowHeaderStart,
  MAX_FLOW_HEADER_LENGTH,
} from "../flow-header.js";
import { MqttProtocolError } from "./errors.js";

/** What a channel carries. */
export type ChannelKind =
  /** The first stream: CONNECT, CONNACK, PING, AUTH, DISCONNECT (everything in single-stream mode). */
  | "control"
  /** A client-opened data stream. */
  | "data"
  /** A client-opened unidirectional data stream (write-only; replies come on the control stream). */
  | "data-uni"
  /** A server-opened bidirectional stream (deliveries; acks go back on it). */
  | "server-bidi"
  /** A server-opened unidirectional stream (deliveries; acks go on the control stream). */
  | "server-uni";

/** Callbacks of a channel, all synchronous. */
export interface ChannelEvents {
  /** A packet was parsed. */
  packet(packet: Packet, channel: PacketChannel): void;
  /** A packet was encoded for sending (keepalive counts it). */
  sent(packet: Packet, channel: PacketChannel): void;
  /** The peer ended its sending side (FIN). */
  peerEnded(channel: PacketChannel): void;
  /** The stream is gone: closed after both sides ended, or failed with `err`. Called once. */
  closed(channel: PacketChannel, err: Error | undefined): void;
}

/** A packet stream; see the module comment. */
export class PacketChannel {
  private stream: Duplex | undefined;
  private pending: Buffer[] = [];
  private readonly parser: Parser;
  private wantEnd = false;
  private done = false;
  /** Whether the peer ended its side. */
  peerEnded = false;
  /** The flow header the server's stream began with, if any (mqtt.ai / `mqtt5` brokers). */
  flow: FlowHeader | undefined;
  /**
   * Bytes of a server-opened stream held until we know whether it begins with a flow header;
   * undefined once decided (and always for streams we opened: the broker never sends one there).
   */
  private head: Buffer | undefined;

  constructor(
    /** The logical stream name ("control", "data", "pub:3", "topic:a/b", "sub:2", "server:7"). */
    readonly key: string,
    readonly kind: ChannelKind,
    private readonly protocolVersion: 4 | 5,
    private readonly events: ChannelEvents,
  ) {
    this.parser = createParser({ protocolVersion });
    this.parser.on("packet", (p: Packet) => {
      if (!this.done) this.events.packet(p, this);
    });
    if (kind === "server-bidi" || kind === "server-uni") this.head = Buffer.alloc(0);
    this.parser.on("error", (e: unknown) => {
      const msg = e instanceof Error ? e.message : String(e);
      this.destroy(new MqttProtocolError(`malformed packet from the broker on ${this.key}: ${msg}`, 0x81));
    });
  }

  /** The underlying stream, once attached. */
  get duplex(): Duplex | undefined {
    return this.stream;
  }

  /** Whether the channel is gone. */
  get isClosed(): boolean {
    return this.done;
  }

  /** Whether our sending side was ended (or will be once buffered packets are written). */
  get isEnding(): boolean {
    return this.wantEnd;
  }

  /** Gives the channel its stream; buffered packets are written now. */
  attach(stream: Duplex): void {
    if (this.done) {
      stream.destroy();
      return;
    }
    this.stream = stream;
    stream.on("data", (chunk: Buffer) => {
      if (this.done) return;
      if (this.head !== undefined) {
        const rest = this.readFlowHeader(chunk);
        if (rest === undefined || rest.length === 0) return;
        chunk = rest;
      }
      this.parser.parse(chunk);
    });
    stream.on("end", () => {
      this.peerEnded = true;
      if (!this.done) this.events.peerEnded(this);
    });
    stream.on("error", (err: Error) => this.finish(err));
    stream.on("close", () => this.finish(undefined));
    for (const b of this.pending) stream.write(b);
    this.pending = [];
    if (this.wantEnd) stream.end();
  }

  /**
   * Consumes the optional flow header at the start of a server-opened stream: `mqtt5` brokers
   * (mqttv5) begin each delivery stream with a server-data header (type 0x13, flow id, expiry,
   * flags); no MQTT packet starts with 0x11-0x14, so the first byte decides. Returns the bytes
   * after the header, or undefined while it is incomplete (or after destroying a bad stream).
   */
  private readFlowHeader(chunk: Buffer): Buffer | undefined {
    const buf = this.head!.length === 0 ? chunk : Buffer.concat([this.head!, chunk]);
    if (buf.length === 0) return undefined;
    if (!isFlowHeaderStart(buf[0]!)) {
      this.head = undefined;
      return buf;
    }
    const r = decodeFlowHeader(buf);
    if (r.kind === "incomplete") {
      if (buf.length >= MAX_FLOW_HEADER_LENGTH) {
        this.destroy(new MqttProtocolError(`flow header too long on ${this.key}`, 0x82));
        return undefined;
      }
      this.head = buf;
      return undefined;
    }
    if (r.kind === "invalid") {
      this.destroy(new MqttProtocolError(`bad flow header on ${this.key}: ${r.reason}`, 0x82));
      return undefined;
    }
    this.head = undefined;
    this.flow = r.header;
    return buf.subarray(r.header.length);
  }

  /** Encodes and sends a packet (buffered until the stream is attached). False if the channel is gone. */
  send(packet: Packet): boolean {
    if (this.done || this.wantEnd) return false;
    const bytes = generate(packet, { protocolVersion: this.protocolVersion });
    this.events.sent(packet, this);
    if (this.stream) this.stream.write(bytes);
    else this.pending.push(bytes);
    return true;
  }

  /**
   * Stops or restarts reading. A paused QUIC stream stops extending its flow-control window, so the
   * broker's sending on this stream alone is held back (backpressure of a slow subscriber).
   */
  setPaused(paused: boolean): void {
    if (!this.stream || this.done) return;
    if (paused) this.stream.pause();
    else this.stream.resume();
  }

  /** Ends our sending side after what was sent (FIN); the channel still reads until the peer ends. */
  end(): void {
    if (this.wantEnd || this.done) return;
    this.wantEnd = true;
    if (this.stream) this.stream.end();
    if (this.peerEnded) this.finish(undefined);
  }

  /** Abandons the stream now. */
  destroy(err?: Error): void {
    if (this.done) return;
    this.stream?.destroy();
    this.finish(err);
  }

  private finish(err: Error | undefined): void {
    if (this.done) return;
    this.done = true;
    this.pending = [];
    this.events.closed(this, err);
  }
}
