/**
 * What the broker needs from a network connection: byte streams, nothing more.
 *
 * A TCP socket is one control stream. A QUIC connection is a control stream (the first
 * client-opened bidirectional stream) plus any number of later client-opened streams, announced
 * with the `stream` event. An adapter for a new transport implements {@link MqttTransport} in a
 * few lines (see `src/net/tcp.ts`); the broker never touches sockets, QUIC or timers itself.
 *
 * Contract for implementers:
 * - `control` is readable/writable from the start. Its readable side ending or erroring ends the
 *   MQTT connection (the broker then calls `close`).
 * - `stream` is emitted for each later client-opened stream, after `handle(transport)` was called
 *   (buffer earlier ones). Uni streams are readable only (the broker never writes to them).
 *   For QUIC, call `handle()` once the client opened its first bidi stream: that one is `control`.
 * - `datagram` (optional) is emitted for each QUIC DATAGRAM frame the client sends.
 * - A stream the peer resets is destroyed with an error (any error; QUIC uses StreamResetError).
 * - `resetStream(stream, code)` abandons one stream in both directions (QUIC: RESET_STREAM and
 *   STOP_SENDING with `code`, the MQTT reason code that caused it); other streams go on.
 * - `close(code, reason)` ends the whole connection after flushing what was already written to
 *   the streams (TCP: `end()`; QUIC: end the control stream, then CONNECTION_CLOSE with the
 *   application error code: 0 normal, 1 control stream down, 2 overloaded).
 * - `close` is emitted exactly once when the connection is gone, whoever closed it.
 * - Inbound bytes flow with backpressure: the broker pauses streams it cannot serve yet (data
 *   streams before CONNACK, a busy connection) and writes respect `write()`'s return value.
 */
import { EventEmitter } from "node:events";
import { Duplex } from "node:stream";
import { MquicttError } from "../errors.js";

/** Application error codes for closing an MQTT-over-QUIC connection (DESIGN.md). */
export const TransportCloseCode = {
  /** Normal close (also used after an MQTT error that was reported with DISCONNECT/CONNACK). */
  Normal: 0,
  /** The control stream went down. */
  ControlStreamDown: 1,
  /** The server is overloaded (connection refused for capacity). */
  Overloaded: 2,
} as const;

/** Facts about a client-opened stream. */
export interface StreamInfo {
  /** Bidirectional (a data stream) or unidirectional (client to server only). */
  readonly bidi: boolean;
  /** Transport stream id, when there is one (QUIC), for logs. */
  readonly id?: number;
}

/** A client connection as the broker sees it: one control stream, maybe more data streams. */
export interface MqttTransport {
  /** Which kind of network connection this is. */
  readonly kind: "tcp" | "quic" | "memory";
  /** The peer's address, "host:port", for logs and hooks. */
  readonly remoteAddress: string;
  /** The client's TLS certificate (DER), when the transport authenticated one. */
  readonly peerCertificate?: Uint8Array;
  /** The negotiated ALPN protocol, when there is one (QUIC). */
  readonly alpn?: string;
  /**
   * The first client-opened bidi stream: CONNECT, CONNACK, PINGREQ/PINGRESP, AUTH, DISCONNECT
   * (and, for single-stream clients and TCP, every other packet too).
   */
  readonly control: Duplex;
  /** Later client-opened streams (QUIC multi-stream): bidi data streams and uni streams. */
  on(event: "stream", listener: (stream: Duplex, info: StreamInfo) => void): this;
  /**
   * An unreliable QUIC DATAGRAM (RFC 9221) from the client, when the transport supports them:
   * one QoS 0 PUBLISH, optionally preceded by a flow header. Anything else in it is dropped.
   */
  on(event: "datagram", listener: (data: Uint8Array) => void): this;
  /** The connection is gone (emitted once). */
  on(event: "close", listener: () => void): this;
  /** Resets one stream (a protocol error on a data stream resets that stream only). */
  resetStream(stream: Duplex, code: number): void;
  /** Ends the whole connection, flushing what was written first. */
  close(code: number, reason: string): void;
}

/** A stream reset by the peer of an in-memory transport. */
export class MemoryStreamResetError extends MquicttError {
  constructor(
    /** The stream's id. */
    readonly streamId: number,
    /** The application error code of the reset. */
    readonly errorCode: number,
  ) {
    super("ERR_STREAM_RESET", `stream ${streamId} reset by peer with code ${errorCode}`);
  }
}

/**
 * One end of an in-memory stream. Writes arrive at the peer asynchronously (never re-entrantly),
 * in order, with backpressure: a write completes only when the peer's readable buffer has room.
 */
export class MemoryStream extends Duplex {
  /** @internal */
  peer!: MemoryStream;
  private held: (() => void) | undefined;
  /** The reset code, once this stream was reset by either side. */
  resetCode: number | undefined;

  constructor(
    /** Stream id (QUIC numbering: 0 is the control stream, client bidi 4n, client uni 4n+2). */
    readonly streamId: number,
    /** Bidirectional? */
    readonly bidi: boolean,
    highWaterMark: number,
  ) {
    super({ allowHalfOpen: true, highWaterMark });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    process.nextTick(() => {
      const peer = this.peer;
      if (peer.destroyed || peer.readableEnded) {
        cb();
        return;
      }
      if (peer.push(chunk)) cb();
      else peer.held = () => cb();
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    process.nextTick(() => {
      if (!this.peer.destroyed) this.peer.push(null);
      cb();
    });
  }

  override _read(): void {
    const h = this.held;
    this.held = undefined;
    h?.();
  }

  /** @internal Abandon both directions on both ends; the peer sees a reset error. */
  resetBoth(code: number): void {
    this.resetCode = code;
    this.peer.resetCode = code;
    if (!this.destroyed) this.destroy();
    if (!this.peer.destroyed) this.peer.destroy(new MemoryStreamResetError(this.streamId, code));
  }
}

/** How an in-memory connection ended. */
export interface MemoryCloseInfo {
  /** Application error code. */
  readonly code: number;
  /** Reason phrase. */
  readonly reason: string;
  /** Which side closed it. */
  readonly initiator: "server" | "client";
}

function streamPair(id: number, bidi: boolean, hwm: number): [server: MemoryStream, client: MemoryStream] {
  const s = new MemoryStream(id, bidi, hwm);
  const c = new MemoryStream(id, bidi, hwm);
  s.peer = c;
  c.peer = s;
  // Errors are observed through 'close' and resetCode; never crash on an unhandled 'error'.
  s.on("error", () => {});
  c.on("error", () => {});
  return [s, c];
}

class ConnectionState extends EventEmitter {
  info: MemoryCloseInfo | undefined;
  readonly streams: MemoryStream[] = [];
}

/** The broker's end of an in-memory connection. */
export class MemoryTransport extends EventEmitter implements MqttTransport {
  readonly kind: "tcp" | "quic" | "memory";
  readonly remoteAddress: string;
  readonly peerCertificate?: Uint8Array;
  readonly control: Duplex;

  /** @internal */
  constructor(
    private readonly state: ConnectionState,
    control: MemoryStream,
    opts: { kind: "tcp" | "quic" | "memory"; remoteAddress: string; peerCertificate?: Uint8Array },
  ) {
    super();
    this.kind = opts.kind;
    this.remoteAddress = opts.remoteAddress;
    if (opts.peerCertificate) this.peerCertificate = opts.peerCertificate;
    this.control = control;
  }

  resetStream(stream: Duplex, code: number): void {
    if (stream instanceof MemoryStream) stream.resetBoth(code);
    else stream.destroy();
  }

  close(code: number, reason: string): void {
    closeConnection(this.state, { code, reason, initiator: "server" }, true);
  }

  /** How the connection ended, once it did. */
  get closeInfo(): MemoryCloseInfo | undefined {
    return this.state.info;
  }
}

function closeConnection(state: ConnectionState, info: MemoryCloseInfo, graceful: boolean): void {
  if (state.info) return;
  state.info = info;
  const serverSide = info.initiator === "server";
  for (const s of state.streams) {
    // The closing side flushes (graceful) what it wrote; the other side's data is cut off.
    const mine = serverSide ? s.peer : s;
    if (graceful && !mine.writableEnded && !mine.destroyed) mine.end();
  }
  // Let flushed data drain before both ends see the connection as gone.
  setImmediate(() => {
    setImmediate(() => {
      for (const s of state.streams) {
        if (!s.destroyed) s.destroy();
        if (!s.peer.destroyed) s.peer.destroy();
      }
      state.emit("close", info);
    });
  });
}

/** The client's end of an in-memory connection (what a test drives). */
export class MemoryClient extends EventEmitter {
  /** The control stream (client side). */
  readonly control: MemoryStream;
  private nextBidi = 4;
  private nextUni = 2;

  /** @internal */
  constructor(
    private readonly state: ConnectionState,
    control: MemoryStream,
    private readonly server: MemoryTransport,
    private readonly hwm: number,
  ) {
    super();
    this.control = control;
    this.closedPromise = new Promise((resolve) => state.once("close", resolve));
  }

  private readonly closedPromise: Promise<MemoryCloseInfo>;

  /** Opens a stream (the broker sees a `stream` event). Uni streams are write-only here. */
  openStream(opts: { bidi?: boolean } = {}): MemoryStream {
    const bidi = opts.bidi ?? true;
    if (this.state.info) throw new MquicttError("ERR_CLOSED", "connection is closed");
    const id = bidi ? this.nextBidi : this.nextUni;
    if (bidi) this.nextBidi += 4;
    else this.nextUni += 4;
    const [s, c] = streamPair(id, bidi, this.hwm);
    this.state.streams.push(c);
    if (!bidi) {
      // Server side of a uni stream is read-only, client side write-only.
      s.end();
    }
    this.server.emit("stream", s, { bidi, id } satisfies StreamInfo);
    return c;
  }

  /** Sends a QUIC-style DATAGRAM to the broker (delivered asynchronously, or lost if closed). */
  sendDatagram(data: Uint8Array): void {
    if (this.state.info) return;
    process.nextTick(() => {
      if (!this.state.info) this.server.emit("datagram", data);
    });
  }

  /** Resets one stream from the client side (the broker's end is destroyed with an error). */
  resetStream(stream: MemoryStream, code: number): void {
    stream.resetBoth(code);
  }

  /** Closes the connection from the client (like a QUIC CONNECTION_CLOSE with `code`). */
  close(code = 0, reason = ""): void {
    closeConnection(this.state, { code, reason, initiator: "client" }, true);
  }

  /** Kills the connection abruptly (network loss): nothing in flight is delivered. */
  destroy(): void {
    closeConnection(
      this.state,
      { code: TransportCloseCode.ControlStreamDown, reason: "lost", initiator: "client" },
      false,
    );
  }

  /** How the connection ended, once it did. */
  get closeInfo(): MemoryCloseInfo | undefined {
    return this.state.info;
  }

  /** Resolves when the connection is gone. */
  closed(): Promise<MemoryCloseInfo> {
    return this.closedPromise;
  }
}

/** Options of {@link memoryTransportPair}. */
export interface MemoryTransportOptions {
  /** The `kind` the broker sees (default "memory"). "tcp" for a single-stream simulation. */
  kind?: "tcp" | "quic" | "memory";
  /** Remote address reported to the broker (default "memory:1"). */
  remoteAddress?: string;
  /** A client certificate to report (DER). */
  peerCertificate?: Uint8Array;
  /** Readable buffer size per stream end, for backpressure (default 64 KiB). */
  highWaterMark?: number;
}

let pairCounter = 0;

/**
 * An in-memory connection: `server` goes to `broker.handle()`, `client` is driven by a test (or
 * by an in-process client). Simulates a control stream plus data streams (bidi and uni), stream
 * resets, graceful close and abrupt loss.
 */
export function memoryTransportPair(opts: MemoryTransportOptions = {}): {
  server: MemoryTransport;
  client: MemoryClient;
} {
  const hwm = opts.highWaterMark ?? 64 * 1024;
  const state = new ConnectionState();
  const [s, c] = streamPair(0, true, hwm);
  state.streams.push(c);
  const server = new MemoryTransport(state, s, {
    kind: opts.kind ?? "memory",
    remoteAddress: opts.remoteAddress ?? `memory:${++pairCounter}`,
    ...(opts.peerCertificate ? { peerCertificate: opts.peerCertificate } : {}),
  });
  const client = new MemoryClient(state, c, server, hwm);
  state.once("close", (info: MemoryCloseInfo) => {
    server.emit("close");
    client.emit("close", info);
  });
  return { server, client };
}
