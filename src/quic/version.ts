/**
 * QUIC versions and their per-version constants: version 1 (RFC 9000/9001) and version 2
 * (RFC 9369). Version 2 changes only constants — the Initial salt (§3.3.1), the HKDF labels
 * (§3.3.2), the Retry integrity key and nonce (§3.3.3) and the long-header packet type bits
 * (§3.2) — so every codec and key derivation looks them up here instead of hard-coding v1.
 */
import { MquicttError } from "../errors.js";
import { fromHex } from "../util/bytes.js";

/** QUIC version 1, RFC 9000 §15. */
export const QUIC_V1 = 0x00000001;
/** QUIC version 2, RFC 9369 §3.1 (first four bytes of sha256("QUICv2 version number")). */
export const QUIC_V2 = 0x6b3343cf;
/** The Version field value that marks a Version Negotiation packet (RFC 9000 §17.2.1). */
export const VERSION_NEGOTIATION = 0x00000000;

/** The versions this stack speaks, in order of preference for Version Negotiation packets. */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([QUIC_V1, QUIC_V2]);

/** Long-header packet types that carry a Type field (RFC 9000 §17.2). */
export type LongPacketType = "initial" | "0rtt" | "handshake" | "retry";

/** HKDF-Expand-Label labels for packet protection (RFC 9001 §5.1, §5.4, §6.1; RFC 9369 §3.3.2). */
export interface QuicLabels {
  /** Packet protection key: "quic key" / "quicv2 key". */
  readonly key: string;
  /** Packet protection IV: "quic iv" / "quicv2 iv". */
  readonly iv: string;
  /** Header protection key: "quic hp" / "quicv2 hp". */
  readonly hp: string;
  /** Key update: "quic ku" / "quicv2 ku". */
  readonly ku: string;
}

/**
 * Everything that differs between QUIC versions. The byte arrays are shared constants: never
 * mutate them (typed arrays cannot be frozen).
 */
export interface VersionParams {
  /** The 32-bit version number. */
  readonly version: number;
  /** Salt of HKDF-Extract for the Initial secret (RFC 9001 §5.2; RFC 9369 §3.3.1), 20 bytes. */
  readonly initialSalt: Uint8Array;
  /** AES-128-GCM key of the Retry Integrity Tag (RFC 9001 §5.8; RFC 9369 §3.3.3), 16 bytes. */
  readonly retryKey: Uint8Array;
  /** AES-128-GCM nonce of the Retry Integrity Tag, 12 bytes. */
  readonly retryNonce: Uint8Array;
  /** HKDF labels. */
  readonly labels: QuicLabels;
  /** The two Long Packet Type bits (0..3) of each long-header type (RFC 9000 §17.2; RFC 9369 §3.2). */
  readonly typeBits: Readonly<Record<LongPacketType, number>>;
  /** The inverse of `typeBits`: index = the two type bits. */
  readonly typeFromBits: readonly LongPacketType[];
}

const V1_PARAMS: VersionParams = Object.freeze({
  version: QUIC_V1,
  // RFC 9001 §5.2
  initialSalt: fromHex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
  // RFC 9001 §5.8
  retryKey: fromHex("be0c690b9f66575a1d766b54e368c84e"),
  retryNonce: fromHex("461599d35d632bf2239825bb"),
  labels: Object.freeze({ key: "quic key", iv: "quic iv", hp: "quic hp", ku: "quic ku" }),
  // RFC 9000 §17.2, Table 5
  typeBits: Object.freeze({ initial: 0b00, "0rtt": 0b01, handshake: 0b10, retry: 0b11 }),
  typeFromBits: Object.freeze(["initial", "0rtt", "handshake", "retry"] as const),
});

const V2_PARAMS: VersionParams = Object.freeze({
  version: QUIC_V2,
  // RFC 9369 §3.3.1
  initialSalt: fromHex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
  // RFC 9369 §3.3.3
  retryKey: fromHex("8fb4b01b56ac48e260fbcbcead7ccc92"),
  retryNonce: fromHex("d86969bc2d7c6d9990efb04a"),
  labels: Object.freeze({ key: "quicv2 key", iv: "quicv2 iv", hp: "quicv2 hp", ku: "quicv2 ku" }),
  // RFC 9369 §3.2: every type moves up by one (Retry wraps to 0b00)
  typeBits: Object.freeze({ initial: 0b01, "0rtt": 0b10, handshake: 0b11, retry: 0b00 }),
  typeFromBits: Object.freeze(["retry", "initial", "0rtt", "handshake"] as const),
});

/** Thrown when version-specific constants are requested for a version we do not implement. */
export class UnsupportedVersionError extends MquicttError {
  /** The version asked for. */
  readonly version: number;

  constructor(version: number) {
    super("ERR_QUIC_UNSUPPORTED_VERSION", `unsupported QUIC version 0x${(version >>> 0).toString(16)}`);
    this.version = version;
  }
}

/** True for the versions this stack implements (v1 and v2); false for 0 (Version Negotiation). */
export function isSupportedVersion(version: number): boolean {
  return version === QUIC_V1 || version === QUIC_V2;
}

/**
 * True for versions reserved for greasing version negotiation, which follow the pattern
 * 0x?a?a?a?a (RFC 9000 §15): the low four bits of every byte are 0xa.
 */
export function isReservedVersion(version: number): boolean {
  return (version & 0x0f0f0f0f) === 0x0a0a0a0a;
}

/**
 * The constants of `version`.
 * @throws UnsupportedVersionError for any version other than v1 and v2.
 */
export function versionParams(version: number): VersionParams {
  if (version === QUIC_V1) return V1_PARAMS;
  if (version === QUIC_V2) return V2_PARAMS;
  throw new UnsupportedVersionError(version);
}

/** The two Long Packet Type bits of `type` in `version` (RFC 9000 §17.2; RFC 9369 §3.2). */
export function longPacketTypeBits(version: number, type: LongPacketType): number {
  return versionParams(version).typeBits[type];
}

/** The long-header packet type that the two type bits `bits` (0..3) denote in `version`. */
export function longPacketTypeFromBits(version: number, bits: number): LongPacketType {
  return versionParams(version).typeFromBits[bits & 0x03];
}
