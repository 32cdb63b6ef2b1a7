/**
 * QUIC packet headers: parsing before header protection is removed, building before it is
 * applied, packet number encoding, and splitting a datagram of coalesced packets.
 *
 * RFC 9000 §17 (packet formats), §12.2 (coalescing), Appendix A.2/A.3 (packet numbers);
 * RFC 8999 (version-independent invariants, for Version Negotiation and unknown versions);
 * RFC 9369 §3.2 (v2 long-header type bits).
 *
 * Parsing reads only what header protection leaves in the clear: the first byte's form, fixed
 * and type bits (and the spin bit), the version, the connection IDs, the token and the Length
 * field. The packet number length, reserved bits and key phase are protected; `protection.ts`
 * reads them after removing header protection.
 *
 * Errors: a packet that cannot be parsed throws `PacketDecodeError`. It is deliberately *not* a
 * `TransportError`: an unparseable packet is dropped silently (RFC 9000 §5.2, §12.2) and never
 * closes a connection, so it must not be caught by a handler that turns transport errors into
 * CONNECTION_CLOSE.
 *
 * Buffer ownership: parsed connection IDs, tokens and tags are views (no copy) into the
 * datagram. Copy them to keep them after the datagram buffer is reused. Offsets in parsed
 * headers and layouts are absolute offsets into the buffer that was parsed or written.
 */
import type { CryptoProvider, Rng } from "../crypto/provider.js";
import { MquicttError } from "../errors.js";
import { bytesEqual, Reader } from "../util/bytes.js";
import { retryIntegrityTag } from "./protection.js";
import {
  isSupportedVersion,
  longPacketTypeBits,
  longPacketTypeFromBits,
  VERSION_NEGOTIATION,
} from "./version.js";

/** Largest connection ID allowed in QUIC v1 and v2 long headers (RFC 9000 §17.2). */
export const MAX_CID_LENGTH = 20;
/** Length of the Retry Integrity Tag (RFC 9001 §5.8). */
export const RETRY_INTEGRITY_TAG_LENGTH = 16;
/** Largest value of a Length field written by `writeLongHeader` (a fixed 2-byte varint). */
export const MAX_LENGTH_FIELD = 0x3fff;

/**
 * A packet that cannot be parsed (truncated, a CID longer than 20 bytes in v1/v2, a Length past
 * the end of the datagram, a cleared fixed bit, ...). The receiver drops the packet (or the rest
 * of the datagram) without closing the connection (RFC 9000 §5.2, §12.2). Not a TransportError.
 */
export class PacketDecodeError extends MquicttError {
  constructor(reason: string) {
    super("ERR_QUIC_PACKET_DECODE", reason);
  }
}

const decodeFail = (reason: string): PacketDecodeError => new PacketDecodeError(reason);

export { decodePacketNumber, encodePacketNumberLength } from "./packet-number.js";

// ---------------------------------------------------------------------------------------------
// Parsed headers

/** Fields common to every parsed packet. */
interface PacketHeaderBase {
  /** Offset of the packet's first byte in the parsed buffer. */
  readonly start: number;
  /** Bytes from `start` to the end of this packet (to the end of the datagram if it has no Length). */
  readonly packetLength: number;
  /** The first byte as received (header protection not removed). */
  readonly firstByte: number;
  /** Destination Connection ID (a view into the datagram). */
  readonly dcid: Uint8Array;
}

/**
 * An Initial, 0-RTT or Handshake packet (RFC 9000 §17.2.2-17.2.4) whose packet number and
 * payload are still protected.
 */
export interface LongHeader extends PacketHeaderBase {
  readonly type: "initial" | "0rtt" | "handshake";
  readonly version: number;
  /** Source Connection ID (a view). */
  readonly scid: Uint8Array;
  /** The Initial packet's Token (a view); empty for 0-RTT and Handshake packets. */
  readonly token: Uint8Array;
  /** Value of the Length field: bytes of packet number plus protected payload. */
  readonly length: number;
  /** Offset of the Packet Number field (absolute); the packet ends at `pnOffset + length`. */
  readonly pnOffset: number;
}

/** A 1-RTT packet (RFC 9000 §17.3.1). It extends to the end of the datagram. */
export interface ShortHeader extends PacketHeaderBase {
  readonly type: "1rtt";
  /** The Spin Bit (RFC 9000 §17.4), which header protection leaves in the clear. */
  readonly spin: boolean;
  /** Offset of the Packet Number field (absolute): 1 + the local connection ID length after `start`. */
  readonly pnOffset: number;
}

/**
 * A Retry packet (RFC 9000 §17.2.5). It extends to the end of the datagram. The token may be
 * empty here; a client MUST discard a Retry with an empty token (§17.2.5.2), which is the
 * connection's check.
 */
export interface RetryHeader extends PacketHeaderBase {
  readonly type: "retry";
  readonly version: number;
  readonly scid: Uint8Array;
  /** Retry Token (a view). */
  readonly token: Uint8Array;
  /** The 16-byte Retry Integrity Tag (a view), verified with `verifyRetryIntegrity`. */
  readonly integrityTag: Uint8Array;
}

/** A Version Negotiation packet (RFC 9000 §17.2.1, RFC 8999 §6). CIDs may be up to 255 bytes. */
export interface VersionNegotiationHeader extends PacketHeaderBase {
  readonly type: "version-negotiation";
  readonly scid: Uint8Array;
  /** The Supported Version list. */
  readonly versions: number[];
}

/**
 * A long-header packet of a version we do not implement: only the invariant fields are known
 * (RFC 8999 §5.1; CIDs up to 255 bytes), and it is taken to extend to the end of the datagram.
 * A server may answer it with Version Negotiation (RFC 9000 §5.2.2, §6.1).
 */
export interface UnsupportedVersionHeader extends PacketHeaderBase {
  readonly type: "unsupported-version";
  readonly version: number;
  readonly scid: Uint8Array;
}

/** Any parsed packet header. Switch on `type`. */
export type PacketHeader =
  | LongHeader
  | ShortHeader
  | RetryHeader
  | VersionNegotiationHeader
  | UnsupportedVersionHeader;

/** A header whose packet carries a protected packet number and payload (see `protection.ts`). */
export type ProtectedHeader = LongHeader | ShortHeader;

/** Parsing options. */
export interface ParseOptions {
  /**
   * Accept packets whose Fixed Bit (0x40) is 0: only when we advertised grease_quic_bit
   * (RFC 9287 §3). Otherwise such packets are invalid and dropped (RFC 9000 §17.2, §17.3.1).
   */
  readonly allowFixedBitZero?: boolean;
}

/**
 * Parses the header of the packet starting at `start` in `datagram` (before header protection
 * is removed). Short-header packets need `localCidLength`, the length of the connection IDs we
 * issued (RFC 9000 §5.1, §17.3).
 *
 * @throws PacketDecodeError for a truncated or malformed packet (drop it, RFC 9000 §5.2).
 */
export function parsePacketHeader(
  datagram: Uint8Array,
  localCidLength: number,
  start = 0,
  options: ParseOptions = {},
): PacketHeader {
  const r = new Reader(datagram, decodeFail, start, datagram.length);
  const firstByte = r.u8("first byte");
  if ((firstByte & 0x80) === 0) return parseShort(r, firstByte, start, localCidLength, options);

  const version = r.u32("version");
  const supported = isSupportedVersion(version);
  // RFC 8999 §5.1 allows CIDs of up to 255 bytes; v1 and v2 allow 20 (RFC 9000 §17.2).
  const dcid = readCid(r, supported, "destination");
  const scid = readCid(r, supported, "source");

  if (version === VERSION_NEGOTIATION) {
    const n = r.remaining;
    if (n % 4 !== 0) throw decodeFail(`version negotiation list of ${n} bytes is not a multiple of 4`);
    const versions: number[] = [];
    while (!r.done) versions.push(r.u32("supported version"));
    return {
      type: "version-negotiation",
      start,
      packetLength: r.end - start,
      firstByte,
      dcid,
      scid,
      versions,
    };
  }
  if (!supported) {
    return {
      type: "unsupported-version",
      start,
      packetLength: r.end - start,
      firstByte,
      version,
      dcid,
      scid,
    };
  }
  if ((firstByte & 0x40) === 0 && !options.allowFixedBitZero) {
    throw decodeFail("long header with the fixed bit cleared");
  }
  const type = longPacketTypeFromBits(version, firstByte >> 4);
  if (type === "retry") {
    const tokenLength = r.remaining - RETRY_INTEGRITY_TAG_LENGTH;
    if (tokenLength < 0) throw decodeFail(`retry packet too short for its integrity tag`);
    const token = r.bytes(tokenLength, "retry token");
    const integrityTag = r.bytes(RETRY_INTEGRITY_TAG_LENGTH, "retry integrity tag");
    return {
      type,
      start,
      packetLength: r.end - start,
      firstByte,
      version,
      dcid,
      scid,
      token,
      integrityTag,
    };
  }
  let token: Uint8Array = EMPTY;
  if (type === "initial") token = r.bytes(r.varint("token length"), "token");
  const length = r.varint("length");
  const pnOffset = r.pos;
  r.need(length, "packet (Length field past the end of the datagram)");
  return {
    type,
    start,
    packetLength: pnOffset + length - start,
    firstByte,
    version,
    dcid,
    scid,
    token,
    length,
    pnOffset,
  };
}

const EMPTY = new Uint8Array(0);

function readCid(r: Reader, limited: boolean, which: string): Uint8Array {
  const n = r.u8(`${which} connection ID length`);
  if (limited && n > MAX_CID_LENGTH) throw decodeFail(`${which} connection ID of ${n} bytes exceeds 20`);
  return r.bytes(n, `${which} connection ID`);
}

function parseShort(
  r: Reader,
  firstByte: number,
  start: number,
  localCidLength: number,
  options: ParseOptions,
): ShortHeader {
  if ((firstByte & 0x40) === 0 && !options.allowFixedBitZero) {
    throw decodeFail("short header with the fixed bit cleared");
  }
  const dcid = r.bytes(localCidLength, "destination connection ID");
  return {
    type: "1rtt",
    start,
    packetLength: r.end - start,
    firstByte,
    dcid,
    spin: (firstByte & 0x20) !== 0,
    pnOffset: r.pos,
  };
}

/** Bytes of a datagram that could not be used: a malformed tail or a packet with another DCID. */
export interface DroppedBytes {
  /** Offset of the dropped bytes in the datagram. */
  readonly offset: number;
  /** Number of bytes dropped. */
  readonly length: number;
  /** Why (for logs and qlog `packet_dropped`). */
  readonly error: PacketDecodeError;
}

/** The packets of one datagram. */
export interface CoalescedPackets {
  /** The packets in datagram order. */
  readonly packets: PacketHeader[];
  /** What was skipped. Empty for a well-formed datagram. */
  readonly dropped: DroppedBytes[];
}

/**
 * Splits a datagram into its coalesced packets (RFC 9000 §12.2) by walking the Length fields.
 * Never throws for malformed input: a packet that cannot be parsed ends the walk (its length is
 * unknown) and is reported in `dropped`, with the packets before it kept. A packet whose
 * Destination Connection ID differs from the first packet's is skipped and reported (§12.2:
 * receivers SHOULD ignore such packets). Packets without a Length field (1-RTT, Retry,
 * Version Negotiation, unknown versions) extend to the end of the datagram.
 */
export function splitCoalesced(
  datagram: Uint8Array,
  localCidLength: number,
  options: ParseOptions = {},
): CoalescedPackets {
  const packets: PacketHeader[] = [];
  const dropped: DroppedBytes[] = [];
  let firstDcid: Uint8Array | undefined;
  let pos = 0;
  while (pos < datagram.length) {
    let header: PacketHeader;
    try {
      header = parsePacketHeader(datagram, localCidLength, pos, options);
    } catch (err) {
      if (!(err instanceof PacketDecodeError)) throw err;
      dropped.push({ offset: pos, length: datagram.length - pos, error: err });
      break;
    }
    if (firstDcid === undefined) firstDcid = header.dcid;
    if (bytesEqual(firstDcid, header.dcid)) packets.push(header);
    else {
      dropped.push({
        offset: pos,
        length: header.packetLength,
        error: new PacketDecodeError("coalesced packet with a different destination connection ID"),
      });
    }
    pos += header.packetLength;
  }
  return { packets, dropped };
}

// ---------------------------------------------------------------------------------------------
// Building

/** What to write in an Initial, 0-RTT or Handshake header. */
export interface LongHeaderSpec {
  readonly type: "initial" | "0rtt" | "handshake";
  readonly version: number;
  readonly dcid: Uint8Array;
  readonly scid: Uint8Array;
  /** Initial packets only (RFC 9000 §17.2.2): the Retry or NEW_TOKEN token; empty by default. */
  readonly token?: Uint8Array;
  /** The full packet number. */
  readonly packetNumber: number;
  /** Bytes of packet number to send, usually `encodePacketNumberLength(pn, largestAcked)`. */
  readonly pnLength: 1 | 2 | 3 | 4;
}

/** What to write in a 1-RTT header (RFC 9000 §17.3.1). */
export interface ShortHeaderSpec {
  readonly dcid: Uint8Array;
  readonly packetNumber: number;
  readonly pnLength: 1 | 2 | 3 | 4;
  /** Key Phase bit (RFC 9001 §6). */
  readonly keyPhase: 0 | 1;
  /** Spin Bit (RFC 9000 §17.4); false by default. */
  readonly spin?: boolean;
}

/**
 * Where a written header's fields are, for back-filling the Length field and for packet
 * protection. All offsets are absolute offsets into the output buffer.
 */
export interface PacketLayout {
  /** Offset of the first byte. */
  readonly start: number;
  /** Offset of the 2-byte Length field of a long header; -1 for a short header. */
  readonly lengthOffset: number;
  /** Offset of the Packet Number field. */
  readonly pnOffset: number;
  /** Bytes of packet number written. */
  readonly pnLength: 1 | 2 | 3 | 4;
  /** The full packet number (for the AEAD nonce). */
  readonly packetNumber: number;
  /** Offset where the payload begins (`pnOffset + pnLength`). */
  readonly payloadOffset: number;
}

function checkCid(cid: Uint8Array, which: string): void {
  if (cid.length > MAX_CID_LENGTH)
    throw new RangeError(`${which} connection ID of ${cid.length} bytes exceeds 20`);
}

function checkPn(pn: number, pnLength: number): void {
  if (!Number.isSafeInteger(pn) || pn < 0) throw new RangeError(`invalid packet number ${pn}`);
  if (pnLength < 1 || pnLength > 4 || !Number.isInteger(pnLength))
    throw new RangeError(`invalid packet number length ${pnLength}`);
}

function varintSize(v: number): 1 | 2 | 4 | 8 {
  return v < 0x40 ? 1 : v < 0x4000 ? 2 : v < 0x40000000 ? 4 : 8;
}

/** The two-bit length prefix of a varint of 1, 2, 4 or 8 bytes, in its first byte (RFC 9000 §16). */
const VARINT_PREFIX: Readonly<Record<1 | 2 | 4 | 8, number>> = { 1: 0x00, 2: 0x40, 4: 0x80, 8: 0xc0 };

/** Bytes `writeLongHeader` writes for `spec` (up to and including the packet number). */
export function longHeaderLength(spec: LongHeaderSpec): number {
  const tokenLength = spec.type === "initial" ? (spec.token?.length ?? 0) : 0;
  const tokenField = spec.type === "initial" ? varintSize(tokenLength) + tokenLength : 0;
  return 1 + 4 + 1 + spec.dcid.length + 1 + spec.scid.length + tokenField + 2 + spec.pnLength;
}

/** Bytes `writeShortHeader` writes for `spec` (up to and including the packet number). */
export function shortHeaderLength(spec: ShortHeaderSpec): number {
  return 1 + spec.dcid.length + spec.pnLength;
}

function writeUint(out: Uint8Array, at: number, value: number, bytes: number): void {
  for (let i = bytes - 1; i >= 0; i--) {
    out[at + i] = value % 256;
    value = Math.floor(value / 256);
  }
}

function writeTruncatedPn(out: Uint8Array, at: number, pn: number, pnLength: number): void {
  writeUint(out, at, pn % 2 ** (8 * pnLength), pnLength);
}

/**
 * Writes an unprotected Initial, 0-RTT or Handshake header at `out[at]` (RFC 9000 §17.2):
 * reserved bits 0, the Length field as a 2-byte varint placeholder to be back-filled by
 * `setLengthField` (or by `protect`, which does it), then the truncated packet number.
 *
 * @throws RangeError if `out` is too small, a CID is longer than 20 bytes, or a token is given
 *   for a non-Initial packet (builder misuse, not a peer's fault).
 */
export function writeLongHeader(out: Uint8Array, at: number, spec: LongHeaderSpec): PacketLayout {
  checkCid(spec.dcid, "destination");
  checkCid(spec.scid, "source");
  checkPn(spec.packetNumber, spec.pnLength);
  const token = spec.token ?? EMPTY;
  if (spec.type !== "initial" && token.length > 0) throw new RangeError(`a ${spec.type} packet has no token`);
  const size = longHeaderLength(spec);
  if (at < 0 || at + size > out.length) throw new RangeError(`no room for a ${size}-byte long header`);

  let p = at;
  out[p++] = 0xc0 | (longPacketTypeBits(spec.version, spec.type) << 4) | (spec.pnLength - 1);
  writeUint(out, p, spec.version >>> 0, 4);
  p += 4;
  out[p++] = spec.dcid.length;
  out.set(spec.dcid, p);
  p += spec.dcid.length;
  out[p++] = spec.scid.length;
  out.set(spec.scid, p);
  p += spec.scid.length;
  if (spec.type === "initial") {
    const n = varintSize(token.length);
    writeUint(out, p, token.length, n);
    out[p] |= VARINT_PREFIX[n];
    p += n;
    out.set(token, p);
    p += token.length;
  }
  const lengthOffset = p;
  out[p++] = 0x40; // 2-byte varint, value back-filled
  out[p++] = 0x00;
  const pnOffset = p;
  writeTruncatedPn(out, pnOffset, spec.packetNumber, spec.pnLength);
  return {
    start: at,
    lengthOffset,
    pnOffset,
    pnLength: spec.pnLength,
    packetNumber: spec.packetNumber,
    payloadOffset: pnOffset + spec.pnLength,
  };
}

/**
 * Writes an unprotected 1-RTT header at `out[at]` (RFC 9000 §17.3.1): reserved bits 0.
 * @throws RangeError if `out` is too small or the CID is longer than 20 bytes.
 */
export function writeShortHeader(out: Uint8Array, at: number, spec: ShortHeaderSpec): PacketLayout {
  checkCid(spec.dcid, "destination");
  checkPn(spec.packetNumber, spec.pnLength);
  const size = shortHeaderLength(spec);
  if (at < 0 || at + size > out.length) throw new RangeError(`no room for a ${size}-byte short header`);
  out[at] = 0x40 | (spec.spin ? 0x20 : 0) | (spec.keyPhase << 2) | (spec.pnLength - 1);
  out.set(spec.dcid, at + 1);
  const pnOffset = at + 1 + spec.dcid.length;
  writeTruncatedPn(out, pnOffset, spec.packetNumber, spec.pnLength);
  return {
    start: at,
    lengthOffset: -1,
    pnOffset,
    pnLength: spec.pnLength,
    packetNumber: spec.packetNumber,
    payloadOffset: pnOffset + spec.pnLength,
  };
}

/**
 * Back-fills a long header's Length field for a packet whose plaintext payload ends at
 * `payloadEnd`: Length = packet number + payload + the AEAD tag (`tagLength`, 16 for every QUIC
 * AEAD). A no-op for short headers.
 * @throws RangeError if the value exceeds the 2-byte varint (16383).
 */
export function setLengthField(
  out: Uint8Array,
  layout: PacketLayout,
  payloadEnd: number,
  tagLength = 16,
): void {
  if (layout.lengthOffset < 0) return;
  const length = payloadEnd + tagLength - layout.pnOffset;
  if (length < 0 || length > MAX_LENGTH_FIELD)
    throw new RangeError(`Length ${length} does not fit in 2 bytes`);
  out[layout.lengthOffset] = 0x40 | (length >>> 8);
  out[layout.lengthOffset + 1] = length & 0xff;
}

/**
 * Builds a Version Negotiation packet (RFC 9000 §17.2.1). The caller echoes the client's
 * Source Connection ID as `dcid` and its Destination Connection ID as `scid`. The Unused bits
 * are random when `rng` is given, with 0x40 always set (§17.2.1: SHOULD, to look like the Fixed
 * Bit). CIDs may be up to 255 bytes (RFC 8999 §6).
 */
export function buildVersionNegotiation(
  dcid: Uint8Array,
  scid: Uint8Array,
  versions: readonly number[],
  rng?: Rng,
): Uint8Array {
  if (dcid.length > 255 || scid.length > 255) throw new RangeError("connection ID longer than 255 bytes");
  const out = new Uint8Array(1 + 4 + 1 + dcid.length + 1 + scid.length + 4 * versions.length);
  const unused = rng ? rng.fill(new Uint8Array(1))[0] : 0;
  out[0] = 0x80 | 0x40 | (unused & 0x7f);
  // bytes 1..4 stay 0: the Version Negotiation version
  let p = 5;
  out[p++] = dcid.length;
  out.set(dcid, p);
  p += dcid.length;
  out[p++] = scid.length;
  out.set(scid, p);
  p += scid.length;
  for (const v of versions) {
    writeUint(out, p, v >>> 0, 4);
    p += 4;
  }
  return out;
}

/** What to put in a Retry packet (RFC 9000 §17.2.5). */
export interface RetrySpec {
  readonly version: number;
  /** The client's Source Connection ID. */
  readonly dcid: Uint8Array;
  /** The server's new connection ID, which the client will use as DCID. */
  readonly scid: Uint8Array;
  /** The Retry Token (non-empty, §17.2.5.1). */
  readonly token: Uint8Array;
  /** The Destination Connection ID of the client's Initial: covered by the tag, not sent. */
  readonly originalDcid: Uint8Array;
  /** The 4 Unused bits of the first byte; 0 by default (the RFC 9001 A.4 vector uses 0xf). */
  readonly unusedBits?: number;
}

/**
 * Builds a Retry packet with its Retry Integrity Tag (RFC 9000 §17.2.5; RFC 9001 §5.8;
 * RFC 9369 §3.3.3 for v2). Returns a new buffer.
 */
export function buildRetry(provider: CryptoProvider, spec: RetrySpec): Uint8Array {
  checkCid(spec.dcid, "destination");
  checkCid(spec.scid, "source");
  checkCid(spec.originalDcid, "original destination");
  if (spec.token.length === 0) throw new RangeError("a Retry token must not be empty");
  const headerLength = 1 + 4 + 1 + spec.dcid.length + 1 + spec.scid.length + spec.token.length;
  const out = new Uint8Array(headerLength + RETRY_INTEGRITY_TAG_LENGTH);
  let p = 0;
  out[p++] = 0xc0 | (longPacketTypeBits(spec.version, "retry") << 4) | ((spec.unusedBits ?? 0) & 0x0f);
  writeUint(out, p, spec.version >>> 0, 4);
  p += 4;
  out[p++] = spec.dcid.length;
  out.set(spec.dcid, p);
  p += spec.dcid.length;
  out[p++] = spec.scid.length;
  out.set(spec.scid, p);
  p += spec.scid.length;
  out.set(spec.token, p);
  p += spec.token.length;
  out.set(retryIntegrityTag(provider, spec.version, spec.originalDcid, out.subarray(0, p)), p);
  return out;
}
