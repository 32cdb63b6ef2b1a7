/**
 * QUIC packet protection, RFC 9001 §5: key derivation (Initial secrets, key/iv/hp per secret,
 * key updates), AEAD payload protection, header protection, and the Retry Integrity Tag.
 * Version 2 differs only in constants (RFC 9369 §3.3), taken from `version.ts`.
 *
 * Sending: write the header with `writeLongHeader`/`writeShortHeader` (packet.ts), write the
 * plaintext frames after it, then `protect()` — it pads to the header-protection sample size,
 * back-fills the Length field, seals the payload in place and masks the header.
 *
 * Receiving: parse with `parsePacketHeader`/`splitCoalesced`, then `unprotect()` — or, when the
 * keys depend on the Key Phase bit (1-RTT after a key update, RFC 9001 §6.3), the two steps
 * `removeHeaderProtection()` and `decryptPayload()` with the keys the caller picks in between.
 *
 * Buffer ownership: `protect` and `removeHeaderProtection` (hence `unprotect`) modify the packet
 * bytes in place — the caller owns the buffer and must not share it meanwhile. Returned
 * plaintexts are fresh arrays from the AEAD; the one allocation per packet the `Aead` interface
 * forces. Nonces are built in one scratch buffer shared by every `PacketKeys`, valid until the
 * next `nonceFor` call (JavaScript is single-threaded and the AEAD consumes the nonce before it
 * returns; this only matters if an `Aead` implementation ever became asynchronous).
 */
import {
  type Aead,
  type AeadAlgorithm,
  aeadKeyLength,
  type CryptoProvider,
  type HashAlgorithm,
  type HeaderProtection,
  hashLength,
} from "../crypto/provider.js";
import { EMPTY_BYTES, hkdfExpandLabel } from "../tls/hkdf.js";
import { TransportError, TransportErrorCode } from "./errors.js";
import type { PacketLayout, ProtectedHeader } from "./packet.js";
import { decodePacketNumber } from "./packet-number.js";
import { versionParams } from "./version.js";

/** Bytes of ciphertext sampled for header protection, for every QUIC AEAD (RFC 9001 §5.4.2). */
export const SAMPLE_LENGTH = 16;
/** The sample starts this many bytes after the start of the Packet Number field (RFC 9001 §5.4.2). */
export const SAMPLE_OFFSET = 4;
/** Authentication tag length of every QUIC AEAD (RFC 9001 §5.3). */
export const AEAD_TAG_LENGTH = 16;
/** IV and nonce length of every QUIC AEAD (RFC 9001 §5.1, §5.3). */
export const IV_LENGTH = 12;

/**
 * Fewest plaintext payload bytes a packet with a `pnLength`-byte packet number needs so that the
 * header-protection sample exists: packet number + ciphertext >= 4 + 16 (RFC 9001 §5.4.2).
 * 3 bytes for a 1-byte packet number, 0 for a 4-byte one. `protect` pads with PADDING (0x00).
 */
export function minPayloadLength(pnLength: number): number {
  return Math.max(0, SAMPLE_OFFSET + SAMPLE_LENGTH - AEAD_TAG_LENGTH - pnLength);
}

// ---------------------------------------------------------------------------------------------
// Key derivation

/** Client and server Initial secrets (RFC 9001 §5.2). */
export interface InitialSecrets {
  readonly client: Uint8Array;
  readonly server: Uint8Array;
}

/**
 * The Initial secrets for a connection whose client chose Destination Connection ID
 * `clientDcid` (RFC 9001 §5.2; the v2 salt from RFC 9369 §3.3.1):
 * initial_secret = HKDF-Extract(initial_salt, clientDcid);
 * client/server = HKDF-Expand-Label(initial_secret, "client in"/"server in", "", 32).
 * @throws UnsupportedVersionError for a version other than v1/v2.
 */
export function initialSecrets(
  version: number,
  clientDcid: Uint8Array,
  provider: CryptoProvider,
): InitialSecrets {
  const initial = provider.hkdfExtract("sha256", versionParams(version).initialSalt, clientDcid);
  return {
    client: hkdfExpandLabel(provider, "sha256", initial, "client in", EMPTY_BYTES, 32),
    server: hkdfExpandLabel(provider, "sha256", initial, "server in", EMPTY_BYTES, 32),
  };
}

/** Packet protection key material derived from one secret (RFC 9001 §5.1). */
export interface PacketKeyMaterial {
  /** AEAD key ("quic key"): 16 or 32 bytes. */
  readonly key: Uint8Array;
  /** AEAD IV ("quic iv"): 12 bytes. */
  readonly iv: Uint8Array;
  /** Header protection key ("quic hp"): the AEAD key length. */
  readonly hp: Uint8Array;
}

/**
 * key, iv and hp for `secret` with the version's labels (RFC 9001 §5.1, §5.4; RFC 9369 §3.3.2).
 */
export function derivePacketKeyMaterial(
  provider: CryptoProvider,
  version: number,
  aead: AeadAlgorithm,
  hash: HashAlgorithm,
  secret: Uint8Array,
): PacketKeyMaterial {
  const { labels } = versionParams(version);
  const keyLength = aeadKeyLength(aead);
  return {
    key: hkdfExpandLabel(provider, hash, secret, labels.key, EMPTY_BYTES, keyLength),
    iv: hkdfExpandLabel(provider, hash, secret, labels.iv, EMPTY_BYTES, IV_LENGTH),
    hp: hkdfExpandLabel(provider, hash, secret, labels.hp, EMPTY_BYTES, keyLength),
  };
}

/**
 * The secret of the next key phase: HKDF-Expand-Label(secret, "quic ku" / "quicv2 ku", "",
 * Hash.length) (RFC 9001 §6.1; RFC 9369 §3.3.2). Header protection keys are not updated.
 */
export function nextGenerationSecret(
  provider: CryptoProvider,
  version: number,
  hash: HashAlgorithm,
  secret: Uint8Array,
): Uint8Array {
  return hkdfExpandLabel(
    provider,
    hash,
    secret,
    versionParams(version).labels.ku,
    EMPTY_BYTES,
    hashLength(hash),
  );
}

/** The nonce scratch of every `PacketKeys` (see the file comment). */
const NONCE = new Uint8Array(IV_LENGTH);

/**
 * Ready-to-use packet protection for one direction and one key phase: the provider's `Aead` and
 * `HeaderProtection` instances, created once and reused for every packet.
 */
export class PacketKeys {
  /** The provider the instances came from (used again by `nextGeneration`). */
  readonly provider: CryptoProvider;
  readonly version: number;
  readonly algorithm: AeadAlgorithm;
  readonly hash: HashAlgorithm;
  /**
   * secret || key || iv || hp in one array: these live as long as a connection, and each small
   * array of its own costs about 200 bytes of heap (object, ArrayBuffer, backing store).
   */
  private readonly bytes: Uint8Array;
  private readonly secretLength: number;
  /** The AEAD bound to `material.key`. */
  readonly aead: Aead;
  /** Header protection bound to `material.hp`; shared by every key generation (RFC 9001 §6). */
  readonly hp: HeaderProtection;

  /** Prefer `derivePacketKeys`. `hp` is passed to share it across key updates. */
  constructor(
    provider: CryptoProvider,
    version: number,
    algorithm: AeadAlgorithm,
    hash: HashAlgorithm,
    secret: Uint8Array,
    material: PacketKeyMaterial,
    hp?: HeaderProtection,
  ) {
    this.provider = provider;
    this.version = version;
    this.algorithm = algorithm;
    this.hash = hash;
    const sl = secret.length;
    const kl = material.key.length;
    const bytes = new Uint8Array(sl + kl + IV_LENGTH + material.hp.length);
    bytes.set(secret, 0);
    bytes.set(material.key, sl);
    bytes.set(material.iv, sl + kl);
    bytes.set(material.hp, sl + kl + IV_LENGTH);
    this.bytes = bytes;
    this.secretLength = sl;
    this.aead = provider.aead(algorithm, material.key);
    this.hp = hp ?? provider.headerProtection(algorithm, material.hp);
  }

  /** The traffic secret these keys were derived from (kept for key updates). */
  get secret(): Uint8Array {
    return this.bytes.subarray(0, this.secretLength);
  }

  /** The derived key material. */
  get material(): PacketKeyMaterial {
    const b = this.bytes;
    const kl = aeadKeyLength(this.algorithm);
    const ivAt = this.secretLength + kl;
    return {
      key: b.subarray(this.secretLength, ivAt),
      iv: b.subarray(ivAt, ivAt + IV_LENGTH),
      hp: b.subarray(ivAt + IV_LENGTH),
    };
  }

  /**
   * The AEAD nonce for `packetNumber`: the IV XOR the packet number left-padded to 12 bytes
   * (RFC 9001 §5.3). Returns a scratch buffer shared by all keys, valid until the next call.
   */
  nonceFor(packetNumber: number): Uint8Array {
    const n = NONCE;
    const b = this.bytes;
    const ivAt = this.secretLength + aeadKeyLength(this.algorithm);
    for (let i = 0; i < IV_LENGTH; i++) n[i] = b[ivAt + i];
    const hi = Math.floor(packetNumber / 0x100000000);
    const lo = packetNumber >>> 0;
    n[4] ^= hi >>> 24;
    n[5] ^= (hi >>> 16) & 0xff;
    n[6] ^= (hi >>> 8) & 0xff;
    n[7] ^= hi & 0xff;
    n[8] ^= lo >>> 24;
    n[9] ^= (lo >>> 16) & 0xff;
    n[10] ^= (lo >>> 8) & 0xff;
    n[11] ^= lo & 0xff;
    return n;
  }

  /** Seals `plaintext` for `packetNumber` with associated data `aad` (the header); returns ciphertext || tag. */
  seal(packetNumber: number, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    return this.aead.seal(this.nonceFor(packetNumber), aad, plaintext);
  }

  /**
   * Seals `buf[payloadOffset, payloadEnd)` in place with `buf[start, payloadOffset)` (the
   * header) as associated data, writing ciphertext || tag over the payload: `buf` needs 16
   * bytes of room after `payloadEnd`. With an `Aead` that has `sealInto`, no sealed copy is
   * allocated.
   */
  sealInPlace(
    packetNumber: number,
    buf: Uint8Array,
    start: number,
    payloadOffset: number,
    payloadEnd: number,
  ): void {
    const nonce = this.nonceFor(packetNumber);
    const aad = buf.subarray(start, payloadOffset);
    const plaintext = buf.subarray(payloadOffset, payloadEnd);
    if (this.aead.sealInto) this.aead.sealInto(nonce, aad, plaintext, buf, payloadOffset);
    else buf.set(this.aead.seal(nonce, aad, plaintext), payloadOffset);
  }

  /** Opens `ciphertextAndTag`; `null` when authentication fails. */
  open(packetNumber: number, aad: Uint8Array, ciphertextAndTag: Uint8Array): Uint8Array | null {
    return this.aead.open(this.nonceFor(packetNumber), aad, ciphertextAndTag);
  }

  /**
   * The keys of the next key phase (RFC 9001 §6.1): a new secret from the "ku" label, a new AEAD
   * key and IV from it, and the same header protection key and instance.
   */
  nextGeneration(): PacketKeys {
    const secret = nextGenerationSecret(this.provider, this.version, this.hash, this.secret);
    const next = derivePacketKeyMaterial(this.provider, this.version, this.algorithm, this.hash, secret);
    const material: PacketKeyMaterial = { key: next.key, iv: next.iv, hp: this.material.hp };
    return new PacketKeys(this.provider, this.version, this.algorithm, this.hash, secret, material, this.hp);
  }
}

/**
 * Derives packet protection for `secret` (RFC 9001 §5.1): the key material and the AEAD and
 * header protection instances, ready for `protect`/`unprotect`.
 */
export function derivePacketKeys(
  provider: CryptoProvider,
  version: number,
  aead: AeadAlgorithm,
  hash: HashAlgorithm,
  secret: Uint8Array,
): PacketKeys {
  const material = derivePacketKeyMaterial(provider, version, aead, hash, secret);
  return new PacketKeys(provider, version, aead, hash, secret, material);
}

/** Initial packet keys of both directions (RFC 9001 §5.2): AES-128-GCM with SHA-256. */
export interface InitialKeys {
  readonly client: PacketKeys;
  readonly server: PacketKeys;
}

/** Initial packet protection for a connection whose client chose `clientDcid` (RFC 9001 §5.2). */
export function initialKeys(provider: CryptoProvider, version: number, clientDcid: Uint8Array): InitialKeys {
  const s = initialSecrets(version, clientDcid, provider);
  return {
    client: derivePacketKeys(provider, version, "aes-128-gcm", "sha256", s.client),
    server: derivePacketKeys(provider, version, "aes-128-gcm", "sha256", s.server),
  };
}

// ---------------------------------------------------------------------------------------------
// Protecting

/**
 * Protects a packet in place (RFC 9001 §5.3, §5.4.1). `buf` holds the header written by
 * `writeLongHeader`/`writeShortHeader` (`layout`) followed by the plaintext payload up to
 * `payloadEnd`. In order:
 * 1. pads the payload with PADDING (0x00) up to `minPayloadLength(pnLength)` so that the
 *    header-protection sample exists (§5.4.2);
 * 2. back-fills a long header's Length field;
 * 3. seals the payload (nonce = iv XOR packet number; AAD = header through the packet number)
 *    and writes ciphertext || tag over it;
 * 4. applies header protection: masks the low 4 (long) or 5 (short) bits of the first byte and
 *    the packet number bytes with the mask of the 16-byte sample taken 4 bytes after the start
 *    of the packet number.
 *
 * `buf` must have room for the padding and the 16-byte tag.
 * @returns the offset one past the protected packet.
 * @throws RangeError if `buf` is too small or the Length does not fit its 2 bytes.
 */
export function protect(keys: PacketKeys, buf: Uint8Array, layout: PacketLayout, payloadEnd: number): number {
  const { start, pnOffset, pnLength, payloadOffset } = layout;
  const minEnd = payloadOffset + minPayloadLength(pnLength);
  if (payloadEnd < payloadOffset) throw new RangeError("payload ends before it starts");
  if (payloadEnd < minEnd) {
    if (minEnd > buf.length)
      throw new RangeError("no room to pad the packet for the header protection sample");
    buf.fill(0, payloadEnd, minEnd);
    payloadEnd = minEnd;
  }
  const end = payloadEnd + AEAD_TAG_LENGTH;
  if (end > buf.length) throw new RangeError("no room for the AEAD tag");
  if (layout.lengthOffset >= 0) {
    const length = end - pnOffset;
    if (length > 0x3fff) throw new RangeError(`Length ${length} does not fit in 2 bytes`);
    buf[layout.lengthOffset] = 0x40 | (length >>> 8);
    buf[layout.lengthOffset + 1] = length & 0xff;
  }
  keys.sealInPlace(layout.packetNumber, buf, start, payloadOffset, payloadEnd);

  const sampleAt = pnOffset + SAMPLE_OFFSET;
  const mask = keys.hp.mask(buf.subarray(sampleAt, sampleAt + SAMPLE_LENGTH));
  buf[start] ^= mask[0] & ((buf[start] & 0x80) !== 0 ? 0x0f : 0x1f);
  for (let i = 0; i < pnLength; i++) buf[pnOffset + i] ^= mask[1 + i];
  return end;
}

/**
 * `protect` for a payload built elsewhere (e.g. in a scratch writer): seals `payload` straight
 * into `buf` after the header `layout` describes, so the plaintext is never copied into the
 * datagram first (node:crypto's cipher writes its output into a fresh buffer anyway; copying the
 * plaintext into `buf` beforehand only to have it overwritten is one copy per packet too many).
 * Same result, byte for byte, as writing `payload` at `layout.payloadOffset` and calling
 * `protect(keys, buf, layout, layout.payloadOffset + payload.length)`, which it falls back to
 * for a payload shorter than the header-protection sample needs (it must be padded in `buf`).
 * `payload` must not overlap `buf`'s header bytes.
 * @returns the offset one past the protected packet.
 * @throws RangeError as `protect`.
 */
export function protectPayload(
  keys: PacketKeys,
  buf: Uint8Array,
  layout: PacketLayout,
  payload: Uint8Array,
): number {
  const { start, pnOffset, pnLength, payloadOffset } = layout;
  const payloadEnd = payloadOffset + payload.length;
  if (payload.length < minPayloadLength(pnLength) || !keys.aead.sealInto) {
    if (payloadEnd > buf.length) throw new RangeError("no room for the payload");
    buf.set(payload, payloadOffset);
    return protect(keys, buf, layout, payloadEnd);
  }
  const end = payloadEnd + AEAD_TAG_LENGTH;
  if (end > buf.length) throw new RangeError("no room for the AEAD tag");
  if (layout.lengthOffset >= 0) {
    const length = end - pnOffset;
    if (length > 0x3fff) throw new RangeError(`Length ${length} does not fit in 2 bytes`);
    buf[layout.lengthOffset] = 0x40 | (length >>> 8);
    buf[layout.lengthOffset + 1] = length & 0xff;
  }
  keys.aead.sealInto(
    keys.nonceFor(layout.packetNumber),
    buf.subarray(start, payloadOffset),
    payload,
    buf,
    payloadOffset,
  );
  const sampleAt = pnOffset + SAMPLE_OFFSET;
  const mask = keys.hp.mask(buf.subarray(sampleAt, sampleAt + SAMPLE_LENGTH));
  buf[start] ^= mask[0] & ((buf[start] & 0x80) !== 0 ? 0x0f : 0x1f);
  for (let i = 0; i < pnLength; i++) buf[pnOffset + i] ^= mask[1 + i];
  return end;
}

// ---------------------------------------------------------------------------------------------
// Unprotecting

/** A packet header with protection removed (the payload still encrypted). */
export interface UnmaskedHeader {
  /** The first byte with header protection removed. */
  readonly firstByte: number;
  /** Bytes of packet number on the wire (1..4). */
  readonly pnLength: 1 | 2 | 3 | 4;
  /** The full packet number, decoded against the largest received (RFC 9000 Appendix A.3). */
  readonly packetNumber: number;
  /** The Key Phase bit of a short header (RFC 9001 §6); 0 for long headers. */
  readonly keyPhase: 0 | 1;
  /**
   * The Reserved Bits (0x0c long, 0x18 short) are non-zero. That is a PROTOCOL_VIOLATION, but
   * only once the packet has been authenticated (RFC 9000 §17.2, §17.3.1).
   */
  readonly reservedBitsSet: boolean;
  /** Offset of the encrypted payload (absolute). */
  readonly payloadOffset: number;
  /** Offset one past the packet (absolute). */
  readonly end: number;
}

/**
 * Removes header protection from the packet `header` (parsed from `buf`) in place (RFC 9001
 * §5.4): unmasks the first byte and the packet number bytes, then decodes the packet number
 * against `largestPn`, the largest packet number successfully processed in its space (-1 when
 * none). Returns `undefined` when the packet is too short to contain the sample: the packet MUST
 * be dropped (§5.4.2).
 */
export function removeHeaderProtection(
  hp: HeaderProtection,
  buf: Uint8Array,
  header: ProtectedHeader,
  largestPn: number,
): UnmaskedHeader | undefined {
  const { start, pnOffset } = header;
  const end = start + header.packetLength;
  const sampleAt = pnOffset + SAMPLE_OFFSET;
  if (sampleAt + SAMPLE_LENGTH > end || end > buf.length) return undefined;
  const mask = hp.mask(buf.subarray(sampleAt, sampleAt + SAMPLE_LENGTH));
  const long = (buf[start] & 0x80) !== 0;
  const first = buf[start] ^ (mask[0] & (long ? 0x0f : 0x1f));
  buf[start] = first;
  const pnLength = ((first & 0x03) + 1) as 1 | 2 | 3 | 4;
  let truncated = 0;
  for (let i = 0; i < pnLength; i++) {
    const b = buf[pnOffset + i] ^ mask[1 + i];
    buf[pnOffset + i] = b;
    truncated = truncated * 256 + b;
  }
  return {
    firstByte: first,
    pnLength,
    packetNumber: decodePacketNumber(largestPn, truncated, 8 * pnLength),
    keyPhase: long ? 0 : (((first >> 2) & 1) as 0 | 1),
    reservedBitsSet: (first & (long ? 0x0c : 0x18)) !== 0,
    payloadOffset: pnOffset + pnLength,
    end,
  };
}

/**
 * Decrypts the payload of a packet whose header protection `removeHeaderProtection` removed.
 * Does not modify `buf`, so it may be retried with other keys. Returns the plaintext (a fresh
 * array), or `null` when authentication fails: drop the packet (RFC 9001 §5.5, RFC 9000 §12.2).
 */
export function decryptPayload(
  keys: PacketKeys,
  buf: Uint8Array,
  header: ProtectedHeader,
  unmasked: UnmaskedHeader,
): Uint8Array | null {
  return keys.open(
    unmasked.packetNumber,
    buf.subarray(header.start, unmasked.payloadOffset),
    buf.subarray(unmasked.payloadOffset, unmasked.end),
  );
}

/** Why a packet was dropped without closing the connection. */
export type DropReason =
  /** Too short to contain the header protection sample (RFC 9001 §5.4.2). */
  | "too-short"
  /** The AEAD did not authenticate it (RFC 9001 §5.5; RFC 9000 §12.2). */
  | "decryption-failed";

/** A successfully unprotected packet. */
export interface UnprotectedPacket extends UnmaskedHeader {
  readonly status: "ok";
  /** The decrypted payload (frames): a fresh array. */
  readonly payload: Uint8Array;
}

/** The outcome of `unprotect`. */
export type UnprotectResult =
  | UnprotectedPacket
  /** Drop the packet silently. */
  | { readonly status: "drop"; readonly reason: DropReason }
  /**
   * The packet authenticated but its reserved bits are set: close the connection with
   * `error` (PROTOCOL_VIOLATION, RFC 9000 §17.2, §17.3.1).
   */
  | { readonly status: "violation"; readonly error: TransportError; readonly packetNumber: number };

/**
 * Removes header protection in place, decodes the packet number against `largestPn` (-1 when
 * none), decrypts the payload, and only then checks the reserved bits (RFC 9001 §5, RFC 9000
 * §17.2). Never throws for a bad packet: see `UnprotectResult`. For 1-RTT packets whose keys
 * depend on the Key Phase bit, call `removeHeaderProtection` and `decryptPayload` instead.
 */
export function unprotect(
  keys: PacketKeys,
  buf: Uint8Array,
  header: ProtectedHeader,
  largestPn: number,
): UnprotectResult {
  const unmasked = removeHeaderProtection(keys.hp, buf, header, largestPn);
  if (unmasked === undefined) return { status: "drop", reason: "too-short" };
  const payload = decryptPayload(keys, buf, header, unmasked);
  if (payload === null) return { status: "drop", reason: "decryption-failed" };
  if (unmasked.reservedBitsSet) {
    return {
      status: "violation",
      packetNumber: unmasked.packetNumber,
      error: new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "reserved bits set in packet header"),
    };
  }
  return { status: "ok", ...unmasked, payload };
}

// ---------------------------------------------------------------------------------------------
// Retry integrity (RFC 9001 §5.8, RFC 9369 §3.3.3)

const retryAeads = new WeakMap<CryptoProvider, Map<number, Aead>>();

function retryAead(provider: CryptoProvider, version: number): Aead {
  let perVersion = retryAeads.get(provider);
  if (perVersion === undefined) {
    perVersion = new Map();
    retryAeads.set(provider, perVersion);
  }
  let aead = perVersion.get(version);
  if (aead === undefined) {
    aead = provider.aead("aes-128-gcm", versionParams(version).retryKey);
    perVersion.set(version, aead);
  }
  return aead;
}

/** The Retry Pseudo-Packet: ODCID Length || ODCID || the Retry packet without its tag (§5.8, Figure 8). */
function retryPseudoPacket(originalDcid: Uint8Array, retryWithoutTag: Uint8Array): Uint8Array {
  const pseudo = new Uint8Array(1 + originalDcid.length + retryWithoutTag.length);
  pseudo[0] = originalDcid.length;
  pseudo.set(originalDcid, 1);
  pseudo.set(retryWithoutTag, 1 + originalDcid.length);
  return pseudo;
}

/**
 * The 16-byte Retry Integrity Tag of a Retry packet (`retryWithoutTag`: everything before the
 * tag) sent in response to an Initial whose Destination Connection ID was `originalDcid`:
 * AES-128-GCM with the version's fixed key and nonce over an empty plaintext, with the Retry
 * Pseudo-Packet as associated data (RFC 9001 §5.8; RFC 9369 §3.3.3).
 */
export function retryIntegrityTag(
  provider: CryptoProvider,
  version: number,
  originalDcid: Uint8Array,
  retryWithoutTag: Uint8Array,
): Uint8Array {
  if (originalDcid.length > 255) throw new RangeError("original destination connection ID too long");
  const { retryNonce } = versionParams(version);
  return retryAead(provider, version).seal(
    retryNonce,
    retryPseudoPacket(originalDcid, retryWithoutTag),
    EMPTY_BYTES,
  );
}

/**
 * Verifies the Retry Integrity Tag at the end of `retryPacket` (the whole Retry packet as
 * received) against `originalDcid`, the Destination Connection ID of the client's first
 * Initial (RFC 9001 §5.8). False for an invalid tag or a packet shorter than the tag: the client
 * discards such a Retry (RFC 9000 §17.2.5.2).
 */
export function verifyRetryIntegrity(
  provider: CryptoProvider,
  version: number,
  originalDcid: Uint8Array,
  retryPacket: Uint8Array,
): boolean {
  if (retryPacket.length < AEAD_TAG_LENGTH || originalDcid.length > 255) return false;
  const split = retryPacket.length - AEAD_TAG_LENGTH;
  const { retryNonce } = versionParams(version);
  const opened = retryAead(provider, version).open(
    retryNonce,
    retryPseudoPacket(originalDcid, retryPacket.subarray(0, split)),
    retryPacket.subarray(split),
  );
  return opened !== null;
}
