/**
 * Byte cursors shared by every codec (QUIC frames, packets, transport parameters, TLS messages).
 *
 * A `Reader` never reads out of bounds: every short read calls the `fail` callback given at
 * construction, which builds the protocol's own typed error (a QUIC `TransportError` with
 * FRAME_ENCODING_ERROR, a TLS `decode_error` alert, ...). Decoders therefore never leak a
 * `RangeError` or read `undefined`.
 */

/** Builds the error a decoder throws on malformed input. */
export type DecodeFailure = (reason: string) => Error;

/** A generic decode failure, for callers that have no protocol-specific error. */
export class DecodeError extends Error {
  override name = "DecodeError";
}

const defaultFail: DecodeFailure = (reason) => new DecodeError(reason);

/** Read cursor over a `Uint8Array`. All multi-byte integers are network byte order. */
export class Reader {
  readonly buf: Uint8Array;
  /** Current offset into `buf`. */
  pos: number;
  /** Offset one past the last readable byte (a sub-range of `buf` may be read). */
  readonly end: number;
  readonly fail: DecodeFailure;

  constructor(buf: Uint8Array, fail: DecodeFailure = defaultFail, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.fail = fail;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.end - this.pos;
  }

  /** True when nothing is left. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Throws `fail(reason)` unless `n` more bytes can be read. */
  need(n: number, what = "field"): void {
    if (n < 0 || this.pos + n > this.end) {
      throw this.fail(`truncated ${what}: need ${n} byte(s), ${this.end - this.pos} left`);
    }
  }

  u8(what = "u8"): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  u16(what = "u16"): number {
    this.need(2, what);
    const b = this.buf;
    const v = (b[this.pos] << 8) | b[this.pos + 1];
    this.pos += 2;
    return v;
  }

  u24(what = "u24"): number {
    this.need(3, what);
    const b = this.buf;
    const v = (b[this.pos] << 16) | (b[this.pos + 1] << 8) | b[this.pos + 2];
    this.pos += 3;
    return v;
  }

  u32(what = "u32"): number {
    this.need(4, what);
    const b = this.buf;
    const v =
      (b[this.pos] * 0x1000000 + ((b[this.pos + 1] << 16) | (b[this.pos + 2] << 8) | b[this.pos + 3])) >>> 0;
    this.pos += 4;
    return v;
  }

  /** Reads `n` bytes as a view (no copy) into the underlying buffer. */
  bytes(n: number, what = "bytes"): Uint8Array {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** Reads `n` bytes as a fresh copy. */
  copy(n: number, what = "bytes"): Uint8Array {
    return this.bytes(n, what).slice();
  }

  /** Reads everything left (a view). */
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  /** A u8/u16/u24 length prefix followed by that many bytes (TLS `opaque x<a..b>` vectors). */
  vec(lengthBytes: 1 | 2 | 3, what = "vector"): Uint8Array {
    const n = lengthBytes === 1 ? this.u8(what) : lengthBytes === 2 ? this.u16(what) : this.u24(what);
    return this.bytes(n, what);
  }

  /**
   * A sub-reader over the next `n` bytes (with the same failure builder); the parent skips them.
   * Use it to parse a length-delimited structure and then check it was consumed exactly.
   */
  sub(n: number, what = "structure"): Reader {
    this.need(n, what);
    const r = new Reader(this.buf, this.fail, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  /** Throws unless every byte was consumed (trailing bytes are a decode error). */
  expectEnd(what = "structure"): void {
    if (this.pos !== this.end) throw this.fail(`${this.end - this.pos} trailing byte(s) after ${what}`);
  }

  /**
   * QUIC variable-length integer (RFC 9000 §16). Values up to 2^62-1; returned as a number
   * (exact up to 2^53-1; larger values, which no field of ours may legally carry, fail).
   */
  varint(what = "varint"): number {
    this.need(1, what);
    const b = this.buf;
    const first = b[this.pos];
    const len = 1 << (first >> 6);
    this.need(len, what);
    let v = first & 0x3f;
    for (let i = 1; i < len; i++) v = v * 256 + b[this.pos + i];
    if (v > Number.MAX_SAFE_INTEGER) throw this.fail(`${what} ${v} exceeds 2^53-1`);
    this.pos += len;
    return v;
  }

  /** QUIC varint as a bigint: the full 62-bit range. */
  varintBig(what = "varint"): bigint {
    this.need(1, what);
    const b = this.buf;
    const first = b[this.pos];
    const len = 1 << (first >> 6);
    this.need(len, what);
    let v = BigInt(first & 0x3f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(b[this.pos + i]);
    this.pos += len;
    return v;
  }
}

/** Growable write cursor. `finish()` returns a view of exactly the bytes written. */
export class Writer {
  private buf: Uint8Array;
  /** Bytes written so far. */
  pos = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(initialCapacity);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u24(v: number): this {
    this.ensure(3);
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf[this.pos++] = (v >>> 24) & 0xff;
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Writes `b` behind a u8/u16/u24 length prefix. */
  vec(lengthBytes: 1 | 2 | 3, b: Uint8Array): this {
    const max = lengthBytes === 1 ? 0xff : lengthBytes === 2 ? 0xffff : 0xffffff;
    if (b.length > max)
      throw new RangeError(`vector of ${b.length} bytes exceeds its ${lengthBytes}-byte length`);
    if (lengthBytes === 1) this.u8(b.length);
    else if (lengthBytes === 2) this.u16(b.length);
    else this.u24(b.length);
    return this.bytes(b);
  }

  /**
   * Writes a length-prefixed block whose content `body` writes; the prefix is back-filled.
   * Spares building the body in a separate buffer first.
   */
  block(lengthBytes: 1 | 2 | 3, body: (w: this) => void): this {
    const at = this.pos;
    this.ensure(lengthBytes);
    this.pos += lengthBytes;
    body(this);
    const n = this.pos - at - lengthBytes;
    const max = lengthBytes === 1 ? 0xff : lengthBytes === 2 ? 0xffff : 0xffffff;
    if (n > max) throw new RangeError(`block of ${n} bytes exceeds its ${lengthBytes}-byte length`);
    for (let i = lengthBytes - 1, v = n; i >= 0; i--, v >>>= 8) this.buf[at + i] = v & 0xff;
    return this;
  }

  /** QUIC variable-length integer (RFC 9000 §16), minimal encoding. */
  varint(v: number | bigint): this {
    if (typeof v === "bigint") {
      if (v < 0n || v > 0x3fffffffffffffffn) throw new RangeError(`varint out of range: ${v}`);
      if (v <= 0x3fffffffn) return this.varint(Number(v));
      this.ensure(8);
      for (let i = 7; i >= 0; i--) {
        this.buf[this.pos + i] = Number(v & 0xffn);
        v >>= 8n;
      }
      this.buf[this.pos] |= 0xc0;
      this.pos += 8;
      return this;
    }
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    if (v < 0x40) return this.u8(v);
    if (v < 0x4000) return this.u16(0x4000 | v);
    if (v < 0x40000000) return this.u32((0x80000000 | v) >>> 0);
    if (v > Number.MAX_SAFE_INTEGER) throw new RangeError(`varint ${v} is not a safe integer; pass a bigint`);
    this.ensure(8);
    const hi = Math.floor(v / 0x100000000);
    const lo = v >>> 0;
    this.u32((0xc0000000 | hi) >>> 0);
    return this.u32(lo);
  }

  /** Writes `v` as a varint of exactly `len` bytes (1, 2, 4 or 8), e.g. for a back-filled length. */
  varintFixed(v: number, len: 1 | 2 | 4 | 8): this {
    if (v >= 2 ** (8 * len - 2)) throw new RangeError(`varint ${v} does not fit in ${len} bytes`);
    if (len === 1) return this.u8(v);
    if (len === 2) return this.u16(0x4000 | v);
    if (len === 4) return this.u32((0x80000000 | v) >>> 0);
    this.u32((0xc0000000 | Math.floor(v / 0x100000000)) >>> 0);
    return this.u32(v >>> 0);
  }

  /** A view of the bytes written (shares memory with the writer until it grows). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/** Number of bytes the minimal varint encoding of `v` takes (RFC 9000 §16). */
export function varintLength(v: number | bigint): 1 | 2 | 4 | 8 {
  const n = typeof v === "bigint" ? v : BigInt(Math.floor(v));
  if (n < 0n || n > 0x3fffffffffffffffn) throw new RangeError(`varint out of range: ${v}`);
  if (n < 0x40n) return 1;
  if (n < 0x4000n) return 2;
  if (n < 0x40000000n) return 4;
  return 8;
}

/** Largest value a QUIC varint can carry: 2^62 - 1. */
export const MAX_VARINT = 0x3fffffffffffffffn;

/** Lower-case hex of `b`. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** Parses hex, ignoring whitespace (so RFC vector blocks can be pasted as they are). */
export function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, "");
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new TypeError("invalid hex string");
  return new Uint8Array(Buffer.from(clean, "hex"));
}

/** Concatenates byte arrays into a new one. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Byte equality (not constant time; see `constantTimeEqual` for secrets). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Constant-time equality for MACs, Finished values and tokens. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}
