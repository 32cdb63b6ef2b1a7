/**
 * A small MQTT-over-QUIC broker for client tests: it speaks just enough MQTT to answer (CONNACK,
 * acks, SUBACK, deliveries on the subscribing stream) and records every packet with its stream,
 * checking the wire rules of DESIGN.md as it goes:
 * - CONNECT is the first packet, on the first client-opened bidi stream;
 * - no data stream is opened before CONNACK;
 * - in multi-stream mode, data packets never travel on the control stream and CONNECT-class
 *   packets never on a data stream.
 * Violations are collected in `violations` for the test to assert empty.
 *
 * Client-opened uni streams (the "MQTT-next" dialect) may begin with a flow header, recorded in
 * `FakeStream.flow`; packets from them are answered, and their subscriptions delivered, on the
 * control stream, where acks are then allowed.
 */

import {
  parser as createParser,
  generate,
  type IConnackPacket,
  type IConnectPacket,
  type IPublishPacket,
  type Packet,
  type QoS,
} from "mqtt-packet";
import { nodeProvider } from "../../../src/crypto/node.js";
import { decodeFlowHeader, type FlowHeader, isFlowHeaderStart } from "../../../src/mqtt/flow-header.js";
import { topicMatches } from "../../../src/mqtt/topic.js";
import { type QuicConnection, QuicEndpoint, type QuicStream } from "../../../src/net/quic.js";
import type { TransportSettings } from "../../../src/quic/config.js";
import { testCerts } from "../../quic/harness.js";

const CONTROL_CLASS = new Set(["connect", "connack", "pingreq", "pingresp", "auth", "disconnect"]);
/** Acks a uni-dialect client sends on the control stream (its data streams are write-only). */
const ACKS = new Set(["puback", "pubrec", "pubrel", "pubcomp"]);

/** One stream as the fake broker sees it. */
export class FakeStream {
  readonly packets: Packet[] = [];
  ended = false;
  /** The flow header the client's stream began with, if any. */
  flow: FlowHeader | undefined;
  constructor(
    readonly conn: FakeConn,
    readonly stream: QuicStream,
    /** Arrival index: 0 is the control stream. */
    readonly index: number,
    readonly bidi: boolean,
    readonly serverOpened: boolean,
  ) {}

  get id(): number {
    return this.stream.id;
  }

  send(p: Packet): void {
    this.conn.log.push({ stream: this.index, dir: "out", packet: p });
    this.stream.write(generate(p, { protocolVersion: this.conn.version }));
  }
}

/** A logged packet. */
export interface LogEntry {
  stream: number;
  dir: "in" | "out";
  packet: Packet;
}

/** What the fake broker does with a connection. */
export interface FakeOptions {
  /** "multi" (default) enforces the control/data split; "single" expects one stream only. */
  mode?: "multi" | "single";
  /** CONNACK to send (default: success, no session). */
  connack?: (connect: IConnectPacket, conn: FakeConn) => Partial<IConnackPacket>;
  /** Delay before CONNACK, ms. */
  connackDelay?: number;
  /** Answer PINGREQ (default true). */
  answerPings?: boolean;
  /** QUIC transport settings of the listener (e.g. maxDatagramFrameSize). */
  transport?: Partial<TransportSettings>;
  /** Acknowledge client PUBLISHes (default true). */
  ackPublishes?: (p: IPublishPacket, conn: FakeConn) => boolean;
  /** ALPN protocols, in order of preference (default ["mqtt"]). */
  alpn?: string[];
  /** Refuse client-opened bidi data streams with 0xB5, as the `mqtt5` broker does. */
  refuseBidi?: boolean;
}

/** One client connection. */
export class FakeConn {
  readonly streams: FakeStream[] = [];
  readonly log: LogEntry[] = [];
  readonly violations: string[] = [];
  version: 4 | 5 = 4;
  connect: IConnectPacket | undefined;
  connacked = false;
  readonly subs: { filter: string; qos: QoS; stream: FakeStream; subId: number | undefined }[] = [];
  private nextId = 1;

  constructor(
    readonly broker: FakeQuicBroker,
    readonly conn: QuicConnection,
  ) {
    conn.on("stream", (s: QuicStream) => this.accept(s, false));
  }

  get control(): FakeStream | undefined {
    return this.streams[0];
  }

  /** Packets the client sent, with the index of their stream. */
  received(cmd?: string): LogEntry[] {
    return this.log.filter((e) => e.dir === "in" && (cmd === undefined || e.packet.cmd === cmd));
  }

  private accept(s: QuicStream, serverOpened: boolean): FakeStream {
    const fs = new FakeStream(this, s, this.streams.length, s.bidi, serverOpened);
    this.streams.push(fs);
    if (!serverOpened && fs.index > 0 && !this.connacked)
      this.violations.push(`stream ${s.id} opened before CONNACK`);
    if (!serverOpened && fs.index > 0 && this.broker.opts.mode === "single")
      this.violations.push(`single-stream client opened stream ${s.id}`);
    if (!serverOpened && fs.index > 0 && s.bidi && this.broker.opts.refuseBidi) {
      s.on("error", () => {});
      s.stopSending(0xb5);
      s.reset(0xb5);
      return fs;
    }
    if (!serverOpened || s.bidi) {
      const parser = createParser(fs.index === 0 ? {} : { protocolVersion: this.version });
      parser.on("packet", (p: Packet) => this.onPacket(fs, p));
      parser.on("error", (e: Error) => this.violations.push(`malformed on stream ${s.id}: ${e.message}`));
      let head: Buffer | undefined = !serverOpened && fs.index > 0 ? Buffer.alloc(0) : undefined;
      s.on("data", (b: Buffer) => {
        if (head !== undefined) {
          // An optional flow header first (mqtt.ai "simple multistreams").
          const buf = Buffer.concat([head, b]);
          if (buf.length > 0 && isFlowHeaderStart(buf[0]!)) {
            const r = decodeFlowHeader(buf);
            if (r.kind === "incomplete") {
              head = buf;
              return;
            }
            if (r.kind === "invalid") {
              this.violations.push(`bad flow header on stream ${s.id}: ${r.reason}`);
              head = undefined;
              return;
            }
            fs.flow = r.header;
            b = buf.subarray(r.header.length);
          } else b = buf;
          head = undefined;
        }
        parser.parse(b);
      });
      s.on("end", () => {
        fs.ended = true;
      });
      s.on("error", () => {});
    }
    return fs;
  }

  /** Opens a server stream (a delivery stream, DESIGN.md "server-opened streams"). */
  async open(bidi: boolean): Promise<FakeStream> {
    const s = await this.conn.openStream({ bidi });
    return this.accept(s, true);
  }

  newMessageId(): number {
    return this.nextId++;
  }

  private onPacket(fs: FakeStream, p: Packet): void {
    this.log.push({ stream: fs.index, dir: "in", packet: p });
    const multi = this.broker.opts.mode !== "single";
    const uniDialect = this.conn.alpn === "MQTT-next";
    if (fs.index === 0 && fs.packets.length === 0 && p.cmd !== "connect")
      this.violations.push(`first packet on the control stream is ${p.cmd}`);
    fs.packets.push(p);
    if (multi && fs.index === 0 && !CONTROL_CLASS.has(p.cmd) && !(uniDialect && ACKS.has(p.cmd)))
      this.violations.push(`${p.cmd} on the control stream`);
    if (multi && fs.index > 0 && CONTROL_CLASS.has(p.cmd))
      this.violations.push(`${p.cmd} on data stream ${fs.id}`);
    // Every answer goes back on the stream the packet came on (the control stream for a uni one).
    const reply = fs.bidi ? fs : this.streams[0]!;
    switch (p.cmd) {
      case "connect": {
        if (fs.index !== 0) return;
        this.connect = p;
        this.version = p.protocolVersion === 5 ? 5 : 4;
        const extra = this.broker.opts.connack?.(p, this) ?? {};
        const ack: IConnackPacket = {
          cmd: "connack",
          sessionPresent: false,
          ...(this.version === 5 ? { reasonCode: 0 } : { returnCode: 0 }),
          ...extra,
        };
        const send = () => {
          this.connacked = true;
          fs.send(ack);
        };
        if (this.broker.opts.connackDelay) setTimeout(send, this.broker.opts.connackDelay);
        else send();
        return;
      }
      case "pingreq":
        if (this.broker.opts.answerPings !== false) fs.send({ cmd: "pingresp" });
        return;
      case "disconnect":
        void this.conn.close(0, "client disconnected");
        return;
      case "publish": {
        const ack = this.broker.opts.ackPublishes?.(p, this) ?? true;
        if (ack && p.qos === 1) reply.send({ cmd: "puback", messageId: p.messageId });
        if (ack && p.qos === 2) reply.send({ cmd: "pubrec", messageId: p.messageId });
        if (ack) this.broker.route(p);
        return;
      }
      case "pubrel":
        reply.send({ cmd: "pubcomp", messageId: p.messageId });
        return;
      case "pubrec":
        reply.send({ cmd: "pubrel", messageId: p.messageId });
        return;
      case "subscribe": {
        const granted: number[] = [];
        for (const s of p.subscriptions) {
          const i = this.subs.findIndex((x) => x.filter === s.topic);
          if (i >= 0) this.subs.splice(i, 1);
          this.subs.push({
            filter: s.topic,
            qos: s.qos,
            stream: reply,
            subId: p.properties?.subscriptionIdentifier,
          });
          granted.push(s.qos);
        }
        reply.send({ cmd: "suback", messageId: p.messageId, granted });
        return;
      }
      case "unsubscribe": {
        for (const t of p.unsubscriptions) {
          const i = this.subs.findIndex((x) => x.filter === t);
          if (i >= 0) this.subs.splice(i, 1);
        }
        const u: Packet = { cmd: "unsuback", messageId: p.messageId, granted: [] };
        if (this.version === 5) u.granted = p.unsubscriptions.map(() => 0);
        reply.send(u);
        return;
      }
      default:
        return;
    }
  }

  /** Delivers to this connection's matching subscriptions, each on the stream of its SUBSCRIBE. */
  deliver(p: IPublishPacket): void {
    for (const s of this.subs) {
      if (!topicMatches(s.filter, p.topic)) continue;
      const qos = Math.min(s.qos, p.qos) as QoS;
      const out: IPublishPacket = {
        cmd: "publish",
        topic: p.topic,
        payload: p.payload,
        qos,
        retain: false,
        dup: false,
      };
      if (qos > 0) out.messageId = this.newMessageId();
      if (this.version === 5 && s.subId !== undefined) out.properties = { subscriptionIdentifier: s.subId };
      s.stream.send(out);
    }
  }
}

/** See the module comment. */
export class FakeQuicBroker {
  readonly conns: FakeConn[] = [];
  private waiters: (() => void)[] = [];

  private constructor(
    readonly endpoint: QuicEndpoint,
    readonly opts: FakeOptions,
  ) {
    endpoint.on("connection", (c: QuicConnection) => {
      this.conns.push(new FakeConn(this, c));
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async start(opts: FakeOptions = {}): Promise<FakeQuicBroker> {
    const { leaf } = testCerts(nodeProvider);
    const endpoint = await QuicEndpoint.listen({
      port: 0,
      host: "127.0.0.1",
      alpn: opts.alpn ?? ["mqtt"],
      cert: [leaf.der],
      key: leaf.key,
      crypto: nodeProvider,
      ...(opts.transport ? { transport: opts.transport } : {}),
    });
    return new FakeQuicBroker(endpoint, opts);
  }

  /** The CA that signed the broker's certificate (DER). */
  static ca(): Uint8Array[] {
    return [testCerts(nodeProvider).ca.der];
  }

  get port(): number {
    return this.endpoint.address().port;
  }

  get url(): string {
    return `mqtt+quic://127.0.0.1:${this.port}`;
  }

  /** The newest connection. */
  get last(): FakeConn {
    const c = this.conns.at(-1);
    if (!c) throw new Error("no connection yet");
    return c;
  }

  route(p: IPublishPacket): void {
    for (const c of this.conns) if (!c.conn.closeReason) c.deliver(p);
  }

  async close(): Promise<void> {
    await this.endpoint.close();
  }
}
