/**
 * QUIC frame codec: RFC 9000 §19 frames plus DATAGRAM (RFC 9221 §4), the frame type table of
 * RFC 9000 §12.4 (Table 3), and the size helpers the packet builder uses to fill a packet exactly.
 *
 * Decoding never reads out of bounds and only ever throws a {@link TransportError}:
 * FRAME_ENCODING_ERROR for truncated or malformed frames and unknown types, PROTOCOL_VIOLATION
 * for a frame type that is not minimally encoded (RFC 9000 §12.4). The error's `frameType` is
 * the type of the offending frame, ready for the CONNECTION_CLOSE the connection sends.
 *
 * ### Numbers
 * QUIC integers are 62-bit; ours are JavaScript numbers. Fields that may legitimately exceed
 * 2^53-1 on the wire (limits such as MAX_DATA 2^62-1, error codes, sequence numbers, packet
 * numbers, offsets, stream IDs) are read exactly and then **clamped to
 * `Number.MAX_SAFE_INTEGER`**. Clamping is sound for everything we do with them: our own limits,
 * packet numbers, offsets and stream counts all stay below 2^53, so a clamped value compares
 * against them exactly as the true value would ("more than we allow", "a packet we never sent").
 * Checks that need the exact value (offset + length <= 2^62-1, MAX_STREAMS <= 2^60, ACK ranges
 * below zero, Retire Prior To <= Sequence Number) are made before clamping.
 *
 * ### Views
 * Decoded byte fields (`data`, `token`, `connectionId`, ...) are views into the payload, not
 * copies: a receiver copies what must outlive the packet buffer.
 */
import type { Writer } from "../util/bytes.js";
import { MAX_VARINT, Reader, varintLength } from "../util/bytes.js";
import { TransportError, TransportErrorCode } from "./errors.js";

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** Frame type codes (RFC 9000 §12.4 Table 3, §19; RFC 9221 §4). */
export const FrameType = {
  PADDING: 0x00,
  PING: 0x01,
  ACK: 0x02,
  ACK_ECN: 0x03,
  RESET_STREAM: 0x04,
  STOP_SENDING: 0x05,
  CRYPTO: 0x06,
  NEW_TOKEN: 0x07,
  /** STREAM is 0x08..0x0f: base | OFF (0x04) | LEN (0x02) | FIN (0x01), RFC 9000 §19.8. */
  STREAM: 0x08,
  MAX_DATA: 0x10,
  MAX_STREAM_DATA: 0x11,
  MAX_STREAMS_BIDI: 0x12,
  MAX_STREAMS_UNI: 0x13,
  DATA_BLOCKED: 0x14,
  STREAM_DATA_BLOCKED: 0x15,
  STREAMS_BLOCKED_BIDI: 0x16,
  STREAMS_BLOCKED_UNI: 0x17,
  NEW_CONNECTION_ID: 0x18,
  RETIRE_CONNECTION_ID: 0x19,
  PATH_CHALLENGE: 0x1a,
  PATH_RESPONSE: 0x1b,
  /** CONNECTION_CLOSE signalling a QUIC-layer error (carries a Frame Type field). */
  CONNECTION_CLOSE: 0x1c,
  /** CONNECTION_CLOSE signalling an application error. */
  CONNECTION_CLOSE_APP: 0x1d,
  HANDSHAKE_DONE: 0x1e,
  /** DATAGRAM without a Length field: the data runs to the end of the packet (RFC 9221 §4). */
  DATAGRAM: 0x30,
  /** DATAGRAM with a Length field. */
  DATAGRAM_LEN: 0x31,
} as const;

/** STREAM frame type bits (RFC 9000 §19.8). */
const STREAM_OFF = 0x04;
const STREAM_LEN = 0x02;
const STREAM_FIN = 0x01;

/** A run of PADDING bytes (RFC 9000 §19.1); consecutive 0x00 bytes decode as one frame. */
export interface PaddingFrame {
  type: "padding";
  /** Number of PADDING bytes (>= 1). */
  length: number;
}

/** PING (RFC 9000 §19.2). */
export interface PingFrame {
  type: "ping";
}

/**
 * ACK / ACK_ECN (RFC 9000 §19.3). Packet numbers above 2^53-1 are clamped (see module doc);
 * such an ACK can only acknowledge packets never sent.
 */
export interface AckFrame {
  type: "ack";
  /** Largest Acknowledged. */
  largest: number;
  /** The raw ACK Delay field, unscaled: multiply by 2^ack_delay_exponent for microseconds. */
  ackDelay: number;
  /**
   * Acknowledged ranges `[smallest, largest]`, inclusive, in descending order, non-overlapping
   * and non-adjacent; the first ends at `largest`. Never empty.
   */
  ranges: Array<[smallest: number, largest: number]>;
  /** ECN counts, present for type 0x03 (ACK_ECN). Clamped to 2^53-1. */
  ecn?: { ect0: number; ect1: number; ce: number };
}

/** RESET_STREAM (RFC 9000 §19.4). `errorCode` and `finalSize` are clamped to 2^53-1. */
export interface ResetStreamFrame {
  type: "reset_stream";
  streamId: number;
  /** Application protocol error code. */
  errorCode: number;
  finalSize: number;
}

/** STOP_SENDING (RFC 9000 §19.5). `errorCode` is clamped to 2^53-1. */
export interface StopSendingFrame {
  type: "stop_sending";
  streamId: number;
  /** Application protocol error code. */
  errorCode: number;
}

/** CRYPTO (RFC 9000 §19.6). `data` is a view into the payload. */
export interface CryptoFrame {
  type: "crypto";
  offset: number;
  data: Uint8Array;
}

/** NEW_TOKEN (RFC 9000 §19.7). The token is never empty; a view into the payload. */
export interface NewTokenFrame {
  type: "new_token";
  token: Uint8Array;
}

/** STREAM (RFC 9000 §19.8). `data` is a view into the payload, not a copy. */
export interface StreamFrame {
  type: "stream";
  streamId: number;
  offset: number;
  data: Uint8Array;
  fin: boolean;
}

/** MAX_DATA (RFC 9000 §19.9). `limit` (up to 2^62-1 on the wire) is clamped to 2^53-1. */
export interface MaxDataFrame {
  type: "max_data";
  limit: number;
}

/** MAX_STREAM_DATA (RFC 9000 §19.10). `limit` is clamped to 2^53-1. */
export interface MaxStreamDataFrame {
  type: "max_stream_data";
  streamId: number;
  limit: number;
}

/** MAX_STREAMS (RFC 9000 §19.11). `limit` <= 2^60 is checked, then clamped to 2^53-1. */
export interface MaxStreamsFrame {
  type: "max_streams";
  /** True for 0x12 (bidirectional), false for 0x13 (unidirectional). */
  bidi: boolean;
  limit: number;
}

/** DATA_BLOCKED (RFC 9000 §19.12). `limit` is clamped to 2^53-1. */
export interface DataBlockedFrame {
  type: "data_blocked";
  limit: number;
}

/** STREAM_DATA_BLOCKED (RFC 9000 §19.13). `limit` is clamped to 2^53-1. */
export interface StreamDataBlockedFrame {
  type: "stream_data_blocked";
  streamId: number;
  limit: number;
}

/** STREAMS_BLOCKED (RFC 9000 §19.14). `limit` <= 2^60 is checked, then clamped to 2^53-1. */
export interface StreamsBlockedFrame {
  type: "streams_blocked";
  /** True for 0x16 (bidirectional), false for 0x17 (unidirectional). */
  bidi: boolean;
  limit: number;
}

/**
 * NEW_CONNECTION_ID (RFC 9000 §19.15). `retirePriorTo <= sequence` and a connection ID of 1..20
 * bytes are checked on decode; sequence numbers are clamped to 2^53-1. Byte fields are views.
 */
export interface NewConnectionIdFrame {
  type: "new_connection_id";
  sequence: number;
  retirePriorTo: number;
  connectionId: Uint8Array;
  /** 16 bytes. */
  statelessResetToken: Uint8Array;
}

/** RETIRE_CONNECTION_ID (RFC 9000 §19.16). `sequence` is clamped to 2^53-1. */
export interface RetireConnectionIdFrame {
  type: "retire_connection_id";
  sequence: number;
}

/** PATH_CHALLENGE (RFC 9000 §19.17). `data` is 8 bytes (a view). */
export interface PathChallengeFrame {
  type: "path_challenge";
  data: Uint8Array;
}

/** PATH_RESPONSE (RFC 9000 §19.18). `data` is 8 bytes (a view). */
export interface PathResponseFrame {
  type: "path_response";
  data: Uint8Array;
}

/**
 * CONNECTION_CLOSE (RFC 9000 §19.19): type 0x1c (`application: false`) or 0x1d
 * (`application: true`). `errorCode` and `frameType` are clamped to 2^53-1. A reason phrase
 * that is not valid UTF-8 is decoded leniently (U+FFFD replacement characters).
 */
export interface ConnectionCloseFrame {
  type: "connection_close";
  application: boolean;
  errorCode: number;
  /** The frame type that triggered the error; always 0 for application closes. */
  frameType: number;
  reason: string;
}

/** HANDSHAKE_DONE (RFC 9000 §19.20). */
export interface HandshakeDoneFrame {
  type: "handshake_done";
}

/**
 * DATAGRAM (RFC 9221 §4). Decodes both 0x30 and 0x31; the encoder writes 0x31 (with Length)
 * unless asked for the last-in-packet form. `data` is a view; it may be empty.
 */
export interface DatagramFrame {
  type: "datagram";
  data: Uint8Array;
}

/** Any QUIC frame, discriminated by `type`. */
export type Frame =
  | PaddingFrame
  | PingFrame
  | AckFrame
  | ResetStreamFrame
  | StopSendingFrame
  | CryptoFrame
  | NewTokenFrame
  | StreamFrame
  | MaxDataFrame
  | MaxStreamDataFrame
  | MaxStreamsFrame
  | DataBlockedFrame
  | StreamDataBlockedFrame
  | StreamsBlockedFrame
  | NewConnectionIdFrame
  | RetireConnectionIdFrame
  | PathChallengeFrame
  | PathResponseFrame
  | ConnectionCloseFrame
  | HandshakeDoneFrame
  | DatagramFrame;

/** The `type` names of {@link Frame}. */
export type FrameName = Frame["type"];

/** QUIC packet types that carry frames (RFC 9000 §17). */
export type PacketType = "initial" | "zero_rtt" | "handshake" | "one_rtt";

// ---------------------------------------------------------------------------------------------
// Frame table (RFC 9000 §12.4 Table 3; RFC 9221 §4)
// ---------------------------------------------------------------------------------------------

/** One row of the frame type table. */
export interface FrameTypeInfo {
  /** The frame's `type` name in {@link Frame}. */
  readonly name: FrameName;
  /** First and last type code of the row (inclusive). */
  readonly first: number;
  readonly last: number;
  /** Whether the frame is ack-eliciting (all but PADDING, ACK, CONNECTION_CLOSE; RFC 9002 §2). */
  readonly ackEliciting: boolean;
  /**
   * Whether a packet with only such frames counts toward bytes in flight: all but ACK (Table 3
   * "C"). Note that RFC 9002 §2 defines in-flight packets as "ack-eliciting or containing
   * PADDING", which leaves out a packet of only CONNECTION_CLOSE; after sending one the
   * connection is closing and no longer runs congestion control, so the difference is moot.
   */
  readonly inFlight: boolean;
  /** Table 3 "P": may be used to probe a new path (RFC 9000 §9.1). */
  readonly probing: boolean;
  /** Table 3 "F": contents are flow controlled (RFC 9000 §4). */
  readonly flowControlled: boolean;
  /** Packet types where the frame is allowed, Table 3 "Pkts" notation: I, H, 0, 1 or `_`. */
  readonly packets: string;
  /** Where the frame is defined. */
  readonly spec: string;
}

function row(
  name: FrameName,
  first: number,
  last: number,
  packets: string,
  flags: string,
  spec: string,
): FrameTypeInfo {
  return {
    name,
    first,
    last,
    packets,
    spec,
    ackEliciting: !flags.includes("N"),
    inFlight: !flags.includes("C"),
    probing: flags.includes("P"),
    flowControlled: flags.includes("F"),
  };
}

/**
 * The frame type table: RFC 9000 §12.4 Table 3 plus DATAGRAM (RFC 9221 §4: 0-RTT and 1-RTT
 * only, ack-eliciting, congestion controlled). Flags: N not ack-eliciting, C not in flight,
 * P probing, F flow controlled.
 *
 * One deliberate deviation from Table 3's "Pkts" column: RETIRE_CONNECTION_ID is not allowed in
 * 0-RTT. RFC 9000 §12.5 lists it with ACK, CRYPTO, HANDSHAKE_DONE, NEW_TOKEN and PATH_RESPONSE
 * as frames that cannot be sent in 0-RTT and that a server MAY reject there (a client cannot
 * have received a NEW_CONNECTION_ID before it has 1-RTT keys).
 */
export const FRAME_TYPES: readonly FrameTypeInfo[] = [
  row("padding", 0x00, 0x00, "IH01", "NP", "RFC 9000 §19.1"),
  row("ping", 0x01, 0x01, "IH01", "", "RFC 9000 §19.2"),
  row("ack", 0x02, 0x03, "IH_1", "NC", "RFC 9000 §19.3"),
  row("reset_stream", 0x04, 0x04, "__01", "", "RFC 9000 §19.4"),
  row("stop_sending", 0x05, 0x05, "__01", "", "RFC 9000 §19.5"),
  row("crypto", 0x06, 0x06, "IH_1", "", "RFC 9000 §19.6"),
  row("new_token", 0x07, 0x07, "___1", "", "RFC 9000 §19.7"),
  row("stream", 0x08, 0x0f, "__01", "F", "RFC 9000 §19.8"),
  row("max_data", 0x10, 0x10, "__01", "", "RFC 9000 §19.9"),
  row("max_stream_data", 0x11, 0x11, "__01", "", "RFC 9000 §19.10"),
  row("max_streams", 0x12, 0x13, "__01", "", "RFC 9000 §19.11"),
  row("data_blocked", 0x14, 0x14, "__01", "", "RFC 9000 §19.12"),
  row("stream_data_blocked", 0x15, 0x15, "__01", "", "RFC 9000 §19.13"),
  row("streams_blocked", 0x16, 0x17, "__01", "", "RFC 9000 §19.14"),
  row("new_connection_id", 0x18, 0x18, "__01", "P", "RFC 9000 §19.15"),
  row("retire_connection_id", 0x19, 0x19, "___1", "", "RFC 9000 §19.16, §12.5"),
  row("path_challenge", 0x1a, 0x1a, "__01", "P", "RFC 9000 §19.17"),
  row("path_response", 0x1b, 0x1b, "___1", "P", "RFC 9000 §19.18"),
  // Table 3 "ih": only the QUIC-layer CONNECTION_CLOSE (0x1c) may appear in Initial/Handshake.
  row("connection_close", 0x1c, 0x1c, "IH01", "N", "RFC 9000 §19.19"),
  row("connection_close", 0x1d, 0x1d, "__01", "N", "RFC 9000 §19.19"),
  row("handshake_done", 0x1e, 0x1e, "___1", "", "RFC 9000 §19.20"),
  row("datagram", 0x30, 0x31, "__01", "", "RFC 9221 §4"),
];

/** Every known type code is below 0x40 (a one-byte varint). */
const TABLE_SIZE = 0x40;
const infoByCode: (FrameTypeInfo | undefined)[] = new Array(TABLE_SIZE).fill(undefined);
/** Bit 0 Initial, 1 0-RTT, 2 Handshake, 3 1-RTT. */
const allowedMask = new Uint8Array(TABLE_SIZE);
const PACKET_BIT: Record<PacketType, number> = { initial: 1, zero_rtt: 2, handshake: 4, one_rtt: 8 };
for (const info of FRAME_TYPES) {
  let mask = 0;
  if (info.packets[0] === "I") mask |= PACKET_BIT.initial;
  if (info.packets[1] === "H") mask |= PACKET_BIT.handshake;
  if (info.packets[2] === "0") mask |= PACKET_BIT.zero_rtt;
  if (info.packets[3] === "1") mask |= PACKET_BIT.one_rtt;
  for (let t = info.first; t <= info.last; t++) {
    infoByCode[t] = info;
    allowedMask[t] = mask;
  }
}

/** The table row of a frame type code, or `undefined` for an unknown type. */
export function frameTypeInfo(frameType: number): FrameTypeInfo | undefined {
  return frameType >= 0 && frameType < TABLE_SIZE ? infoByCode[frameType] : undefined;
}

/**
 * Whether a frame (or frame type code) may appear in a packet type (RFC 9000 §12.4 Table 3,
 * §12.5). A frame in a packet type where it is not permitted is a connection error of type
 * PROTOCOL_VIOLATION. Unknown type codes are never allowed.
 */
export function frameAllowedIn(frameType: number | Frame, packetType: PacketType): boolean {
  const code = typeof frameType === "number" ? frameType : frameTypeCode(frameType);
  return code >= 0 && code < TABLE_SIZE && (allowedMask[code] & PACKET_BIT[packetType]) !== 0;
}

/** Whether a frame is ack-eliciting (RFC 9002 §2): anything but PADDING, ACK and CONNECTION_CLOSE. */
export function isAckEliciting(f: Frame): boolean {
  return f.type !== "padding" && f.type !== "ack" && f.type !== "connection_close";
}

/**
 * The type code `encodeFrame` writes for `f` (for STREAM: with the OFF/LEN/FIN bits it sets;
 * for DATAGRAM: 0x31, or 0x30 with `lastInPacket`). Use it for the Frame Type field of a
 * CONNECTION_CLOSE caused by a decoded frame.
 */
export function frameTypeCode(f: Frame, opts?: EncodeOptions): number {
  switch (f.type) {
    case "padding":
      return FrameType.PADDING;
    case "ping":
      return FrameType.PING;
    case "ack":
      return f.ecn ? FrameType.ACK_ECN : FrameType.ACK;
    case "reset_stream":
      return FrameType.RESET_STREAM;
    case "stop_sending":
      return FrameType.STOP_SENDING;
    case "crypto":
      return FrameType.CRYPTO;
    case "new_token":
      return FrameType.NEW_TOKEN;
    case "stream":
      return (
        FrameType.STREAM |
        (f.offset > 0 ? STREAM_OFF : 0) |
        (opts?.lastInPacket ? 0 : STREAM_LEN) |
        (f.fin ? STREAM_FIN : 0)
      );
    case "max_data":
      return FrameType.MAX_DATA;
    case "max_stream_data":
      return FrameType.MAX_STREAM_DATA;
    case "max_streams":
      return f.bidi ? FrameType.MAX_STREAMS_BIDI : FrameType.MAX_STREAMS_UNI;
    case "data_blocked":
      return FrameType.DATA_BLOCKED;
    case "stream_data_blocked":
      return FrameType.STREAM_DATA_BLOCKED;
    case "streams_blocked":
      return f.bidi ? FrameType.STREAMS_BLOCKED_BIDI : FrameType.STREAMS_BLOCKED_UNI;
    case "new_connection_id":
      return FrameType.NEW_CONNECTION_ID;
    case "retire_connection_id":
      return FrameType.RETIRE_CONNECTION_ID;
    case "path_challenge":
      return FrameType.PATH_CHALLENGE;
    case "path_response":
      return FrameType.PATH_RESPONSE;
    case "connection_close":
      return f.application ? FrameType.CONNECTION_CLOSE_APP : FrameType.CONNECTION_CLOSE;
    case "handshake_done":
      return FrameType.HANDSHAKE_DONE;
    case "datagram":
      return opts?.lastInPacket ? FrameType.DATAGRAM : FrameType.DATAGRAM_LEN;
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO_POW_60 = 1n << 60n;
const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * Reads a varint exactly: a number when it is at most 2^53-1, otherwise a bigint (only the
 * 8-byte form can carry such values, so only it pays for a bigint).
 */
function u62(r: Reader, what: string): number | bigint {
  if (r.pos < r.end && r.buf[r.pos] >= 0xc0) {
    const v = r.varintBig(what);
    return v > BigInt(MAX_SAFE) ? v : Number(v);
  }
  return r.varint(what);
}

/** Clamps an exact varint value to `Number.MAX_SAFE_INTEGER` (see the module doc). */
function clamp(v: number | bigint): number {
  return typeof v === "number" ? v : MAX_SAFE;
}

/** Reads a varint clamped to `Number.MAX_SAFE_INTEGER`. */
function clamped(r: Reader, what: string): number {
  return clamp(u62(r, what));
}

/**
 * An allocation-light frame decoder: walks a packet payload one frame at a time without
 * building an array, and remembers the type of the frame being decoded (`frameType`) so that
 * every error names it, like quinn's frame iterator. Also an `Iterator<Frame>`.
 *
 * ```ts
 * const it = new FrameIterator(payload);
 * for (let f = it.nextFrame(); f; f = it.nextFrame()) handle(f, it.frameType);
 * ```
 *
 * An empty payload yields no frames; RFC 9000 §12.4 makes a packet without frames a
 * PROTOCOL_VIOLATION, which is the packet layer's check.
 */
export class FrameIterator implements IterableIterator<Frame> {
  private readonly r: Reader;
  /** Type code of the frame last decoded (or being decoded when an error is thrown). */
  frameType = 0;

  /** Iterates the frames in `payload[start, end)`. */
  constructor(payload: Uint8Array, start = 0, end = payload.length) {
    this.r = new Reader(
      payload,
      (reason) => new TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, reason, this.frameType),
      start,
      end,
    );
  }

  /** Offset in the payload of the next frame. */
  get pos(): number {
    return this.r.pos;
  }

  /** True when every frame has been read. */
  get done(): boolean {
    return this.r.done;
  }

  /** The next frame, or `undefined` at the end of the payload. Throws `TransportError`. */
  nextFrame(): Frame | undefined {
    const r = this.r;
    if (r.pos >= r.end) return undefined;
    const b0 = r.buf[r.pos];
    if (b0 >= 0x40) return this.unknownOrLongType();
    r.pos++;
    this.frameType = b0;
    switch (b0) {
      case 0x00: {
        let length = 1;
        const buf = r.buf;
        while (r.pos < r.end && buf[r.pos] === 0) {
          r.pos++;
          length++;
        }
        return { type: "padding", length };
      }
      case 0x01:
        return { type: "ping" };
      case 0x02:
      case 0x03:
        return this.ack(b0 === 0x03);
      case 0x04:
        return {
          type: "reset_stream",
          streamId: clamped(r, "stream ID"),
          errorCode: clamped(r, "application error code"),
          finalSize: clamped(r, "final size"),
        };
      case 0x05:
        return {
          type: "stop_sending",
          streamId: clamped(r, "stream ID"),
          errorCode: clamped(r, "application error code"),
        };
      case 0x06: {
        const off = u62(r, "CRYPTO offset");
        const len = r.varint("CRYPTO length");
        const data = r.bytes(len, "CRYPTO data");
        // RFC 9000 §19.6: offset + length > 2^62-1 is FRAME_ENCODING_ERROR or
        // CRYPTO_BUFFER_EXCEEDED; we use the former, as for STREAM.
        this.checkEnd(off, len);
        return { type: "crypto", offset: clamp(off), data };
      }
      case 0x07: {
        const len = r.varint("NEW_TOKEN length");
        // RFC 9000 §19.7: an empty token MUST be treated as FRAME_ENCODING_ERROR.
        if (len === 0) throw r.fail("NEW_TOKEN with an empty token");
        return { type: "new_token", token: r.bytes(len, "NEW_TOKEN token") };
      }
      case 0x08:
      case 0x09:
      case 0x0a:
      case 0x0b:
      case 0x0c:
      case 0x0d:
      case 0x0e:
      case 0x0f: {
        const streamId = clamped(r, "stream ID");
        const off = b0 & STREAM_OFF ? u62(r, "STREAM offset") : 0;
        const len = b0 & STREAM_LEN ? r.varint("STREAM length") : r.remaining;
        const data = r.bytes(len, "STREAM data");
        // RFC 9000 §19.8: offset + length > 2^62-1 is FRAME_ENCODING_ERROR or FLOW_CONTROL_ERROR.
        this.checkEnd(off, len);
        return { type: "stream", streamId, offset: clamp(off), data, fin: (b0 & STREAM_FIN) !== 0 };
      }
      case 0x10:
        return { type: "max_data", limit: clamped(r, "maximum data") };
      case 0x11:
        return {
          type: "max_stream_data",
          streamId: clamped(r, "stream ID"),
          limit: clamped(r, "maximum stream data"),
        };
      case 0x12:
      case 0x13:
        return { type: "max_streams", bidi: b0 === 0x12, limit: this.streamCount() };
      case 0x14:
        return { type: "data_blocked", limit: clamped(r, "maximum data") };
      case 0x15:
        return {
          type: "stream_data_blocked",
          streamId: clamped(r, "stream ID"),
          limit: clamped(r, "maximum stream data"),
        };
      case 0x16:
      case 0x17:
        return { type: "streams_blocked", bidi: b0 === 0x16, limit: this.streamCount() };
      case 0x18: {
        const seq = u62(r, "sequence number");
        const rpt = u62(r, "retire prior to");
        // RFC 9000 §19.15: Retire Prior To greater than Sequence Number is FRAME_ENCODING_ERROR.
        if (rpt > seq) throw r.fail(`NEW_CONNECTION_ID retire_prior_to ${rpt} > sequence ${seq}`);
        const len = r.u8("connection ID length");
        // RFC 9000 §19.15: a length < 1 or > 20 MUST be treated as FRAME_ENCODING_ERROR.
        if (len < 1 || len > 20) throw r.fail(`NEW_CONNECTION_ID connection ID length ${len} not in 1..20`);
        return {
          type: "new_connection_id",
          sequence: clamp(seq),
          retirePriorTo: clamp(rpt),
          connectionId: r.bytes(len, "connection ID"),
          statelessResetToken: r.bytes(16, "stateless reset token"),
        };
      }
      case 0x19:
        return { type: "retire_connection_id", sequence: clamped(r, "sequence number") };
      case 0x1a:
        return { type: "path_challenge", data: r.bytes(8, "PATH_CHALLENGE data") };
      case 0x1b:
        return { type: "path_response", data: r.bytes(8, "PATH_RESPONSE data") };
      case 0x1c:
      case 0x1d: {
        const application = b0 === 0x1d;
        const errorCode = clamped(r, "error code");
        const frameType = application ? 0 : clamped(r, "frame type");
        const len = r.varint("reason phrase length");
        const reason = len === 0 ? "" : utf8.decode(r.bytes(len, "reason phrase"));
        return { type: "connection_close", application, errorCode, frameType, reason };
      }
      case 0x1e:
        return { type: "handshake_done" };
      case 0x30:
        return { type: "datagram", data: r.rest() };
      case 0x31: {
        const len = r.varint("DATAGRAM length");
        return { type: "datagram", data: r.bytes(len, "DATAGRAM data") };
      }
      default:
        throw r.fail(`unknown frame type 0x${b0.toString(16)}`);
    }
  }

  /** Iterator protocol. */
  next(): IteratorResult<Frame, undefined> {
    const f = this.nextFrame();
    return f ? { done: false, value: f } : { done: true, value: undefined };
  }

  /** Iterable protocol: the iterator itself. */
  [Symbol.iterator](): this {
    return this;
  }

  /** A frame type of two or more bytes: every known type fits in one, so it is an error. */
  private unknownOrLongType(): never {
    const r = this.r;
    const start = r.pos;
    this.frameType = 0;
    const t = u62(r, "frame type");
    this.frameType = clamp(t);
    if (r.pos - start !== varintLength(t)) {
      // RFC 9000 §12.4: a frame type MUST use the shortest encoding; an endpoint MAY treat a
      // longer one as PROTOCOL_VIOLATION.
      throw new TransportError(
        TransportErrorCode.PROTOCOL_VIOLATION,
        `frame type 0x${t.toString(16)} not minimally encoded (${r.pos - start} bytes)`,
        this.frameType,
      );
    }
    // RFC 9000 §12.4: an unknown frame type MUST be treated as FRAME_ENCODING_ERROR.
    throw r.fail(`unknown frame type 0x${t.toString(16)}`);
  }

  /** RFC 9000 §19.6, §19.8: the end of the data (offset + length) cannot exceed 2^62-1. */
  private checkEnd(off: number | bigint, len: number): void {
    // A number offset is below 2^53, so adding a packet-sized length cannot reach 2^62.
    if (typeof off === "bigint" && off + BigInt(len) > MAX_VARINT) {
      throw this.r.fail(`data end ${off + BigInt(len)} exceeds 2^62-1`);
    }
  }

  /** MAX_STREAMS / STREAMS_BLOCKED count: at most 2^60 (RFC 9000 §19.11, §19.14). */
  private streamCount(): number {
    const v = u62(this.r, "maximum streams");
    if (typeof v === "bigint" && v > TWO_POW_60) throw this.r.fail(`maximum streams ${v} exceeds 2^60`);
    return clamp(v);
  }

  /** ACK / ACK_ECN body (RFC 9000 §19.3). */
  private ack(withEcn: boolean): AckFrame {
    const r = this.r;
    const largest = u62(r, "largest acknowledged");
    const ackDelay = clamped(r, "ACK delay");
    const count = r.varint("ACK range count");
    // Each range takes at least 2 bytes (Gap, ACK Range Length) after a >= 1-byte First ACK
    // Range: reject an impossible count before looping over it.
    if (count > 0 && count > (r.remaining - 1) / 2) {
      throw r.fail(`truncated ACK: ${count} range(s) cannot fit in ${r.remaining} byte(s)`);
    }
    const first = u62(r, "first ACK range");
    const ranges: Array<[number, number]> = [];
    if (typeof largest === "number") {
      // Fast path: every packet number is a safe integer; a bigint gap or length can only
      // push the arithmetic below zero.
      let smallest = largest - clamp(first);
      if (typeof first === "bigint" || smallest < 0) throw this.belowZero();
      ranges.push([smallest, largest]);
      for (let i = 0; i < count; i++) {
        const gap = u62(r, "ACK gap");
        const len = u62(r, "ACK range length");
        if (typeof gap === "bigint" || typeof len === "bigint") throw this.belowZero();
        // RFC 9000 §19.3.1: largest = previous smallest - gap - 2; smallest = largest - length.
        const hi = smallest - gap - 2;
        smallest = hi - len;
        if (smallest < 0) throw this.belowZero();
        ranges.push([smallest, hi]);
      }
    } else {
      // Packet numbers beyond 2^53-1: exact arithmetic, then clamp (module doc).
      let smallest = largest - BigInt(first);
      if (smallest < 0n) throw this.belowZero();
      ranges.push([clampBig(smallest), MAX_SAFE]);
      for (let i = 0; i < count; i++) {
        const hi = smallest - BigInt(u62(r, "ACK gap")) - 2n;
        smallest = hi - BigInt(u62(r, "ACK range length"));
        if (smallest < 0n) throw this.belowZero();
        ranges.push([clampBig(smallest), clampBig(hi)]);
      }
    }
    const frame: AckFrame = { type: "ack", largest: clamp(largest), ackDelay, ranges };
    if (withEcn) {
      frame.ecn = {
        ect0: clamped(r, "ECT0 count"),
        ect1: clamped(r, "ECT1 count"),
        ce: clamped(r, "ECN-CE count"),
      };
    }
    return frame;
  }

  /** RFC 9000 §19.3.1: a computed packet number below zero is FRAME_ENCODING_ERROR. */
  private belowZero(): Error {
    return this.r.fail("ACK range goes below packet number 0");
  }
}

function clampBig(v: bigint): number {
  return v > BigInt(MAX_SAFE) ? MAX_SAFE : Number(v);
}

/**
 * Decodes every frame of a packet payload (RFC 9000 §12.4). Throws `TransportError`
 * (FRAME_ENCODING_ERROR or PROTOCOL_VIOLATION) with the offending frame's type. Byte fields of
 * the result are views into `payload`.
 */
export function decodeFrames(payload: Uint8Array): Frame[] {
  const it = new FrameIterator(payload);
  const out: Frame[] = [];
  for (let f = it.nextFrame(); f; f = it.nextFrame()) out.push(f);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/** Options for {@link encodeFrame} and {@link frameSize}. */
export interface EncodeOptions {
  /**
   * The frame is the last one in the packet: STREAM and DATAGRAM frames omit their Length
   * field (STREAM without the LEN bit, DATAGRAM as type 0x30) and run to the end of the packet.
   * Ignored by other frames.
   */
  lastInPacket?: boolean;
}

const ZEROS = new Uint8Array(256);
const utf8Encoder = new TextEncoder();

function checkLength(what: string, b: Uint8Array, min: number, max: number): void {
  if (b.length < min || b.length > max) {
    throw new RangeError(
      min === max
        ? `${what} must be ${min} bytes, not ${b.length}`
        : `${what} length ${b.length} not in ${min}..${max}`,
    );
  }
}

/**
 * Writes one frame (RFC 9000 §19, RFC 9221 §4) with minimal varints. Throws `RangeError` on a
 * frame that cannot be encoded (a negative or unsafe integer, a connection ID outside 1..20
 * bytes, a reset token that is not 16 bytes, path data that is not 8 bytes, an empty NEW_TOKEN,
 * ACK ranges that are not descending and disjoint).
 */
export function encodeFrame(w: Writer, f: Frame, opts?: EncodeOptions): void {
  switch (f.type) {
    case "padding": {
      let n = f.length;
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`PADDING length ${n} must be >= 1`);
      while (n > 0) {
        const k = Math.min(n, ZEROS.length);
        w.bytes(k === ZEROS.length ? ZEROS : ZEROS.subarray(0, k));
        n -= k;
      }
      return;
    }
    case "ping":
      w.u8(FrameType.PING);
      return;
    case "ack": {
      w.u8(f.ecn ? FrameType.ACK_ECN : FrameType.ACK);
      const ranges = f.ranges;
      if (ranges.length === 0 || ranges[0][1] !== f.largest) {
        throw new RangeError("ACK ranges must be non-empty and start at the largest acknowledged");
      }
      w.varint(f.largest)
        .varint(f.ackDelay)
        .varint(ranges.length - 1);
      let prevSmallest = ranges[0][0];
      w.varint(f.largest - prevSmallest);
      for (let i = 1; i < ranges.length; i++) {
        const [lo, hi] = ranges[i];
        // RFC 9000 §19.3.1: Gap = previous smallest - this largest - 2 (ranges never touch).
        const gap = prevSmallest - hi - 2;
        if (gap < 0 || lo > hi)
          throw new RangeError(`ACK range [${lo}, ${hi}] is not below ${prevSmallest - 1}`);
        w.varint(gap).varint(hi - lo);
        prevSmallest = lo;
      }
      if (f.ecn) w.varint(f.ecn.ect0).varint(f.ecn.ect1).varint(f.ecn.ce);
      return;
    }
    case "reset_stream":
      w.u8(FrameType.RESET_STREAM).varint(f.streamId).varint(f.errorCode).varint(f.finalSize);
      return;
    case "stop_sending":
      w.u8(FrameType.STOP_SENDING).varint(f.streamId).varint(f.errorCode);
      return;
    case "crypto":
      w.u8(FrameType.CRYPTO).varint(f.offset).varint(f.data.length).bytes(f.data);
      return;
    case "new_token":
      if (f.token.length === 0) throw new RangeError("NEW_TOKEN token must not be empty");
      w.u8(FrameType.NEW_TOKEN).varint(f.token.length).bytes(f.token);
      return;
    case "stream": {
      const last = opts?.lastInPacket === true;
      w.u8(frameTypeCode(f, opts)).varint(f.streamId);
      if (f.offset > 0) w.varint(f.offset);
      if (!last) w.varint(f.data.length);
      w.bytes(f.data);
      return;
    }
    case "max_data":
      w.u8(FrameType.MAX_DATA).varint(f.limit);
      return;
    case "max_stream_data":
      w.u8(FrameType.MAX_STREAM_DATA).varint(f.streamId).varint(f.limit);
      return;
    case "max_streams":
      w.u8(f.bidi ? FrameType.MAX_STREAMS_BIDI : FrameType.MAX_STREAMS_UNI).varint(f.limit);
      return;
    case "data_blocked":
      w.u8(FrameType.DATA_BLOCKED).varint(f.limit);
      return;
    case "stream_data_blocked":
      w.u8(FrameType.STREAM_DATA_BLOCKED).varint(f.streamId).varint(f.limit);
      return;
    case "streams_blocked":
      w.u8(f.bidi ? FrameType.STREAMS_BLOCKED_BIDI : FrameType.STREAMS_BLOCKED_UNI).varint(f.limit);
      return;
    case "new_connection_id":
      checkLength("NEW_CONNECTION_ID connection ID", f.connectionId, 1, 20);
      checkLength("stateless reset token", f.statelessResetToken, 16, 16);
      if (f.retirePriorTo > f.sequence) throw new RangeError("retirePriorTo must not exceed sequence");
      w.u8(FrameType.NEW_CONNECTION_ID).varint(f.sequence).varint(f.retirePriorTo);
      w.u8(f.connectionId.length).bytes(f.connectionId).bytes(f.statelessResetToken);
      return;
    case "retire_connection_id":
      w.u8(FrameType.RETIRE_CONNECTION_ID).varint(f.sequence);
      return;
    case "path_challenge":
    case "path_response":
      checkLength("path data", f.data, 8, 8);
      w.u8(f.type === "path_challenge" ? FrameType.PATH_CHALLENGE : FrameType.PATH_RESPONSE).bytes(f.data);
      return;
    case "connection_close": {
      const reason = utf8Encoder.encode(f.reason);
      if (f.application) w.u8(FrameType.CONNECTION_CLOSE_APP).varint(f.errorCode);
      else w.u8(FrameType.CONNECTION_CLOSE).varint(f.errorCode).varint(f.frameType);
      w.varint(reason.length).bytes(reason);
      return;
    }
    case "handshake_done":
      w.u8(FrameType.HANDSHAKE_DONE);
      return;
    case "datagram":
      if (opts?.lastInPacket) w.u8(FrameType.DATAGRAM);
      else w.u8(FrameType.DATAGRAM_LEN).varint(f.data.length);
      w.bytes(f.data);
      return;
  }
}

/** Bytes the UTF-8 encoding of `s` takes, without encoding it. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4; // a surrogate pair is one 4-byte code point
        i++;
      } else n += 3; // a lone surrogate becomes U+FFFD (3 bytes)
    } else n += 3;
  }
  return n;
}

const vl = varintLength;

/** Bytes `encodeFrame(w, f, opts)` writes. */
export function frameSize(f: Frame, opts?: EncodeOptions): number {
  switch (f.type) {
    case "padding":
      return f.length;
    case "ping":
    case "handshake_done":
      return 1;
    case "ack": {
      const ranges = f.ranges;
      let n = 1 + vl(f.largest) + vl(f.ackDelay) + vl(ranges.length - 1) + vl(f.largest - ranges[0][0]);
      for (let i = 1; i < ranges.length; i++) {
        n += vl(ranges[i - 1][0] - ranges[i][1] - 2) + vl(ranges[i][1] - ranges[i][0]);
      }
      if (f.ecn) n += vl(f.ecn.ect0) + vl(f.ecn.ect1) + vl(f.ecn.ce);
      return n;
    }
    case "reset_stream":
      return 1 + vl(f.streamId) + vl(f.errorCode) + vl(f.finalSize);
    case "stop_sending":
      return 1 + vl(f.streamId) + vl(f.errorCode);
    case "crypto":
      return cryptoFrameOverhead(f.offset, f.data.length) + f.data.length;
    case "new_token":
      return 1 + vl(f.token.length) + f.token.length;
    case "stream":
      return streamFrameOverhead(f.streamId, f.offset, f.data.length, opts?.lastInPacket) + f.data.length;
    case "max_data":
    case "data_blocked":
    case "max_streams":
    case "streams_blocked":
      return 1 + vl(f.limit);
    case "max_stream_data":
    case "stream_data_blocked":
      return 1 + vl(f.streamId) + vl(f.limit);
    case "new_connection_id":
      return 1 + vl(f.sequence) + vl(f.retirePriorTo) + 1 + f.connectionId.length + 16;
    case "retire_connection_id":
      return 1 + vl(f.sequence);
    case "path_challenge":
    case "path_response":
      return 9;
    case "connection_close": {
      const reason = utf8Length(f.reason);
      return 1 + vl(f.errorCode) + (f.application ? 0 : vl(f.frameType)) + vl(reason) + reason;
    }
    case "datagram":
      return 1 + (opts?.lastInPacket ? 0 : vl(f.data.length)) + f.data.length;
  }
}

/**
 * Bytes a STREAM frame adds around `dataLength` bytes of data: type, Stream ID, Offset (omitted
 * when 0) and Length (omitted when `lastInPacket`). RFC 9000 §19.8.
 */
export function streamFrameOverhead(
  streamId: number,
  offset: number,
  dataLength: number,
  lastInPacket = false,
): number {
  return 1 + vl(streamId) + (offset > 0 ? vl(offset) : 0) + (lastInPacket ? 0 : vl(dataLength));
}

/** Bytes a CRYPTO frame adds around `dataLength` bytes of data: type, Offset, Length (§19.6). */
export function cryptoFrameOverhead(offset: number, dataLength: number): number {
  return 1 + vl(offset) + vl(dataLength);
}

/** Largest n with varintLength(n) + n <= avail, or -1 when avail < 1. */
function fitWithLength(avail: number): number {
  let best = -1;
  for (const [len, max] of [
    [1, 63],
    [2, 16383],
    [4, 1073741823],
    [8, MAX_SAFE],
  ] as const) {
    if (avail >= len) best = Math.max(best, Math.min(avail - len, max));
  }
  return best;
}

/**
 * The most STREAM data that fits in `space` bytes with its frame header, i.e. the largest n
 * with `streamFrameOverhead(streamId, offset, n, lastInPacket) + n <= space`; -1 when not even
 * an empty frame (a FIN alone) fits. Lets the packet builder fill a packet exactly.
 */
export function streamDataCapacity(
  streamId: number,
  offset: number,
  space: number,
  lastInPacket = false,
): number {
  const avail = space - 1 - vl(streamId) - (offset > 0 ? vl(offset) : 0);
  if (lastInPacket) return avail >= 0 ? avail : -1;
  return fitWithLength(avail);
}

/**
 * The most CRYPTO data that fits in `space` bytes with its frame header (the largest n with
 * `cryptoFrameOverhead(offset, n) + n <= space`); -1 when not even an empty frame fits.
 */
export function cryptoDataCapacity(offset: number, space: number): number {
  return fitWithLength(space - 1 - vl(offset));
}
