/**
 * The set of streams of one connection (RFC 9000 §2-§4): opening within the peer's stream
 * limits, accepting peer streams within ours, connection-level flow control, fair scheduling of
 * STREAM frames, the stream-related control frames, and forgetting finished streams.
 *
 * The manager is sans-IO and frame-format agnostic: the connection decodes frames and calls the
 * `on*` handlers with plain values, and encodes the plain frame descriptions it polls.
 *
 * How the connection drives it:
 * - Handshake: `setPeerLimits(peerTransportParameters)` once the peer's parameters are known.
 * - Receiving (inside `receive(now, ...)`): `onStreamFrame`, `onResetStream`, `onStopSending`,
 *   `onMaxData`, `onMaxStreamData`, `onMaxStreams`, `onDataBlocked`, `onStreamDataBlocked`,
 *   `onStreamsBlocked`. They throw `TransportError` on a peer's violation; the connection turns
 *   it into CONNECTION_CLOSE.
 * - RTT: `setRtt(smoothedRttMs)` whenever recovery updates it (drives window auto-tuning).
 * - Building a packet (inside `pollTransmit(now)`): first `pollControlFrame()` until undefined
 *   (or the packet is full: give a frame that does not fit back with `onControlFrameLost`),
 *   then `pollStreamFrame(bytesLeft)` until undefined or the packet is full. Record for each
 *   frame a recovery token: the control frame itself, or for STREAM frames
 *   `{ streamId, offset, length: data.length, fin }` (not the data: retransmit data, not packets).
 * - Acknowledgement / loss of a packet: `onStreamFrameAcked` / `onStreamFrameLost` and
 *   `onControlFrameAcked` / `onControlFrameLost` with those tokens.
 * - Application: `openStream`, `write`, `finish`, `resetStream`, `read`, `stopSending`,
 *   `writable`, and `pollEvent()` for "opened", "readable", "writable", "reset",
 *   "stop_sending" and "streams_available".
 * - `hasPendingFrames()` tells whether a packet would carry anything from the streams.
 */

import { MquicttError } from "../../errors.js";
import { varintLength } from "../../util/bytes.js";
import { TransportError, TransportErrorCode } from "../errors.js";
import { RecvWindow, SendCredit } from "./flow-control.js";
import { IdSet } from "./id-set.js";
import { RecvStream, SendStream, Stream } from "./stream.js";
import {
  checkPeerStreamFrame,
  isBidi,
  isLocallyInitiated,
  MAX_STREAM_COUNT,
  type PeerStreamFrame,
  type Role,
  type StreamDirection,
  StreamFrameType,
  streamDirection,
  streamIdFor,
  streamIndex,
} from "./stream-id.js";

/** The stream-related transport parameters of one endpoint, RFC 9000 §18.2. */
export interface StreamTransportLimits {
  /** initial_max_data: connection-level window. */
  initialMaxData: number;
  /** initial_max_stream_data_bidi_local: window on bidi streams the sender of it opened. */
  initialMaxStreamDataBidiLocal: number;
  /** initial_max_stream_data_bidi_remote: window on bidi streams the other endpoint opened. */
  initialMaxStreamDataBidiRemote: number;
  /** initial_max_stream_data_uni: window on uni streams the other endpoint opened. */
  initialMaxStreamDataUni: number;
  /** initial_max_streams_bidi: bidi streams the other endpoint may open. */
  initialMaxStreamsBidi: number;
  /** initial_max_streams_uni: uni streams the other endpoint may open. */
  initialMaxStreamsUni: number;
}

/** Default ceiling of an auto-tuned stream receive window: 16 MiB. */
export const DEFAULT_MAX_STREAM_WINDOW = 16 * 1024 * 1024;
/** Default ceiling of the auto-tuned connection receive window: 24 MiB. */
export const DEFAULT_MAX_CONNECTION_WINDOW = 24 * 1024 * 1024;
/** RTT assumed before the first sample, RFC 9002 §6.2.2 (kInitialRtt). */
export const DEFAULT_INITIAL_RTT = 333;

/** Options of a `StreamManager`. */
export interface StreamManagerOptions {
  /** Our role: decides which stream IDs are ours (RFC 9000 §2.1). */
  role: Role;
  /** The limits we advertise in our transport parameters. */
  local: StreamTransportLimits;
  /** The peer's limits, when already known (else call `setPeerLimits` later; until then 0). */
  peer?: StreamTransportLimits;
  /** Auto-tuning ceiling of stream windows (default 16 MiB). */
  maxStreamWindow?: number;
  /** Auto-tuning ceiling of the connection window (default 24 MiB). */
  maxConnectionWindow?: number;
  /** Per-stream bound on written-but-unacknowledged bytes (default 1 MiB). */
  sendBufferSize?: number;
  /** Advertise more credit when this fraction of the window is left (default 0.5). */
  updateFraction?: number;
  /** RTT (ms) until `setRtt` is called (default 333, RFC 9002 §6.2.2). */
  initialRtt?: number;
}

/** Something the application should know about, from `pollEvent()`. */
export type StreamEvent =
  /** The peer opened a stream (RFC 9000 §3.2; lower IDs of the same type open first). */
  | { type: "opened"; streamId: number; bidi: boolean }
  /** A stream has data (or its end) to read; emitted again only after `read` drained it. */
  | { type: "readable"; streamId: number }
  /** Send-buffer space freed up after a write was refused or accepted partially. */
  | { type: "writable"; streamId: number }
  /** The peer reset its sending part (RESET_STREAM, §19.4): data is lost, reading ends. */
  | { type: "reset"; streamId: number; errorCode: number }
  /** The peer sent STOP_SENDING (§3.5); we reset our sending part with `errorCode`. */
  | { type: "stop_sending"; streamId: number; errorCode: number }
  /** The peer raised MAX_STREAMS after `openStream` failed: try again (§4.6). */
  | { type: "streams_available"; bidi: boolean };

/** A stream-related control frame to send (connection encodes it; RFC 9000 §19.4-§19.14). */
export type StreamControlFrame =
  | { type: "reset_stream"; streamId: number; errorCode: number; finalSize: number }
  | { type: "stop_sending"; streamId: number; errorCode: number }
  | { type: "max_data"; maximum: number }
  | { type: "max_stream_data"; streamId: number; maximum: number }
  | { type: "max_streams"; bidi: boolean; limit: number }
  | { type: "data_blocked"; limit: number }
  | { type: "stream_data_blocked"; streamId: number; limit: number }
  | { type: "streams_blocked"; bidi: boolean; limit: number };

/** A STREAM frame to send (RFC 9000 §19.8); the same shape as frames.ts's STREAM frame. */
export interface StreamFrameOut {
  type: "stream";
  streamId: number;
  offset: number;
  data: Uint8Array;
  fin: boolean;
}

type PerDir<T> = Record<StreamDirection, T>;

const dirOf = (bidi: boolean): StreamDirection => (bidi ? "bidi" : "uni");

/** All streams of a connection; see the module comment for how the connection drives it. */
export class StreamManager {
  private readonly role: Role;
  private readonly local: StreamTransportLimits;
  private peer: StreamTransportLimits | undefined;
  private readonly maxStreamWindow: number;
  private readonly sendBufferSize: number | undefined;
  private readonly updateFraction: number | undefined;
  private rtt: number;
  private lastNow = 0;

  private readonly streams = new Map<number, Stream>();
  // The sets below are empty on an idle connection: IdSet allocates a Set only while one holds
  // something (about 150 bytes each otherwise; see id-set.ts).
  /** Streams that may have STREAM frames to send, in round-robin order. */
  private readonly sendQueue = new IdSet();
  /** Streams with new data waiting only for connection credit (MAX_DATA). */
  private readonly connBlocked = new IdSet();
  private readonly pendingResets = new IdSet();
  private readonly pendingStopSending = new IdSet();
  private readonly pendingMaxStreamData = new IdSet();
  private readonly pendingStreamDataBlocked = new IdSet();
  private readonly maxStreamsPending: PerDir<boolean> = { bidi: false, uni: false };
  private readonly streamsBlockedPending: PerDir<boolean> = { bidi: false, uni: false };
  private readonly streamsBlockedReportedAt: PerDir<number> = { bidi: -1, uni: -1 };
  private readonly openBlocked: PerDir<boolean> = { bidi: false, uni: false };

  /** Peer's MAX_DATA and our use of it. */
  private readonly connSend: SendCredit;
  /** Our MAX_DATA. */
  private readonly connRecv: RecvWindow;

  /** Next index to open locally / the peer's MAX_STREAMS. */
  private readonly localNext: PerDir<number> = { bidi: 0, uni: 0 };
  private readonly localLimit: PerDir<number>;
  /** Next peer stream index not yet opened / our MAX_STREAMS (cumulative). */
  private readonly remoteNext: PerDir<number> = { bidi: 0, uni: 0 };
  private readonly remoteLimit: PerDir<number>;

  private events: StreamEvent[] = [];
  private eventHead = 0;

  constructor(options: StreamManagerOptions) {
    this.role = options.role;
    this.local = options.local;
    this.maxStreamWindow = options.maxStreamWindow ?? DEFAULT_MAX_STREAM_WINDOW;
    this.sendBufferSize = options.sendBufferSize;
    this.updateFraction = options.updateFraction;
    this.rtt = options.initialRtt ?? DEFAULT_INITIAL_RTT;
    this.connSend = new SendCredit(0);
    this.connRecv = new RecvWindow({
      initialWindow: options.local.initialMaxData,
      maxWindow: options.maxConnectionWindow ?? DEFAULT_MAX_CONNECTION_WINDOW,
      updateFraction: options.updateFraction,
    });
    this.localLimit = { bidi: 0, uni: 0 };
    this.remoteLimit = { bidi: options.local.initialMaxStreamsBidi, uni: options.local.initialMaxStreamsUni };
    if (options.peer !== undefined) this.setPeerLimits(options.peer);
  }

  // ---------------------------------------------------------------- getters

  /** Number of streams currently held (finished streams are forgotten). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** The stream with this ID, if open (for inspection; use the manager's methods to act). */
  getStream(id: number): Stream | undefined {
    return this.streams.get(id);
  }

  /** Connection-level send credit left (peer's MAX_DATA minus new data sent). */
  get connectionCredit(): number {
    return this.connSend.available;
  }

  /** Our connection-level receive window (for inspection: limit, window, consumed). */
  get connectionWindow(): RecvWindow {
    return this.connRecv;
  }

  /** How many more streams of this direction we may open now (peer's MAX_STREAMS, §4.6). */
  openable(bidi: boolean): number {
    const d = dirOf(bidi);
    return Math.max(0, this.localLimit[d] - this.localNext[d]);
  }

  /** Our current MAX_STREAMS for the peer in this direction (cumulative, §19.11). */
  peerStreamLimit(bidi: boolean): number {
    return this.remoteLimit[dirOf(bidi)];
  }

  // ---------------------------------------------------------------- configuration

  /**
   * The peer's transport parameters (§18.2, §7.4): connection credit, stream limits, and the
   * initial credit of every stream (already open ones included). Limits only ever grow.
   * Throws TRANSPORT_PARAMETER_ERROR on a stream count above 2^60 (§4.6).
   */
  setPeerLimits(peer: StreamTransportLimits): void {
    for (const n of [peer.initialMaxStreamsBidi, peer.initialMaxStreamsUni])
      if (n > MAX_STREAM_COUNT)
        throw new TransportError(
          TransportErrorCode.TRANSPORT_PARAMETER_ERROR,
          `initial_max_streams ${n} exceeds 2^60`,
        );
    this.peer = peer;
    this.raiseConnectionCredit(peer.initialMaxData);
    this.raiseLocalLimit("bidi", peer.initialMaxStreamsBidi);
    this.raiseLocalLimit("uni", peer.initialMaxStreamsUni);
    for (const s of this.streams.values()) {
      if (s.send?.credit.update(this.sendCreditFor(s.id))) this.schedule(s);
    }
  }

  /** The smoothed RTT (ms), used to auto-tune receive windows. */
  setRtt(rtt: number): void {
    this.rtt = rtt;
  }

  private sendCreditFor(id: number): number {
    const p = this.peer;
    if (p === undefined) return 0;
    if (!isBidi(id)) return p.initialMaxStreamDataUni;
    // The peer's "bidi_local" applies to streams the peer opened, "bidi_remote" to ours.
    return isLocallyInitiated(id, this.role)
      ? p.initialMaxStreamDataBidiRemote
      : p.initialMaxStreamDataBidiLocal;
  }

  private recvWindowFor(id: number): number {
    const l = this.local;
    if (!isBidi(id)) return l.initialMaxStreamDataUni;
    return isLocallyInitiated(id, this.role)
      ? l.initialMaxStreamDataBidiLocal
      : l.initialMaxStreamDataBidiRemote;
  }

  private createStream(id: number): Stream {
    const local = isLocallyInitiated(id, this.role);
    const bidi = isBidi(id);
    const send = bidi || local ? new SendStream(id, this.sendCreditFor(id), this.sendBufferSize) : undefined;
    const recv =
      bidi || !local
        ? new RecvStream(id, this.recvWindowFor(id), this.maxStreamWindow, this.updateFraction)
        : undefined;
    const s = new Stream(id, send, recv);
    this.streams.set(id, s);
    return s;
  }

  // ---------------------------------------------------------------- application API

  /**
   * Opens a new local stream (RFC 9000 §2.1, §4.6). Returns its ID, or undefined when the
   * peer's MAX_STREAMS forbids it; then a STREAMS_BLOCKED is queued (once per limit) and a
   * "streams_available" event follows when the peer raises the limit.
   */
  openStream(bidi: boolean): number | undefined {
    const d = dirOf(bidi);
    if (this.localNext[d] >= this.localLimit[d]) {
      this.openBlocked[d] = true;
      if (this.streamsBlockedReportedAt[d] !== this.localLimit[d]) {
        this.streamsBlockedReportedAt[d] = this.localLimit[d];
        this.streamsBlockedPending[d] = true;
      }
      return undefined;
    }
    const id = streamIdFor(this.role, d, this.localNext[d]++);
    this.createStream(id);
    return id;
  }

  /** True when stream `id` was opened at some point (it may have been forgotten since). */
  private wasOpened(id: number): boolean {
    const d = streamDirection(id);
    const next = isLocallyInitiated(id, this.role) ? this.localNext[d] : this.remoteNext[d];
    return streamIndex(id) < next;
  }

  /** True for a stream that was opened and has since finished and been forgotten. */
  private isForgotten(id: number): boolean {
    return !this.streams.has(id) && this.wasOpened(id);
  }

  private requireStream(id: number, what: string): Stream {
    const s = this.streams.get(id);
    if (s === undefined)
      throw new MquicttError("ERR_QUIC_STREAM_STATE", `${what}: stream ${id} is closed or unknown`);
    return s;
  }

  private requireSend(id: number, what: string): SendStream {
    const s = this.requireStream(id, what);
    if (s.send === undefined)
      throw new MquicttError("ERR_QUIC_STREAM_STATE", `${what}: stream ${id} is receive-only`);
    return s.send;
  }

  private requireRecv(id: number, what: string): RecvStream {
    const s = this.requireStream(id, what);
    if (s.recv === undefined)
      throw new MquicttError("ERR_QUIC_STREAM_STATE", `${what}: stream ${id} is send-only`);
    return s.recv;
  }

  /** Bytes the application may write on stream `id` now (0 when full, finished or reset). */
  writable(id: number): number {
    if (this.isForgotten(id)) return 0;
    return this.requireSend(id, "writable").writable;
  }

  /**
   * Queues `data` on stream `id` (not copied: do not modify it afterwards). Returns the bytes
   * accepted; when fewer than given, a "writable" event follows once space frees up. Throws a
   * `MquicttError` (ERR_QUIC_STREAM_RESET, ERR_QUIC_STREAM_STATE) on a reset, finished,
   * receive-only or unknown stream.
   */
  write(id: number, data: Uint8Array): number {
    const s = this.requireStream(id, "write");
    const send = this.requireSend(id, "write");
    const n = send.write(data);
    if (n > 0) this.schedule(s);
    if (n < data.length) s.wantsWritable = true;
    return n;
  }

  /** Ends stream `id`'s sending part: a FIN follows the data written (§3.1). */
  finish(id: number): void {
    const s = this.requireStream(id, "finish");
    this.requireSend(id, "finish").finish();
    this.schedule(s);
  }

  /**
   * Abruptly ends stream `id`'s sending part with application error `errorCode` (§3.1,
   * §19.4): a RESET_STREAM is queued and no more data is (re)transmitted. No-op when already
   * reset or fully acknowledged.
   */
  resetStream(id: number, errorCode: number): void {
    if (this.isForgotten(id)) return; // already finished: nothing to abandon
    const s = this.requireStream(id, "reset");
    const send = this.requireSend(id, "reset");
    if (send.reset(errorCode)) this.afterReset(s);
  }

  private afterReset(s: Stream): void {
    this.sendQueue.delete(s.id);
    this.connBlocked.delete(s.id);
    this.pendingStreamDataBlocked.delete(s.id);
    this.pendingResets.add(s.id);
    s.wantsWritable = false;
  }

  /**
   * The application no longer wants stream `id`'s data (§3.5): a STOP_SENDING with
   * `errorCode` is queued if useful, and buffered and future data are discarded.
   */
  stopSending(id: number, errorCode: number): void {
    if (this.isForgotten(id)) return; // already finished: nothing to stop
    const s = this.requireStream(id, "stopSending");
    const recv = this.requireRecv(id, "stopSending");
    if (recv.stopSending(errorCode)) this.pendingStopSending.add(id);
    this.pendingMaxStreamData.delete(id);
    s.readableNotified = false;
    this.releaseConsumed(recv, this.lastNow, 0);
    this.maybeRemove(s);
  }

  /**
   * Reads up to `maxBytes` from stream `id` (a view, no copy). `fin` marks the last read of the
   * stream; the end may come as an empty chunk with `fin`. Returns undefined when nothing is
   * ready (a "readable" event will follow), the stream was reset, or it has finished and been
   * forgotten. `now` (ms) drives the flow-control window auto-tuning.
   */
  read(
    id: number,
    now: number,
    maxBytes = Number.POSITIVE_INFINITY,
  ): { data: Uint8Array; fin: boolean } | undefined {
    this.lastNow = now;
    if (this.isForgotten(id)) return undefined; // finished and forgotten
    const s = this.requireStream(id, "read");
    const recv = this.requireRecv(id, "read");
    const windowBefore = recv.window.window;
    const out = recv.read(maxBytes, now, this.rtt);
    if (recv.window.window > windowBefore) this.connRecv.ensureMinimumWindow(recv.window.window * 1.5);
    if (recv.window.hasUpdate) this.pendingMaxStreamData.add(id);
    this.releaseConsumed(recv, now, this.rtt);
    if (!recv.hasReadable) s.readableNotified = false;
    this.maybeRemove(s);
    return out;
  }

  /** Next event for the application, or undefined. */
  pollEvent(): StreamEvent | undefined {
    if (this.eventHead >= this.events.length) {
      if (this.events.length > 0) {
        this.events = [];
        this.eventHead = 0;
      }
      return undefined;
    }
    const ev = this.events[this.eventHead++];
    if (ev.type === "reset") {
      const s = this.streams.get(ev.streamId);
      if (s?.recv !== undefined) {
        s.recv.onResetDelivered();
        this.maybeRemove(s);
      }
    }
    return ev;
  }

  private emit(ev: StreamEvent): void {
    this.events.push(ev);
  }

  // ---------------------------------------------------------------- frames from the peer

  /**
   * Validates a stream ID a peer frame references and returns its stream, opening peer streams
   * up to it (§3.2: opening stream N opens the lower ones of its type). Returns undefined for a
   * stream that existed and was closed (late frames are ignored). Throws STREAM_STATE_ERROR for
   * a wrong direction or one of our streams not yet opened (§19.4-§19.13), STREAM_LIMIT_ERROR
   * beyond our MAX_STREAMS (§4.6).
   */
  private streamForPeerFrame(id: number, kind: PeerStreamFrame, frameType: number): Stream | undefined {
    checkPeerStreamFrame(this.role, id, kind);
    const d = streamDirection(id);
    const index = streamIndex(id);
    if (isLocallyInitiated(id, this.role)) {
      if (index >= this.localNext[d])
        throw new TransportError(
          TransportErrorCode.STREAM_STATE_ERROR,
          `${kind.toUpperCase()} frame for stream ${id}, which we have not opened`,
          frameType,
        );
      return this.streams.get(id);
    }
    if (index >= this.remoteLimit[d])
      throw new TransportError(
        TransportErrorCode.STREAM_LIMIT_ERROR,
        `stream ${id} exceeds the ${d} stream limit of ${this.remoteLimit[d]}`,
        frameType,
      );
    while (this.remoteNext[d] <= index) {
      const sid = streamIdFor(this.role === "client" ? "server" : "client", d, this.remoteNext[d]++);
      this.createStream(sid);
      this.emit({ type: "opened", streamId: sid, bidi: d === "bidi" });
    }
    return this.streams.get(id);
  }

  /**
   * A STREAM frame (§19.8). `data` may be kept as a view until read: do not reuse its memory.
   * Throws STREAM_STATE_ERROR, STREAM_LIMIT_ERROR, FLOW_CONTROL_ERROR
   * (stream or connection, §4.1) or FINAL_SIZE_ERROR (§4.5).
   */
  onStreamFrame(id: number, offset: number, data: Uint8Array, fin: boolean): void {
    const s = this.streamForPeerFrame(id, "stream", StreamFrameType.STREAM);
    if (s?.recv === undefined) return;
    const grew = s.recv.onData(offset, data, fin);
    this.connRecv.receive(grew, StreamFrameType.STREAM);
    this.afterRecv(s, s.recv);
  }

  /**
   * A RESET_STREAM frame (§19.4): the peer abandoned its sending part. Throws on final-size or
   * flow-control violations; a "reset" event tells the application.
   */
  onResetStream(id: number, errorCode: number, finalSize: number): void {
    const s = this.streamForPeerFrame(id, "reset_stream", StreamFrameType.RESET_STREAM);
    if (s?.recv === undefined) return;
    const before = s.recv.state;
    const grew = s.recv.onReset(errorCode, finalSize);
    this.connRecv.receive(grew, StreamFrameType.RESET_STREAM);
    if (before !== "reset_recvd" && s.recv.state === "reset_recvd") {
      s.readableNotified = false;
      this.pendingMaxStreamData.delete(id);
      this.pendingStopSending.delete(id);
      this.emit({ type: "reset", streamId: id, errorCode });
    }
    this.afterRecv(s, s.recv);
  }

  private afterRecv(s: Stream, recv: RecvStream): void {
    this.releaseConsumed(recv, this.lastNow, 0);
    if (recv.hasReadable && !s.readableNotified) {
      s.readableNotified = true;
      this.emit({ type: "readable", streamId: s.id });
    }
    this.maybeRemove(s);
  }

  /** Feeds bytes read or discarded on a stream into the connection window (§4.4, §4.5). */
  private releaseConsumed(recv: RecvStream, now: number, rtt: number): void {
    const n = recv.takeConsumed();
    if (n > 0) this.connRecv.consume(n, now, rtt);
  }

  /**
   * A STOP_SENDING frame (§19.5): we reset our sending part with the peer's error code (§3.5)
   * and emit a "stop_sending" event.
   */
  onStopSending(id: number, errorCode: number): void {
    const s = this.streamForPeerFrame(id, "stop_sending", StreamFrameType.STOP_SENDING);
    if (s?.send === undefined) return;
    if (s.send.onStopSending(errorCode)) {
      this.afterReset(s);
      this.emit({ type: "stop_sending", streamId: id, errorCode });
    }
  }

  /** A MAX_DATA frame (§19.9): more connection credit; smaller values are ignored. */
  onMaxData(maximum: number): void {
    this.raiseConnectionCredit(maximum);
  }

  private raiseConnectionCredit(maximum: number): void {
    if (!this.connSend.update(maximum)) return;
    for (const id of this.connBlocked) {
      const s = this.streams.get(id);
      if (s !== undefined) this.schedule(s);
    }
    this.connBlocked.clear();
  }

  /** A MAX_STREAM_DATA frame (§19.10): more credit on one stream; smaller values are ignored. */
  onMaxStreamData(id: number, maximum: number): void {
    const s = this.streamForPeerFrame(id, "max_stream_data", StreamFrameType.MAX_STREAM_DATA);
    if (s?.send === undefined) return;
    if (s.send.credit.update(maximum)) {
      this.pendingStreamDataBlocked.delete(id);
      this.schedule(s);
    }
  }

  /**
   * A MAX_STREAMS frame (§19.11): we may open more streams. Above 2^60 is
   * FRAME_ENCODING_ERROR; smaller values are ignored.
   */
  onMaxStreams(bidi: boolean, limit: number): void {
    if (limit > MAX_STREAM_COUNT)
      throw new TransportError(
        TransportErrorCode.FRAME_ENCODING_ERROR,
        `MAX_STREAMS ${limit} exceeds 2^60`,
        bidi ? StreamFrameType.MAX_STREAMS_BIDI : StreamFrameType.MAX_STREAMS_UNI,
      );
    this.raiseLocalLimit(dirOf(bidi), limit);
  }

  private raiseLocalLimit(d: StreamDirection, limit: number): void {
    if (limit <= this.localLimit[d]) return;
    this.localLimit[d] = limit;
    this.streamsBlockedPending[d] = false;
    if (this.openBlocked[d]) {
      this.openBlocked[d] = false;
      this.emit({ type: "streams_available", bidi: d === "bidi" });
    }
  }

  /** A DATA_BLOCKED frame (§19.12): informational (our MAX_DATA is sent without waiting for it). */
  onDataBlocked(_limit: number): void {}

  /** A STREAM_DATA_BLOCKED frame (§19.13): validated (and may open the stream), else informational. */
  onStreamDataBlocked(id: number, _limit: number): void {
    this.streamForPeerFrame(id, "stream_data_blocked", StreamFrameType.STREAM_DATA_BLOCKED);
  }

  /** A STREAMS_BLOCKED frame (§19.14): above 2^60 is FRAME_ENCODING_ERROR, else informational. */
  onStreamsBlocked(bidi: boolean, limit: number): void {
    if (limit > MAX_STREAM_COUNT)
      throw new TransportError(
        TransportErrorCode.FRAME_ENCODING_ERROR,
        `STREAMS_BLOCKED ${limit} exceeds 2^60`,
        bidi ? StreamFrameType.STREAMS_BLOCKED_BIDI : StreamFrameType.STREAMS_BLOCKED_UNI,
      );
  }

  // ---------------------------------------------------------------- transmission

  private schedule(s: Stream): void {
    if (s.send !== undefined && !s.send.buffer.isReset) this.sendQueue.add(s.id);
  }

  /** A stream that cannot send now: note why, so credit arriving re-schedules it. */
  private park(s: SendStream): void {
    if (s.buffer.unsent === 0 || s.buffer.isReset) return;
    if (s.credit.available === 0) {
      if (s.credit.noteBlocked()) this.pendingStreamDataBlocked.add(s.id);
    } else if (this.connSend.available === 0) {
      this.connBlocked.add(s.id);
      this.connSend.noteBlocked();
    }
  }

  /**
   * The next STREAM frame (§19.8) to send, whose encoding (type, stream ID, offset, length,
   * data) fits in `maxFrameBytes`, or undefined. Streams take turns frame by frame (round
   * robin), so one busy stream cannot starve the others; lost data of a stream goes before its
   * new data. Uses stream and connection credit; queues *_BLOCKED frames when credit runs out.
   */
  pollStreamFrame(maxFrameBytes: number): StreamFrameOut | undefined {
    let tries = this.sendQueue.size;
    while (tries-- > 0) {
      const id = this.sendQueue.values().next().value;
      if (id === undefined) return undefined;
      const send = this.streams.get(id)?.send;
      if (send === undefined) {
        this.sendQueue.delete(id);
        continue;
      }
      if (!send.hasSendable(this.connSend.available)) {
        this.sendQueue.delete(id);
        this.park(send);
        continue;
      }
      // Upper bound of the frame header: type, ID, offset (lost ranges lie below sentOffset),
      // and a length no longer than the frame.
      const offsetBound = send.buffer.sentOffset;
      const overhead =
        1 +
        varintLength(id) +
        (offsetBound > 0 ? varintLength(offsetBound) : 0) +
        varintLength(maxFrameBytes);
      const room = maxFrameBytes - overhead;
      if (room < 0) return undefined;
      const chunk = send.nextChunk(room, this.connSend.available);
      if (chunk === undefined) {
        if (room === 0) return undefined; // only data left, and no room for any
        this.sendQueue.delete(id);
        this.park(send);
        continue;
      }
      if (!chunk.retransmit) this.connSend.consume(chunk.data.length);
      // Rotate: this stream goes to the back of the queue if it has more.
      this.sendQueue.delete(id);
      if (send.hasSendable(this.connSend.available)) this.sendQueue.add(id);
      else this.park(send);
      return { type: "stream", streamId: id, offset: chunk.offset, data: chunk.data, fin: chunk.fin };
    }
    return undefined;
  }

  /**
   * The next stream-related control frame to send, or undefined. Order: RESET_STREAM,
   * STOP_SENDING, MAX_DATA, MAX_STREAMS, MAX_STREAM_DATA, DATA_BLOCKED, STREAMS_BLOCKED,
   * STREAM_DATA_BLOCKED. Values are computed when polled, so only the latest is sent.
   */
  pollControlFrame(): StreamControlFrame | undefined {
    for (const id of this.pendingResets) {
      this.pendingResets.delete(id);
      const info = this.streams.get(id)?.send?.pollReset();
      if (info !== undefined)
        return { type: "reset_stream", streamId: id, errorCode: info.errorCode, finalSize: info.finalSize };
    }
    for (const id of this.pendingStopSending) {
      this.pendingStopSending.delete(id);
      const code = this.streams.get(id)?.recv?.pollStopSending();
      if (code !== undefined) return { type: "stop_sending", streamId: id, errorCode: code };
    }
    const maxData = this.connRecv.pollUpdate();
    if (maxData !== undefined) return { type: "max_data", maximum: maxData };
    for (const d of ["bidi", "uni"] as const) {
      if (this.maxStreamsPending[d]) {
        this.maxStreamsPending[d] = false;
        return { type: "max_streams", bidi: d === "bidi", limit: this.remoteLimit[d] };
      }
    }
    for (const id of this.pendingMaxStreamData) {
      this.pendingMaxStreamData.delete(id);
      const recv = this.streams.get(id)?.recv;
      if (recv === undefined || !recv.wantsCredit) continue;
      const maximum = recv.window.pollUpdate();
      if (maximum !== undefined) return { type: "max_stream_data", streamId: id, maximum };
    }
    const dataBlocked = this.connSend.pollBlocked();
    if (dataBlocked !== undefined) return { type: "data_blocked", limit: dataBlocked };
    for (const d of ["bidi", "uni"] as const) {
      if (this.streamsBlockedPending[d]) {
        this.streamsBlockedPending[d] = false;
        if (this.localNext[d] >= this.localLimit[d])
          return { type: "streams_blocked", bidi: d === "bidi", limit: this.localLimit[d] };
      }
    }
    for (const id of this.pendingStreamDataBlocked) {
      this.pendingStreamDataBlocked.delete(id);
      const limit = this.streams.get(id)?.send?.credit.pollBlocked();
      if (limit !== undefined) return { type: "stream_data_blocked", streamId: id, limit };
    }
    return undefined;
  }

  /**
   * True when `pollControlFrame` or `pollStreamFrame` would return something (given room).
   * Drops streams that turned out to have nothing sendable from the schedule.
   */
  hasPendingFrames(): boolean {
    return this.hasPendingControl() || this.hasPendingStreamData();
  }

  private hasPendingControl(): boolean {
    if (
      this.pendingResets.size > 0 ||
      this.connRecv.hasUpdate ||
      this.maxStreamsPending.bidi ||
      this.maxStreamsPending.uni ||
      this.connSend.hasBlockedPending
    )
      return true;
    for (const d of ["bidi", "uni"] as const)
      if (this.streamsBlockedPending[d] && this.localNext[d] >= this.localLimit[d]) return true;
    // Prune entries that became stale (e.g. the stream got its FIN or was reset meanwhile).
    for (const id of this.pendingStopSending) {
      if (this.streams.get(id)?.recv?.hasStopSendingPending) return true;
      this.pendingStopSending.delete(id);
    }
    for (const id of this.pendingMaxStreamData) {
      const recv = this.streams.get(id)?.recv;
      if (recv?.wantsCredit && recv.window.hasUpdate) return true;
      this.pendingMaxStreamData.delete(id);
    }
    for (const id of this.pendingStreamDataBlocked) {
      if (this.streams.get(id)?.send?.credit.hasBlockedPending) return true;
      this.pendingStreamDataBlocked.delete(id);
    }
    return false;
  }

  private hasPendingStreamData(): boolean {
    for (const id of this.sendQueue) {
      const send = this.streams.get(id)?.send;
      if (send?.hasSendable(this.connSend.available)) return true;
      this.sendQueue.delete(id);
      if (send !== undefined) this.park(send);
    }
    return false;
  }

  // ---------------------------------------------------------------- acknowledgements and loss

  /** A packet carrying STREAM data `[offset, offset + length)` (+ FIN) of `id` was acknowledged. */
  onStreamFrameAcked(id: number, offset: number, length: number, fin: boolean): void {
    const s = this.streams.get(id);
    if (s?.send === undefined) return;
    s.send.onAcked(offset, length, fin);
    if (s.wantsWritable && s.send.writable > 0) {
      s.wantsWritable = false;
      this.emit({ type: "writable", streamId: id });
    }
    this.maybeRemove(s);
  }

  /** A packet carrying STREAM data `[offset, offset + length)` (+ FIN) of `id` was lost. */
  onStreamFrameLost(id: number, offset: number, length: number, fin: boolean): void {
    const s = this.streams.get(id);
    if (s?.send === undefined) return;
    s.send.onLost(offset, length, fin);
    if (s.send.buffer.hasLost) this.schedule(s);
  }

  /** A packet carrying `frame` (as polled) was acknowledged. */
  onControlFrameAcked(frame: StreamControlFrame): void {
    if (frame.type !== "reset_stream") return;
    const s = this.streams.get(frame.streamId);
    if (s?.send === undefined) return;
    s.send.onResetAcked();
    this.maybeRemove(s);
  }

  /**
   * A packet carrying `frame` (as polled) was lost, or the frame did not fit: it is queued
   * again if still relevant, with the latest value for MAX_* and *_BLOCKED.
   */
  onControlFrameLost(frame: StreamControlFrame): void {
    switch (frame.type) {
      case "reset_stream": {
        if (this.streams.get(frame.streamId)?.send?.onResetLost()) this.pendingResets.add(frame.streamId);
        return;
      }
      case "stop_sending": {
        if (this.streams.get(frame.streamId)?.recv?.onStopSendingLost())
          this.pendingStopSending.add(frame.streamId);
        return;
      }
      case "max_data":
        this.connRecv.onUpdateLost(frame.maximum);
        return;
      case "max_stream_data": {
        const recv = this.streams.get(frame.streamId)?.recv;
        if (recv?.wantsCredit && recv.window.onUpdateLost(frame.maximum))
          this.pendingMaxStreamData.add(frame.streamId);
        return;
      }
      case "max_streams": {
        const d = dirOf(frame.bidi);
        if (frame.limit === this.remoteLimit[d]) this.maxStreamsPending[d] = true;
        return;
      }
      case "data_blocked":
        this.connSend.onBlockedLost(frame.limit);
        return;
      case "stream_data_blocked": {
        if (this.streams.get(frame.streamId)?.send?.credit.onBlockedLost(frame.limit))
          this.pendingStreamDataBlocked.add(frame.streamId);
        return;
      }
      case "streams_blocked": {
        const d = dirOf(frame.bidi);
        if (frame.limit === this.localLimit[d] && this.localNext[d] >= this.localLimit[d])
          this.streamsBlockedPending[d] = true;
        return;
      }
    }
  }

  // ---------------------------------------------------------------- cleanup

  /**
   * Forgets a stream whose parts are all terminal (§3.1, §3.2) so memory does not grow with the
   * number of streams ever opened. A closed peer stream gives the peer one more stream of its
   * type: MAX_STREAMS is raised (§4.6).
   */
  private maybeRemove(s: Stream): void {
    if (!s.isClosed || !this.streams.has(s.id)) return;
    const id = s.id;
    this.streams.delete(id);
    this.sendQueue.delete(id);
    this.connBlocked.delete(id);
    this.pendingResets.delete(id);
    this.pendingStopSending.delete(id);
    this.pendingMaxStreamData.delete(id);
    this.pendingStreamDataBlocked.delete(id);
    if (!isLocallyInitiated(id, this.role)) {
      const d = streamDirection(id);
      if (this.remoteLimit[d] < MAX_STREAM_COUNT) {
        this.remoteLimit[d] += 1;
        this.maxStreamsPending[d] = true;
      }
    }
  }
}
