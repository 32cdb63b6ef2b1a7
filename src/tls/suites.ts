/**
 * TLS 1.3 code points (RFC 8446 Appendix B.4, B.3.1.3, B.3.1.4) for the cipher suites, groups,
 * signature schemes and versions mquictt speaks, and their mapping to the crypto provider's names.
 */
import type { AeadAlgorithm, HashAlgorithm, NamedGroup, SignatureScheme } from "../crypto/provider.js";

/** ProtocolVersion values (RFC 8446 §4.1.2, §4.2.1). */
export const ProtocolVersion = {
  TLS_1_0: 0x0301,
  TLS_1_2: 0x0303,
  TLS_1_3: 0x0304,
} as const;

/** The names of the TLS 1.3 cipher suites we implement (RFC 8446 §B.4). */
export type CipherSuiteName =
  | "TLS_AES_128_GCM_SHA256"
  | "TLS_AES_256_GCM_SHA384"
  | "TLS_CHACHA20_POLY1305_SHA256";

/**
 * A negotiated cipher suite: its code point, AEAD and hash. QUIC derives its packet protection
 * keys from a traffic secret with this AEAD and hash (RFC 9001 §5.1).
 */
export interface CipherSuite {
  readonly name: CipherSuiteName;
  /** Two-byte code point, e.g. 0x1301. */
  readonly code: number;
  readonly aead: AeadAlgorithm;
  readonly hash: HashAlgorithm;
  /** AEAD key length in bytes. */
  readonly keyLength: 16 | 32;
  /** AEAD nonce (IV) length in bytes: 12 for every TLS 1.3 suite. */
  readonly ivLength: 12;
}

/** The cipher suites of RFC 8446 §B.4 that QUIC may use (TLS_AES_128_CCM_8_SHA256 excluded, RFC 9001 §5.3). */
export const CIPHER_SUITES: Readonly<Record<CipherSuiteName, CipherSuite>> = {
  TLS_AES_128_GCM_SHA256: {
    name: "TLS_AES_128_GCM_SHA256",
    code: 0x1301,
    aead: "aes-128-gcm",
    hash: "sha256",
    keyLength: 16,
    ivLength: 12,
  },
  TLS_AES_256_GCM_SHA384: {
    name: "TLS_AES_256_GCM_SHA384",
    code: 0x1302,
    aead: "aes-256-gcm",
    hash: "sha384",
    keyLength: 32,
    ivLength: 12,
  },
  TLS_CHACHA20_POLY1305_SHA256: {
    name: "TLS_CHACHA20_POLY1305_SHA256",
    code: 0x1303,
    aead: "chacha20-poly1305",
    hash: "sha256",
    keyLength: 32,
    ivLength: 12,
  },
};

/** The cipher suite with this code point, if we implement it. */
export function cipherSuiteByCode(code: number): CipherSuite | undefined {
  for (const s of Object.values(CIPHER_SUITES)) if (s.code === code) return s;
  return undefined;
}

/** NamedGroup code points (RFC 8446 §4.2.7). */
export const NamedGroupCode: Readonly<Record<NamedGroup, number>> = {
  secp256r1: 0x0017,
  x25519: 0x001d,
};

/** The provider's group for a code point, if we implement it. */
export function namedGroupByCode(code: number): NamedGroup | undefined {
  for (const [name, c] of Object.entries(NamedGroupCode)) if (c === code) return name as NamedGroup;
  return undefined;
}

/** SignatureScheme code points (RFC 8446 §4.2.3). */
export const SignatureSchemeCode: Readonly<Record<SignatureScheme, number>> = {
  rsa_pkcs1_sha256: 0x0401,
  ecdsa_secp256r1_sha256: 0x0403,
  rsa_pss_rsae_sha256: 0x0804,
  ed25519: 0x0807,
};

/** The provider's signature scheme for a code point, if we implement it. */
export function signatureSchemeByCode(code: number): SignatureScheme | undefined {
  for (const [name, c] of Object.entries(SignatureSchemeCode)) if (c === code) return name as SignatureScheme;
  return undefined;
}

/** PskKeyExchangeMode (RFC 8446 §4.2.9). */
export const PskKeyExchangeMode = {
  psk_ke: 0,
  psk_dhe_ke: 1,
} as const;
