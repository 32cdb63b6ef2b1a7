/**
 * Receive-side reassembly for one stream (RFC 9000 §2.2) or one CRYPTO stream (§19.6, §7.5).
 *
 * Frames may arrive out of order, overlap, or repeat. The buffer keeps a sorted list of disjoint
 * chunks beyond the read offset; each new frame only fills the gaps between chunks already held,
 * so duplicated bytes are never stored or counted twice. Contiguous bytes are handed out in order
 * as views (`subarray`) of the received frames: no copy and no single giant buffer.
 *
 * Ownership: the bytes given to `insert` may be kept as views, so the caller must not reuse or
 * modify that memory afterwards (a decrypted packet payload is a fresh buffer, which is fine;
 * a socket receive buffer recycled for the next datagram is not).
 *
 * It enforces the final-size rules of §4.5 (FINAL_SIZE_ERROR) and, for CRYPTO, a bound on how far
 * ahead of the read offset data may be buffered (CRYPTO_BUFFER_EXCEEDED, §7.5). Flow-control
 * limits of STREAM frames (FLOW_CONTROL_ERROR, §4.1) are checked by the owner before inserting
 * (see `RecvWindow` and `RecvStream`), which bounds the memory held to the advertised window.
 */
import { TransportError, TransportErrorCode } from "../errors.js";
import { RangeSet } from "./range-set.js";
import { StreamFrameType } from "./stream-id.js";

/** Options of a `RecvBuffer`. */
export interface RecvBufferOptions {
  /**
   * CRYPTO streams: the most bytes beyond the read offset that may be buffered. A frame ending
   * beyond `readOffset + maxAhead` is CRYPTO_BUFFER_EXCEEDED (RFC 9000 §7.5; at least 4096).
   * Leave unset for STREAM data, whose bound is the flow-control window.
   */
  maxAhead?: number;
  /** Frame type named in errors (defaults to STREAM, 0x08; use 0x06 for CRYPTO). */
  frameType?: number;
}

interface Chunk {
  offset: number;
  data: Uint8Array;
}

/**
 * A received piece smaller than this fraction of its underlying `ArrayBuffer` is copied rather
 * than kept as a view, so that a peer sending many tiny frames cannot make us pin one whole
 * decrypted datagram per byte of window.
 */
const COPY_BELOW_FRACTION = 1 / 4;

/**
 * Fragmentation guard. Every held piece costs an object besides its bytes, so a peer sending
 * many tiny frames with gaps between them could make us hold far more memory than the window.
 * When there are more than `max(MIN_CHUNK_LIMIT, buffered / MIN_AVERAGE_CHUNK)` pieces, runs of
 * adjacent pieces are merged into one copy; if that leaves more than half the limit (that many
 * real gaps), the peer is abusing us and the connection is closed (INTERNAL_ERROR: a local
 * resource limit, not a protocol rule; quic-go has a similar gap limit).
 */
const MIN_CHUNK_LIMIT = 1024;
const MIN_AVERAGE_CHUNK = 256;

function retain(piece: Uint8Array): Uint8Array {
  return piece.byteLength < piece.buffer.byteLength * COPY_BELOW_FRACTION ? piece.slice() : piece;
}

/** Out-of-order reassembly buffer; see the module comment. */
export class RecvBuffer {
  private chunks: Chunk[] = [];
  /** Index of the first live chunk in `chunks` (consumed chunks before it are dropped lazily). */
  private head = 0;
  private _readOffset = 0;
  private _highestOffset = 0;
  private _contiguousEnd = 0;
  private _finalSize: number | undefined;
  private _buffered = 0;
  private discarding = false;
  /** While discarding: the offsets received beyond `_contiguousEnd` (to know when all arrived). */
  private received: RangeSet | undefined;
  private readonly maxAhead: number | undefined;
  private readonly frameType: number;

  constructor(options: RecvBufferOptions = {}) {
    this.maxAhead = options.maxAhead;
    this.frameType = options.frameType ?? StreamFrameType.STREAM;
  }

  /** Offset of the next byte to deliver: bytes handed to the reader so far. */
  get readOffset(): number {
    return this._readOffset;
  }

  /** One past the largest offset received (§4.5: what flow control counts). */
  get highestOffset(): number {
    return this._highestOffset;
  }

  /** The stream's final size once a FIN or RESET_STREAM made it known (§4.5). */
  get finalSize(): number | undefined {
    return this._finalSize;
  }

  /** Bytes held in memory (received, not yet read, duplicates not counted). */
  get buffered(): number {
    return this._buffered;
  }

  /** Contiguous bytes ready to read now. */
  get readable(): number {
    return this.discarding ? 0 : this._contiguousEnd - this._readOffset;
  }

  /** True when the final size is known and every byte up to it has arrived (§3.2 "Data Recvd"). */
  get allReceived(): boolean {
    return this._finalSize !== undefined && this._contiguousEnd === this._finalSize;
  }

  /** True when the final size is known and every byte up to it has been read (§3.2 "Data Read"). */
  get isFinished(): boolean {
    return this._finalSize !== undefined && this._readOffset === this._finalSize;
  }

  /** True once `discard()` was called: data is checked but no longer stored. */
  get isDiscarding(): boolean {
    return this.discarding;
  }

  private fail(code: number, reason: string): TransportError {
    return new TransportError(code, reason, this.frameType);
  }

  /**
   * Records a final size announced by a FIN or a RESET_STREAM (RFC 9000 §4.5): it must equal a
   * final size already known and must not be below the largest offset received.
   */
  setFinalSize(size: number): void {
    if (this._finalSize !== undefined) {
      if (size !== this._finalSize)
        throw this.fail(
          TransportErrorCode.FINAL_SIZE_ERROR,
          `final size changed from ${this._finalSize} to ${size}`,
        );
      return;
    }
    if (size < this._highestOffset)
      throw this.fail(
        TransportErrorCode.FINAL_SIZE_ERROR,
        `final size ${size} is below the ${this._highestOffset} bytes already received`,
      );
    this._finalSize = size;
    if (size > this._highestOffset) this._highestOffset = size;
  }

  /**
   * Adds the bytes of a STREAM or CRYPTO frame at `offset`; `fin` marks the end of the stream.
   * Bytes already received or already read are ignored. Throws FINAL_SIZE_ERROR (§4.5) or
   * CRYPTO_BUFFER_EXCEEDED (§7.5). Returns how much the highest received offset grew, which is
   * what connection-level flow control counts (§4.1).
   */
  insert(offset: number, data: Uint8Array, fin = false): number {
    const end = offset + data.length;
    if (fin) {
      this.setFinalSize(end);
    } else if (this._finalSize !== undefined && end > this._finalSize) {
      throw this.fail(
        TransportErrorCode.FINAL_SIZE_ERROR,
        `data up to offset ${end} beyond the final size ${this._finalSize}`,
      );
    }
    if (this.maxAhead !== undefined && end > this._readOffset + this.maxAhead)
      throw this.fail(
        TransportErrorCode.CRYPTO_BUFFER_EXCEEDED,
        `data up to offset ${end} is more than ${this.maxAhead} bytes ahead of offset ${this._readOffset}`,
      );
    const grew = Math.max(0, end - this._highestOffset);
    this._highestOffset += grew;
    const start = Math.max(offset, this._contiguousEnd);
    if (start >= end) return grew;
    if (this.received !== undefined) {
      this.trackDiscarded(start, end);
      return grew;
    }
    this.store(start, end, offset, data);
    this.advanceContiguous();
    this.maybeDefragment();
    return grew;
  }

  /** Number of pieces held (for tests and diagnostics). */
  get chunkCount(): number {
    return this.chunks.length - this.head;
  }

  private maybeDefragment(): void {
    const limit = Math.max(MIN_CHUNK_LIMIT, this._buffered / MIN_AVERAGE_CHUNK);
    if (this.chunks.length - this.head <= limit) return;
    const merged: Chunk[] = [];
    let i = this.head;
    while (i < this.chunks.length) {
      let j = i + 1;
      let end = this.chunks[i].offset + this.chunks[i].data.length;
      while (j < this.chunks.length && this.chunks[j].offset === end) {
        end += this.chunks[j].data.length;
        j++;
      }
      if (j === i + 1) merged.push(this.chunks[i]);
      else {
        const start = this.chunks[i].offset;
        const buf = new Uint8Array(end - start);
        for (let k = i; k < j; k++) buf.set(this.chunks[k].data, this.chunks[k].offset - start);
        merged.push({ offset: start, data: buf });
      }
      i = j;
    }
    this.chunks = merged;
    this.head = 0;
    if (merged.length > limit / 2)
      throw this.fail(
        TransportErrorCode.INTERNAL_ERROR,
        `too many gaps in received data (${merged.length} fragments, ${this._buffered} bytes)`,
      );
  }

  /** Stores the parts of `[start, end)` (bytes of `data`, which begins at `base`) not yet held. */
  private store(start: number, end: number, base: number, data: Uint8Array): void {
    const chunks = this.chunks;
    const n = chunks.length;
    const last = n > this.head ? chunks[n - 1] : undefined;
    // Fast path: in-order or beyond everything held.
    if (last === undefined || start >= last.offset + last.data.length) {
      this.push(chunks.length, start, data.subarray(start - base, end - base));
      return;
    }
    // Find the first chunk that ends after `start`.
    let lo = this.head;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = chunks[mid];
      if (c.offset + c.data.length <= start) lo = mid + 1;
      else hi = mid;
    }
    let at = start;
    let i = lo;
    while (at < end) {
      const c = i < chunks.length ? chunks[i] : undefined;
      if (c === undefined || c.offset >= end) {
        this.push(i, at, data.subarray(at - base, end - base));
        return;
      }
      if (c.offset > at) {
        this.push(i, at, data.subarray(at - base, c.offset - base));
        i++; // skip the piece just inserted
      }
      at = Math.max(at, c.offset + c.data.length);
      i++;
    }
  }

  private push(index: number, offset: number, piece: Uint8Array): void {
    const chunk = { offset, data: retain(piece) };
    if (index === this.chunks.length) this.chunks.push(chunk);
    else this.chunks.splice(index, 0, chunk);
    this._buffered += piece.length;
  }

  private advanceContiguous(): void {
    // Chunks are sorted and disjoint; walk forward from the one that may start at the end.
    let lo = this.head;
    let hi = this.chunks.length;
    const target = this._contiguousEnd;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.chunks[mid].offset < target) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.chunks.length && this.chunks[i].offset === this._contiguousEnd; i++) {
      this._contiguousEnd += this.chunks[i].data.length;
    }
  }

  private trackDiscarded(start: number, end: number): void {
    const received = this.received!;
    received.add(start, end);
    const first = received.first();
    if (first !== undefined && first[0] <= this._contiguousEnd) {
      this._contiguousEnd = Math.max(this._contiguousEnd, first[1]);
      received.removeBelow(this._contiguousEnd);
    }
  }

  /**
   * Returns the next contiguous bytes (at most `maxBytes`) as a view, advancing the read
   * offset, or undefined when nothing is ready. Call repeatedly to drain.
   */
  read(maxBytes = Number.POSITIVE_INFINITY): Uint8Array | undefined {
    if (this.discarding || this._readOffset >= this._contiguousEnd || maxBytes <= 0) return undefined;
    const c = this.chunks[this.head];
    let out: Uint8Array;
    if (c.data.length <= maxBytes) {
      out = c.data;
      this.head++;
      this.compact();
    } else {
      out = c.data.subarray(0, maxBytes);
      c.data = c.data.subarray(maxBytes);
      c.offset += maxBytes;
    }
    this._readOffset += out.length;
    this._buffered -= out.length;
    return out;
  }

  /** Reads every contiguous byte available, as a list of views (empty when none). */
  readAll(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let b = this.read(); b !== undefined; b = this.read()) out.push(b);
    return out;
  }

  /**
   * Drops everything buffered and stores no more data (after RESET_STREAM or STOP_SENDING,
   * §3.2, §3.5). Final-size checks still apply to later frames, and which offsets arrived is
   * still tracked (as ranges, not bytes) so `allReceived` stays meaningful. Nothing is readable
   * any more. Returns the bytes dropped.
   */
  discard(): number {
    if (this.discarding) return 0;
    const dropped = this._buffered;
    const received = new RangeSet();
    for (let i = this.head; i < this.chunks.length; i++) {
      const c = this.chunks[i];
      received.add(c.offset, c.offset + c.data.length);
    }
    received.removeBelow(this._contiguousEnd);
    this.received = received;
    this.chunks = [];
    this.head = 0;
    this._buffered = 0;
    this.discarding = true;
    return dropped;
  }

  private compact(): void {
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= 32 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
