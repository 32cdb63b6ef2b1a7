/**
 * Send-side buffer of one stream (RFC 9000 §2.2, §3.1) or one CRYPTO stream (§19.6).
 *
 * The application's writes are queued as a list of chunks (views, not copied) up to a bound the
 * caller can query (`writable`) to apply backpressure. `nextChunk` hands out byte ranges to put
 * in STREAM/CRYPTO frames: ranges declared lost first, then new data within the flow-control
 * credit. Each range sent is later reported acknowledged or lost by the owner of the packet's
 * recovery token (`onAcked` / `onLost`): QUIC retransmits data, not packets (§13.3). Memory is
 * released as the acknowledged prefix advances; a FIN is acknowledged independently of the
 * bytes, and the stream is done only when all bytes and the FIN are acknowledged.
 *
 * After `reset()` (RESET_STREAM sent, §19.4) nothing is sent or retransmitted any more.
 */
import { MquicttError } from "../../errors.js";
import { RangeSet } from "./range-set.js";

/** A byte range to send in one STREAM or CRYPTO frame. */
export interface SendChunk {
  /** Stream offset of `data[0]`. */
  offset: number;
  /** The bytes (a view into the written data when the range lies in one write; else a copy). */
  data: Uint8Array;
  /** True when this frame carries the FIN (ends at the final size). */
  fin: boolean;
  /** True when these bytes were sent before (declared lost): they use no new flow credit. */
  retransmit: boolean;
}

/** Default bound on bytes written but not yet acknowledged: 1 MiB. */
export const DEFAULT_SEND_BUFFER_SIZE = 1 << 20;

const EMPTY = new Uint8Array(0);

/** Send-side buffer; see the module comment. */
export class SendBuffer {
  /** Written chunks from `chunks[head]` on; `starts[i]` is the stream offset of `chunks[i]`. */
  private chunks: Uint8Array[] = [];
  private starts: number[] = [];
  private head = 0;
  private _writeOffset = 0;
  private _sentOffset = 0;
  private _ackedPrefix = 0;
  private readonly acked = new RangeSet();
  private readonly lost = new RangeSet();
  private _finWritten = false;
  private finSent = false;
  private finLost = false;
  private _finAcked = false;
  private _reset = false;
  /** Bound on bytes buffered (written and not yet acknowledged). */
  readonly maxBuffered: number;

  constructor(maxBuffered = DEFAULT_SEND_BUFFER_SIZE) {
    this.maxBuffered = maxBuffered;
  }

  /** Total bytes written by the application: the stream's length so far. */
  get writeOffset(): number {
    return this._writeOffset;
  }

  /** One past the highest offset ever sent: the flow-control credit used (§4.5). */
  get sentOffset(): number {
    return this._sentOffset;
  }

  /** Every byte below this offset is acknowledged (and released). */
  get ackedPrefix(): number {
    return this._ackedPrefix;
  }

  /** Bytes held in memory: written and not yet acknowledged. */
  get buffered(): number {
    return this._writeOffset - this._ackedPrefix;
  }

  /** Bytes the application may write now without exceeding the bound (0 after finish/reset). */
  get writable(): number {
    if (this._finWritten || this._reset) return 0;
    return Math.max(0, this.maxBuffered - this.buffered);
  }

  /** Bytes written but never sent. */
  get unsent(): number {
    return this._writeOffset - this._sentOffset;
  }

  /** True when some sent range was declared lost and awaits retransmission. */
  get hasLost(): boolean {
    return !this.lost.isEmpty || this.finLost;
  }

  /** True once `finish()` was called. */
  get finWritten(): boolean {
    return this._finWritten;
  }

  /** True once a frame carrying the FIN has been sent (§3.1 "Data Sent"). */
  get finHasBeenSent(): boolean {
    return this.finSent;
  }

  /** True once the FIN was acknowledged. */
  get finAcked(): boolean {
    return this._finAcked;
  }

  /** True after `reset()`. */
  get isReset(): boolean {
    return this._reset;
  }

  /** True when every byte and the FIN are acknowledged (§3.1 "Data Recvd"). */
  get allAcked(): boolean {
    return this._finAcked && this._ackedPrefix === this._writeOffset;
  }

  /** True when a FIN must be sent or resent with no bytes left before it to send. */
  private get finOnlyPending(): boolean {
    return (
      this._finWritten &&
      !this._finAcked &&
      this._sentOffset === this._writeOffset &&
      this.lost.isEmpty &&
      (!this.finSent || this.finLost)
    );
  }

  /**
   * True when `nextChunk` would return something given enough room and `newCredit` bytes of
   * flow-control credit for new data.
   */
  hasSendable(newCredit = Number.POSITIVE_INFINITY): boolean {
    if (this._reset) return false;
    return !this.lost.isEmpty || (this.unsent > 0 && newCredit > 0) || this.finOnlyPending;
  }

  /**
   * Queues `data` (kept as a view: the caller must not modify it afterwards). Accepts at most
   * `writable` bytes and returns how many it took; a short count means "wait for space".
   * Throws after `finish()`; returns 0 after `reset()`.
   */
  write(data: Uint8Array): number {
    if (this._finWritten)
      throw new MquicttError("ERR_QUIC_STREAM_STATE", "write after the stream was finished");
    if (this._reset) return 0;
    const n = Math.min(data.length, this.writable);
    if (n === 0) return 0;
    this.chunks.push(n === data.length ? data : data.subarray(0, n));
    this.starts.push(this._writeOffset);
    this._writeOffset += n;
    return n;
  }

  /** Marks the end of the stream: the next frame ending at `writeOffset` carries the FIN. */
  finish(): void {
    if (this._reset) return;
    this._finWritten = true;
  }

  /**
   * Abandons the stream (RESET_STREAM, §19.4): drops all data, stops any (re)transmission.
   * Returns the final size to put in RESET_STREAM: the flow credit used (§4.5).
   */
  reset(): number {
    this._reset = true;
    this.chunks = [];
    this.starts = [];
    this.head = 0;
    this.lost.clear();
    this.acked.clear();
    this.finLost = false;
    this._ackedPrefix = this._writeOffset; // nothing is held any more
    return this._sentOffset;
  }

  /**
   * The next range to send: lost ranges first, then new data. `maxLength` bounds the bytes in
   * the frame; `newCredit` bounds new (never sent) bytes, i.e. the flow-control credit left
   * (pass Infinity for CRYPTO). Returns undefined when there is nothing to send. A FIN-only
   * chunk (no bytes) may be returned even when `maxLength` is 0.
   */
  nextChunk(maxLength: number, newCredit = Number.POSITIVE_INFINITY): SendChunk | undefined {
    if (this._reset) return undefined;
    const lost = this.lost.first();
    if (lost !== undefined && maxLength > 0) {
      const start = lost[0];
      const end = Math.min(lost[1], start + maxLength);
      this.lost.remove(start, end);
      const fin = end === this._writeOffset && this.finSent && this.finLost;
      if (fin) this.finLost = false;
      return { offset: start, data: this.slice(start, end), fin, retransmit: true };
    }
    const n = Math.min(maxLength, newCredit, this.unsent);
    if (n > 0) {
      const start = this._sentOffset;
      const end = start + n;
      this._sentOffset = end;
      const fin = this._finWritten && end === this._writeOffset;
      if (fin) {
        this.finSent = true;
        this.finLost = false;
      }
      return { offset: start, data: this.slice(start, end), fin, retransmit: false };
    }
    if (this.finOnlyPending) {
      const retransmit = this.finSent;
      this.finSent = true;
      this.finLost = false;
      return { offset: this._writeOffset, data: EMPTY, fin: true, retransmit };
    }
    return undefined;
  }

  /** Bytes `[start, end)` as a view when they lie in one chunk, else a copy. */
  private slice(start: number, end: number): Uint8Array {
    if (start === end) return EMPTY;
    // Binary search for the chunk holding `start`.
    let lo = this.head;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid] <= start) lo = mid;
      else hi = mid - 1;
    }
    const first = this.chunks[lo];
    const firstStart = this.starts[lo];
    if (end <= firstStart + first.length) return first.subarray(start - firstStart, end - firstStart);
    const out = new Uint8Array(end - start);
    let at = start;
    for (let i = lo; at < end; i++) {
      const c = this.chunks[i];
      const cs = this.starts[i];
      const from = at - cs;
      const to = Math.min(c.length, end - cs);
      out.set(c.subarray(from, to), at - start);
      at += to - from;
    }
    return out;
  }

  /**
   * The range `[offset, offset + length)` (and the FIN when `fin`) was acknowledged. Releases
   * memory up to the new acknowledged prefix. Returns the number of bytes released.
   */
  onAcked(offset: number, length: number, fin: boolean): number {
    if (this._reset) return 0;
    const start = Math.max(offset, this._ackedPrefix);
    const end = offset + length;
    if (end > start) {
      this.acked.add(start, end);
      this.lost.remove(start, end); // a spurious loss: no need to resend
    }
    if (fin) {
      this._finAcked = true;
      this.finLost = false;
    }
    const first = this.acked.first();
    if (first === undefined || first[0] > this._ackedPrefix) return 0;
    const before = this._ackedPrefix;
    this._ackedPrefix = first[1];
    this.acked.removeBelow(this._ackedPrefix);
    this.release();
    return this._ackedPrefix - before;
  }

  /** Drops chunks entirely below the acknowledged prefix. */
  private release(): void {
    while (this.head < this.chunks.length) {
      const end = this.starts[this.head] + this.chunks[this.head].length;
      if (end > this._ackedPrefix) break;
      this.head++;
    }
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.starts = [];
      this.head = 0;
    } else if (this.head >= 32 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.starts = this.starts.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * The range `[offset, offset + length)` (and the FIN when `fin`) was declared lost: its
   * still-unacknowledged parts are queued for retransmission.
   */
  onLost(offset: number, length: number, fin: boolean): void {
    if (this._reset) return;
    const start = Math.max(offset, this._ackedPrefix);
    const end = offset + length;
    for (const [s, e] of this.acked.gaps(start, end)) this.lost.add(s, e);
    if (fin && !this._finAcked) this.finLost = true;
  }

  /** The ranges queued for retransmission (for tests and diagnostics). */
  lostRanges(): Array<[number, number]> {
    return this.lost.ranges();
  }
}
