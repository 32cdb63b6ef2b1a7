/**
 * The crypto provider interface: every primitive the TLS 1.3 handshake and QUIC packet
 * protection need, behind one small surface. Two implementations pass the same vectors:
 * `noble` (pure TypeScript, the reference) and `node` (node:crypto / OpenSSL, the fast path).
 * `auto` picks the faster per primitive by measurement (see ./select.ts).
 *
 * All inputs and outputs are `Uint8Array`. Randomness is never drawn here implicitly: anything
 * that needs it takes an `Rng`, so tests are deterministic.
 */

/** AEAD algorithms used by TLS 1.3 cipher suites and QUIC packet protection (RFC 9001 §5.3). */
export type AeadAlgorithm = "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";

/** Hash functions of the TLS 1.3 cipher suites. */
export type HashAlgorithm = "sha256" | "sha384";

/** Key-exchange groups (RFC 8446 §4.2.7). */
export type NamedGroup = "x25519" | "secp256r1";

/** Signature schemes (RFC 8446 §4.2.3). `rsa_pss_rsae_sha256` may be verify-only in a provider. */
export type SignatureScheme =
  | "ecdsa_secp256r1_sha256"
  | "ed25519"
  | "rsa_pss_rsae_sha256"
  | "rsa_pkcs1_sha256";

/** A source of randomness. Production uses the system CSPRNG; tests a seeded generator. */
export interface Rng {
  /** Fills `out` with random bytes and returns it. */
  fill(out: Uint8Array): Uint8Array;
}

/** An AEAD instance bound to one key (RFC 5116). Tags are always 16 bytes. */
export interface Aead {
  readonly algorithm: AeadAlgorithm;
  /** Encrypts `plaintext`; returns ciphertext || 16-byte tag. */
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Decrypts `ciphertext || tag`; returns the plaintext, or `null` when authentication fails. */
  open(nonce: Uint8Array, aad: Uint8Array, ciphertextAndTag: Uint8Array): Uint8Array | null;
  /**
   * Like `seal`, but writes ciphertext || tag into `out` at `offset` and returns the bytes
   * written (`plaintext.length + 16`). `plaintext` may be the very bytes at `out[offset]`
   * (sealing a packet in place); `aad` must not overlap the output. Saves the per-packet
   * allocation and copy of the sealed array. Optional: callers fall back to `seal`.
   * @throws RangeError when `out` has no room.
   */
  sealInto?(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): number;
}

/** Header protection for one key (RFC 9001 §5.4): the 5-byte mask computed from a 16-byte sample. */
export interface HeaderProtection {
  readonly algorithm: AeadAlgorithm;
  /** Returns 5 mask bytes for `sample` (exactly 16 bytes). */
  mask(sample: Uint8Array): Uint8Array;
}

/** An ephemeral key pair for (EC)DHE (RFC 8446 §4.2.8, §7.4). */
export interface KeyShare {
  readonly group: NamedGroup;
  /** Our public value as sent in key_share: 32 bytes for x25519, 65 (uncompressed point) for secp256r1. */
  readonly publicKey: Uint8Array;
  /**
   * The shared secret with the peer's public value (32 bytes for both groups). Throws
   * `InvalidKeyShareError` for an invalid point or an all-zero x25519 result (RFC 8446 §7.4.2).
   */
  sharedSecret(peerPublicKey: Uint8Array): Uint8Array;
}

/** A public key in a provider-independent form, as taken from a certificate's SubjectPublicKeyInfo. */
export type PublicKey =
  | { readonly kind: "ec-p256" /** uncompressed SEC1 point, 65 bytes */; readonly point: Uint8Array }
  | { readonly kind: "ed25519" /** 32 bytes */; readonly key: Uint8Array }
  | {
      readonly kind: "rsa";
      /** modulus, big-endian, no leading zero */ readonly n: Uint8Array;
      /** public exponent, big-endian */ readonly e: Uint8Array;
    };

/** A private key in a provider-independent form. */
export type PrivateKey =
  | {
      readonly kind: "ec-p256";
      /** 32-byte scalar */ readonly d: Uint8Array;
      /** uncompressed SEC1 public point, 65 bytes */ readonly point: Uint8Array;
    }
  | { readonly kind: "ed25519" /** 32-byte seed */; readonly seed: Uint8Array; readonly key: Uint8Array }
  | {
      readonly kind: "rsa";
      readonly n: Uint8Array;
      readonly e: Uint8Array;
      readonly d: Uint8Array;
      readonly p: Uint8Array;
      readonly q: Uint8Array;
      readonly dp: Uint8Array;
      readonly dq: Uint8Array;
      readonly qi: Uint8Array;
    };

/** Thrown by `KeyShare.sharedSecret` for a peer public value that is not a valid key. */
export class InvalidKeyShareError extends Error {
  override name = "InvalidKeyShareError";
}

/** Thrown by a provider asked for something it does not implement (e.g. RSA signing in noble). */
export class UnsupportedAlgorithmError extends Error {
  override name = "UnsupportedAlgorithmError";
}

/**
 * Everything TLS 1.3 and QUIC need from cryptography. Implementations: `nobleProvider`,
 * `nodeProvider`, and the per-primitive `autoProvider()`.
 */
export interface CryptoProvider {
  /** "noble", "node", or "auto(...)" naming the choice per primitive. */
  readonly name: string;

  /** Digest of `data`. */
  hash(alg: HashAlgorithm, data: Uint8Array): Uint8Array;
  /** An incremental hash (for the TLS transcript). `digest()` does not end the hash: it may be called again after more updates. */
  createHash(alg: HashAlgorithm): IncrementalHash;
  /** HMAC (RFC 2104). */
  hmac(alg: HashAlgorithm, key: Uint8Array, data: Uint8Array): Uint8Array;
  /** HKDF-Extract (RFC 5869 §2.2). */
  hkdfExtract(alg: HashAlgorithm, salt: Uint8Array, ikm: Uint8Array): Uint8Array;
  /** HKDF-Expand (RFC 5869 §2.3). */
  hkdfExpand(alg: HashAlgorithm, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array;

  /** An AEAD bound to `key` (16 bytes for AES-128-GCM, 32 for AES-256-GCM and ChaCha20-Poly1305). */
  aead(alg: AeadAlgorithm, key: Uint8Array): Aead;
  /** Header protection bound to `hpKey` (AES-ECB for the AES suites, ChaCha20 for ChaCha20-Poly1305). */
  headerProtection(alg: AeadAlgorithm, hpKey: Uint8Array): HeaderProtection;

  /** A fresh ephemeral key pair, its private key drawn from `rng`. */
  generateKeyShare(group: NamedGroup, rng: Rng): KeyShare;
  /** A key share from a given private key (for RFC 8448 vectors and tests). */
  keyShareFromPrivate(group: NamedGroup, privateKey: Uint8Array): KeyShare;

  /** Signs `data` (the signature scheme hashes it itself). ECDSA signatures are DER, as TLS sends them. */
  sign(scheme: SignatureScheme, key: PrivateKey, data: Uint8Array, rng: Rng): Uint8Array;
  /** Verifies a signature over `data`. Returns false for a bad signature; never throws for one. */
  verify(scheme: SignatureScheme, key: PublicKey, data: Uint8Array, signature: Uint8Array): boolean;
}

/** Incremental hash whose running digest can be read at any point (TLS transcript hash). */
export interface IncrementalHash {
  update(data: Uint8Array): void;
  /** Digest of everything so far; the hash stays usable. */
  digest(): Uint8Array;
}

/** Output length of a hash in bytes. */
export function hashLength(alg: HashAlgorithm): 32 | 48 {
  return alg === "sha256" ? 32 : 48;
}

/** Key length of an AEAD in bytes. */
export function aeadKeyLength(alg: AeadAlgorithm): 16 | 32 {
  return alg === "aes-128-gcm" ? 16 : 32;
}

/** Which provider to use: the reference `noble`, Node's OpenSSL `node`, or `auto` (fastest per primitive). */
export type CryptoChoice = "noble" | "node" | "auto";
