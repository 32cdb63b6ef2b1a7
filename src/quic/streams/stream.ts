/**
 * Per-stream state machines, RFC 9000 §3: the sending part (§3.1) and the receiving part (§3.2)
 * of a stream, each wrapping its buffer and its flow-control state. A bidirectional stream has
 * both parts; a unidirectional stream has only the one its direction allows.
 *
 * These classes hold no connection-wide state. The `StreamManager` (streams.ts) validates stream
 * IDs, applies connection-level flow control, schedules transmission, and produces frames.
 */
import { MquicttError } from "../../errors.js";
import { TransportError } from "../errors.js";
import { RecvWindow, SendCredit } from "./flow-control.js";
import { RecvBuffer } from "./recv-buffer.js";
import { SendBuffer, type SendChunk } from "./send-buffer.js";
import { StreamFrameType } from "./stream-id.js";

/** Sending-part states, RFC 9000 §3.1 Figure 2. */
export type SendState = "ready" | "send" | "data_sent" | "reset_sent" | "data_recvd" | "reset_recvd";

/** Receiving-part states, RFC 9000 §3.2 Figure 3. */
export type RecvState = "recv" | "size_known" | "data_recvd" | "data_read" | "reset_recvd" | "reset_read";

/** The RESET_STREAM to send for a sending part (§19.4). */
export interface ResetInfo {
  errorCode: number;
  finalSize: number;
}

/**
 * The sending part of a stream (RFC 9000 §3.1): Ready -> Send -> Data Sent -> Data Recvd, or
 * Reset Sent -> Reset Recvd from any of the first three.
 */
export class SendStream {
  /** The stream ID. */
  readonly id: number;
  /** The bytes to send and their acknowledgement state. */
  readonly buffer: SendBuffer;
  /** The peer's MAX_STREAM_DATA for this stream. */
  readonly credit: SendCredit;
  private _state: SendState = "ready";
  private _reset: ResetInfo | undefined;
  private resetPending = false;

  constructor(id: number, initialCredit: number, bufferSize?: number) {
    this.id = id;
    this.buffer = new SendBuffer(bufferSize);
    this.credit = new SendCredit(initialCredit);
  }

  /** Current state (§3.1). */
  get state(): SendState {
    return this._state;
  }

  /** The reset sent, once reset (error code and final size). */
  get resetInfo(): ResetInfo | undefined {
    return this._reset;
  }

  /** True in a terminal state (Data Recvd or Reset Recvd). */
  get isTerminal(): boolean {
    return this._state === "data_recvd" || this._state === "reset_recvd";
  }

  /** True while the application may still write or finish (Ready or Send, not finished). */
  get isWritable(): boolean {
    return (this._state === "ready" || this._state === "send") && !this.buffer.finWritten;
  }

  /** Bytes the application may write now (backpressure). */
  get writable(): number {
    return this.isWritable ? this.buffer.writable : 0;
  }

  private checkWritable(what: string): void {
    if (this._reset !== undefined)
      throw new MquicttError(
        "ERR_QUIC_STREAM_RESET",
        `${what} on stream ${this.id}, which was reset with code ${this._reset.errorCode}`,
      );
    if (!this.isWritable)
      throw new MquicttError("ERR_QUIC_STREAM_STATE", `${what} on finished stream ${this.id}`);
  }

  /**
   * Queues application data; returns how many bytes were accepted (fewer than given when the
   * buffer is full: wait for a "writable" event). `data` is not copied. Throws a
   * `MquicttError` (ERR_QUIC_STREAM_RESET / ERR_QUIC_STREAM_STATE) after reset or finish.
   */
  write(data: Uint8Array): number {
    this.checkWritable("write");
    return this.buffer.write(data);
  }

  /** Ends the stream: a FIN follows the data written. */
  finish(): void {
    this.checkWritable("finish");
    this.buffer.finish();
  }

  /**
   * Abruptly ends the sending part with an application error code (§3.1, §19.4): from Ready,
   * Send or Data Sent to Reset Sent; stops all (re)transmission. Returns false (and does
   * nothing) when already reset or all data was acknowledged.
   */
  reset(errorCode: number): boolean {
    if (this._state !== "ready" && this._state !== "send" && this._state !== "data_sent") return false;
    const finalSize = this.buffer.reset();
    this._reset = { errorCode, finalSize };
    this._state = "reset_sent";
    this.resetPending = true;
    return true;
  }

  /**
   * The peer sent STOP_SENDING (§3.5): reset with the same error code. Returns true when that
   * caused a reset (so a RESET_STREAM must be sent).
   */
  onStopSending(errorCode: number): boolean {
    return this.reset(errorCode);
  }

  /** The RESET_STREAM to send, if one is due; clears it. */
  pollReset(): ResetInfo | undefined {
    if (!this.resetPending || this._state !== "reset_sent") return undefined;
    this.resetPending = false;
    return this._reset;
  }

  /** True while a RESET_STREAM waits to be sent. */
  get hasResetPending(): boolean {
    return this.resetPending && this._state === "reset_sent";
  }

  /** The RESET_STREAM was acknowledged: Reset Sent -> Reset Recvd. */
  onResetAcked(): void {
    if (this._state === "reset_sent") {
      this._state = "reset_recvd";
      this.resetPending = false;
    }
  }

  /** The RESET_STREAM was lost: send it again (while still in Reset Sent). */
  onResetLost(): boolean {
    if (this._state !== "reset_sent") return false;
    this.resetPending = true;
    return true;
  }

  /** True when a frame could be sent with `connCredit` bytes of connection credit. */
  hasSendable(connCredit: number): boolean {
    return this.buffer.hasSendable(Math.min(connCredit, this.credit.available));
  }

  /** True when unsent data waits only on the stream's own credit. */
  get isBlockedByStreamCredit(): boolean {
    return this.buffer.unsent > 0 && this.credit.available === 0 && !this.buffer.isReset;
  }

  /**
   * The next STREAM frame's range (§19.8): lost data first, then new data within the stream
   * credit and `connCredit`. Uses the stream credit for new bytes; the caller uses the
   * connection credit (`retransmit` false means `data.length` new bytes).
   */
  nextChunk(maxLength: number, connCredit: number): SendChunk | undefined {
    const chunk = this.buffer.nextChunk(maxLength, Math.min(connCredit, this.credit.available));
    if (chunk === undefined) return undefined;
    if (!chunk.retransmit) this.credit.consume(chunk.data.length);
    if (this._state === "ready") this._state = "send";
    if (chunk.fin && this._state === "send") this._state = "data_sent";
    return chunk;
  }

  /** Stream data (and FIN) sent in a now-acknowledged packet; may enter Data Recvd. */
  onAcked(offset: number, length: number, fin: boolean): number {
    const released = this.buffer.onAcked(offset, length, fin);
    if (this._state === "data_sent" && this.buffer.allAcked) this._state = "data_recvd";
    return released;
  }

  /** Stream data (and FIN) sent in a packet declared lost: queued for retransmission. */
  onLost(offset: number, length: number, fin: boolean): void {
    this.buffer.onLost(offset, length, fin);
  }
}

/**
 * The receiving part of a stream (RFC 9000 §3.2): Recv -> Size Known -> Data Recvd -> Data Read,
 * or Reset Recvd -> Reset Read.
 */
export class RecvStream {
  /** The stream ID. */
  readonly id: number;
  /** Reassembly buffer. */
  readonly buffer: RecvBuffer;
  /** The MAX_STREAM_DATA window we advertise. */
  readonly window: RecvWindow;
  private _state: RecvState = "recv";
  private _resetCode: number | undefined;
  private _stopCode: number | undefined;
  private stopPending = false;
  /** Offset up to which this stream's bytes count as consumed for connection flow control. */
  private consumedMark = 0;
  private consumedReported = 0;

  constructor(id: number, initialWindow: number, maxWindow: number, updateFraction?: number) {
    this.id = id;
    this.buffer = new RecvBuffer();
    this.window = new RecvWindow({ initialWindow, maxWindow, updateFraction });
  }

  /** Current state (§3.2). */
  get state(): RecvState {
    return this._state;
  }

  /** Error code of the peer's RESET_STREAM, once received. */
  get resetCode(): number | undefined {
    return this._resetCode;
  }

  /** Error code of our STOP_SENDING, once the application asked to stop. */
  get stopSendingCode(): number | undefined {
    return this._stopCode;
  }

  /** True in a terminal state (Data Read or Reset Read). */
  get isTerminal(): boolean {
    return this._state === "data_read" || this._state === "reset_read";
  }

  /** True when `read` would return something (data, or the end of the stream). */
  get hasReadable(): boolean {
    if (this._stopCode !== undefined) return false;
    return this.buffer.readable > 0 || this._state === "data_recvd";
  }

  /** True while MAX_STREAM_DATA updates are useful: in Recv, reading not abandoned (§19.10). */
  get wantsCredit(): boolean {
    return this._state === "recv" && this._stopCode === undefined;
  }

  /**
   * A STREAM frame (§19.8). Throws FLOW_CONTROL_ERROR beyond our MAX_STREAM_DATA (§4.1) and
   * FINAL_SIZE_ERROR on final-size violations (§4.5), also after a reset. Returns how much the
   * largest received offset grew: the connection-level flow credit it used.
   */
  onData(offset: number, data: Uint8Array, fin: boolean): number {
    this.window.receiveUpTo(offset + data.length, StreamFrameType.STREAM);
    const grew = this.buffer.insert(offset, data, fin);
    if (this.buffer.isDiscarding) this.consumedMark = this.buffer.highestOffset;
    if (this._state === "recv" && this.buffer.finalSize !== undefined) this._state = "size_known";
    if (this._state === "size_known" && this.buffer.allReceived) this._state = "data_recvd";
    if (this._state === "data_recvd" && this._stopCode !== undefined) this.finishDiscarded();
    return grew;
  }

  /**
   * A RESET_STREAM frame (§19.4): final-size and flow-control checks, then Reset Recvd with the
   * buffered data dropped (unless all data had already arrived, in which case it is kept and
   * the reset ignored, as §3.2 permits). Returns the connection flow credit it used.
   */
  onReset(errorCode: number, finalSize: number): number {
    this.window.receiveUpTo(finalSize, StreamFrameType.RESET_STREAM);
    const before = this.buffer.highestOffset;
    try {
      this.buffer.setFinalSize(finalSize);
    } catch (e) {
      if (e instanceof TransportError)
        throw new TransportError(e.errorCode, e.reason, StreamFrameType.RESET_STREAM);
      throw e;
    }
    const grew = this.buffer.highestOffset - before;
    if (this._state === "recv" || this._state === "size_known") {
      this._state = "reset_recvd";
      this._resetCode = errorCode;
      this.buffer.discard();
      this.consumedMark = finalSize;
      this.stopPending = false;
      this.window.cancelUpdate();
      if (this._stopCode !== undefined) this._state = "reset_read"; // the app already gave up
    }
    return grew;
  }

  /** The application was told about the reset: Reset Recvd -> Reset Read. */
  onResetDelivered(): void {
    if (this._state === "reset_recvd") this._state = "reset_read";
  }

  /**
   * Reads up to `maxBytes` contiguous bytes (a view). `fin` is true on the last read of the
   * stream (Data Read); the end of a stream may be an empty chunk with `fin`. Returns undefined
   * when nothing is ready, after a reset, or after `stopSending`. `now` and `rtt` (ms) drive
   * the window auto-tuning.
   */
  read(maxBytes: number, now: number, rtt: number): { data: Uint8Array; fin: boolean } | undefined {
    if (this._stopCode !== undefined) return undefined;
    if (this._state === "reset_recvd" || this._state === "reset_read" || this._state === "data_read")
      return undefined;
    const data = this.buffer.read(maxBytes);
    if (data !== undefined) {
      this.consumedMark = this.buffer.readOffset;
      if (this._state === "recv") this.window.consume(data.length, now, rtt);
    }
    if (this._state === "data_recvd" && this.buffer.isFinished) {
      this._state = "data_read";
      return { data: data ?? new Uint8Array(0), fin: true };
    }
    return data === undefined ? undefined : { data, fin: false };
  }

  /**
   * The application abandons reading (§3.5): in Recv or Size Known a STOP_SENDING is queued;
   * buffered and future data are discarded (still counted for flow control). Returns true when
   * a STOP_SENDING must be sent.
   */
  stopSending(errorCode: number): boolean {
    if (this._stopCode !== undefined || this.isTerminal) return false;
    this._stopCode = errorCode;
    this.buffer.discard();
    this.consumedMark = Math.max(this.consumedMark, this.buffer.highestOffset);
    this.window.cancelUpdate();
    if (this._state === "data_recvd") {
      this.finishDiscarded();
      return false;
    }
    if (this._state === "reset_recvd") {
      this._state = "reset_read";
      return false;
    }
    this.stopPending = true;
    return true;
  }

  private finishDiscarded(): void {
    this._state = "data_read";
    this.stopPending = false;
    if (this.buffer.finalSize !== undefined) this.consumedMark = this.buffer.finalSize;
  }

  /** The STOP_SENDING code to send, if one is due (still in Recv or Size Known); clears it. */
  pollStopSending(): number | undefined {
    if (!this.stopPending) return undefined;
    this.stopPending = false;
    return this.wantsStopSending ? this._stopCode : undefined;
  }

  /** True while a STOP_SENDING waits to be sent. */
  get hasStopSendingPending(): boolean {
    return this.stopPending && this.wantsStopSending;
  }

  private get wantsStopSending(): boolean {
    return this._stopCode !== undefined && (this._state === "recv" || this._state === "size_known");
  }

  /** A STOP_SENDING was lost: resend while still useful (§3.5). */
  onStopSendingLost(): boolean {
    if (!this.wantsStopSending) return false;
    this.stopPending = true;
    return true;
  }

  /**
   * Bytes that became "consumed" for connection flow control since the last call: read by the
   * application, or discarded after a reset or STOP_SENDING (§4.4, §4.5).
   */
  takeConsumed(): number {
    const n = this.consumedMark - this.consumedReported;
    this.consumedReported = this.consumedMark;
    return n;
  }
}

/** A stream: its sending and/or receiving part (a unidirectional stream has one). */
export class Stream {
  /** The stream ID (RFC 9000 §2.1). */
  readonly id: number;
  /** Sending part, absent on a peer-initiated unidirectional stream. */
  readonly send: SendStream | undefined;
  /** Receiving part, absent on a locally-initiated unidirectional stream. */
  readonly recv: RecvStream | undefined;
  /** A "readable" event was emitted and the application has not drained the stream since. */
  readableNotified = false;
  /** A write was refused for lack of space: emit "writable" when space frees up. */
  wantsWritable = false;

  constructor(id: number, send: SendStream | undefined, recv: RecvStream | undefined) {
    this.id = id;
    this.send = send;
    this.recv = recv;
  }

  /** True when both parts (that exist) are in terminal states: the stream can be forgotten. */
  get isClosed(): boolean {
    return (
      (this.send === undefined || this.send.isTerminal) && (this.recv === undefined || this.recv.isTerminal)
    );
  }
}
