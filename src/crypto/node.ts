/**
 * The fast crypto provider: node:crypto (OpenSSL). It must agree with `nobleProvider` on every
 * vector; the shared suites in test/crypto run both.
 *
 * Per-packet paths (AEAD seal/open, header protection) are kept to one OpenSSL context per call
 * and no extra copies beyond what node:crypto forces (it has no output-buffer API, so seal copies
 * ciphertext and tag into one array once). Outputs are plain `Uint8Array` views over the Buffers
 * node returns, never `Buffer`s, so a caller's `.slice()` keeps `Uint8Array` copy semantics.
 * Like any Buffer memory they may sit inside a larger pooled `ArrayBuffer`: use `byteOffset` and
 * `byteLength`, never `.buffer` alone.
 *
 * Randomness: key shares draw their private keys from the caller's `Rng` (so tests are
 * deterministic), RSA-PSS salts and ECDSA nonces come from OpenSSL's own CSPRNG, so the `rng`
 * argument of `sign` is unused here and those signatures are not reproducible.
 */
import {
  type CipherGCMTypes,
  constants,
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
  hash as oneShotHash,
} from "node:crypto";
import { checkAeadKey, checkLength, drawP256Scalar, isAllZero } from "./common.js";
import {
  type Aead,
  type AeadAlgorithm,
  type CryptoProvider,
  type HashAlgorithm,
  type HeaderProtection,
  hashLength,
  type IncrementalHash,
  InvalidKeyShareError,
  type KeyShare,
  type PrivateKey,
  type PublicKey,
  type Rng,
  type SignatureScheme,
  UnsupportedAlgorithmError,
} from "./provider.js";

/** A `Uint8Array` view over a Buffer's bytes (no copy). */
function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A Buffer view over a Uint8Array's bytes (no copy). */
function buf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function b64u(b: Uint8Array): string {
  return buf(b).toString("base64url");
}

/** A syntactically valid JWK `x` for importing OKP private keys (see `okpPrivateKey`). */
const OKP_X_PLACEHOLDER = "A".repeat(43);

const EMPTY = new Uint8Array(0);
const ZERO5 = new Uint8Array(5);
const ONE = Uint8Array.of(1);
const TAG_OPTS = { authTagLength: 16 } as const;

// ---------------------------------------------------------------------------------------------
// AEAD and header protection (the per-packet fast path)

/**
 * An AEAD bound to one key. A class rather than closures: a QUIC connection keeps two for its
 * whole life (1-RTT read and write), and closures cost ~250 bytes more each (bench/idle-scale.ts).
 */
class NodeAead implements Aead {
  private readonly key: KeyObject;

  constructor(
    readonly algorithm: AeadAlgorithm,
    key: Uint8Array,
  ) {
    checkAeadKey(algorithm, key);
    this.key = createSecretKey(Uint8Array.from(key));
  }

  private cipher(nonce: Uint8Array) {
    return this.algorithm === "chacha20-poly1305"
      ? createCipheriv("chacha20-poly1305", this.key, nonce, TAG_OPTS)
      : createCipheriv(this.algorithm as CipherGCMTypes, this.key, nonce, TAG_OPTS);
  }

  private decipher(nonce: Uint8Array) {
    return this.algorithm === "chacha20-poly1305"
      ? createDecipheriv("chacha20-poly1305", this.key, nonce, TAG_OPTS)
      : createDecipheriv(this.algorithm as CipherGCMTypes, this.key, nonce, TAG_OPTS);
  }

  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    checkLength(nonce, 12, "AEAD nonce");
    const c = this.cipher(nonce);
    c.setAAD(aad, { plaintextLength: plaintext.length });
    const ct = c.update(plaintext);
    c.final(); // stream ciphers: no trailing output
    // node:crypto cannot write into a caller's buffer, so ciphertext and tag are joined with one
    // copy into a pooled Buffer (allocUnsafe: no zero-fill; every byte is written below).
    const out = Buffer.allocUnsafe(ct.length + 16);
    out.set(ct);
    out.set(c.getAuthTag(), ct.length);
    return u8(out);
  }

  sealInto(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): number {
    checkLength(nonce, 12, "AEAD nonce");
    const n = plaintext.length;
    if (offset < 0 || offset + n + 16 > out.length) throw new RangeError("no room for the sealed output");
    const c = this.cipher(nonce);
    c.setAAD(aad, { plaintextLength: n });
    // update() returns a fresh Buffer, so plaintext may be out's own bytes (sealing in place).
    const ct = c.update(plaintext);
    c.final();
    out.set(ct, offset);
    out.set(c.getAuthTag(), offset + n);
    return n + 16;
  }

  open(nonce: Uint8Array, aad: Uint8Array, ciphertextAndTag: Uint8Array): Uint8Array | null {
    checkLength(nonce, 12, "AEAD nonce");
    const n = ciphertextAndTag.length - 16;
    if (n < 0) return null;
    const d = this.decipher(nonce);
    d.setAuthTag(ciphertextAndTag.subarray(n));
    d.setAAD(aad, { plaintextLength: n });
    const pt = d.update(ciphertextAndTag.subarray(0, n));
    try {
      d.final(); // throws when the tag does not verify
    } catch {
      return null;
    }
    return u8(pt);
  }
}

function nodeAead(alg: AeadAlgorithm, key: Uint8Array): Aead {
  return new NodeAead(alg, key);
}

function nodeHeaderProtection(alg: AeadAlgorithm, hpKey: Uint8Array): HeaderProtection {
  checkAeadKey(alg, hpKey);
  if (alg === "chacha20-poly1305") {
    // RFC 9001 §5.4.4. OpenSSL's "chacha20" IV is counter (4 bytes LE) || nonce (12 bytes):
    // exactly the 16-byte sample. The mask is the keystream over 5 zero bytes.
    const k = createSecretKey(Uint8Array.from(hpKey));
    return {
      algorithm: alg,
      mask(sample) {
        checkLength(sample, 16, "header protection sample");
        return u8(createCipheriv("chacha20", k, sample).update(ZERO5));
      },
    };
  }
  // RFC 9001 §5.4.3: AES-ECB of the sample. ECB holds no state between blocks, so one cipher
  // context with padding off is reused for every packet: each 16-byte update() yields one block.
  const ecb = createCipheriv(alg === "aes-128-gcm" ? "aes-128-ecb" : "aes-256-ecb", hpKey, null);
  ecb.setAutoPadding(false);
  return {
    algorithm: alg,
    mask(sample) {
      checkLength(sample, 16, "header protection sample");
      const block = ecb.update(sample);
      return new Uint8Array(block.buffer, block.byteOffset, 5);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Hashes and HKDF

function nodeIncrementalHash(alg: HashAlgorithm): IncrementalHash {
  const h = createHash(alg);
  return {
    update(data) {
      h.update(data);
    },
    digest() {
      return u8(h.copy().digest());
    },
  };
}

/** Input block size of the hash (RFC 2104 §2: B). */
function blockSize(alg: HashAlgorithm): 64 | 128 {
  return alg === "sha256" ? 64 : 128;
}

/**
 * HMAC (RFC 2104) of `a || b` from two one-shot hashes:
 * H((K ^ opad) || H((K ^ ipad) || a || b)). A handshake computes some 30 HMACs over a few dozen
 * bytes each (HKDF, RFC 5869); createHmac() builds a stream object per call, whose setup and
 * garbage cost more than the hashing. The results are the same bytes (test/crypto vectors).
 */
function hmacParts(alg: HashAlgorithm, key: Uint8Array, a: Uint8Array, b: Uint8Array = EMPTY): Buffer {
  const block = blockSize(alg);
  // RFC 2104 §2: a key longer than B is hashed first; a shorter one is padded with zeros.
  const k = key.length > block ? oneShotHash(alg, key, "buffer") : key;
  const inner = Buffer.allocUnsafe(block + a.length + b.length);
  const outer = Buffer.allocUnsafe(block + hashLength(alg));
  for (let i = 0; i < block; i++) {
    const x = i < k.length ? k[i] : 0;
    inner[i] = x ^ 0x36;
    outer[i] = x ^ 0x5c;
  }
  inner.set(a, block);
  inner.set(b, block + a.length);
  outer.set(oneShotHash(alg, inner, "buffer"), block);
  return oneShotHash(alg, outer, "buffer");
}

function hkdfExpand(alg: HashAlgorithm, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const hl = hashLength(alg);
  if (!Number.isInteger(length) || length < 0 || length > 255 * hl) {
    throw new RangeError(`HKDF-Expand length ${length} out of range (max ${255 * hl})`);
  }
  // RFC 5869 §2.3: T(i) = HMAC(PRK, T(i-1) || info || i).
  if (length <= hl) return u8(hmacParts(alg, prk, info, ONE)).subarray(0, length);
  const out = new Uint8Array(length);
  let prev: Uint8Array = EMPTY;
  const tail = new Uint8Array(info.length + 1);
  tail.set(info);
  for (let i = 1, off = 0; off < length; i++, off += hl) {
    tail[info.length] = i;
    const t = hmacParts(alg, prk, prev, tail);
    out.set(t.subarray(0, Math.min(hl, length - off)), off);
    prev = t;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Key shares

/**
 * Imports a raw 32-byte X25519 or Ed25519 private key. JWK is ~10x faster to import than PKCS#8
 * DER on OpenSSL 3. Node builds an OKP private key from `d` alone (EVP_PKEY_new_raw_private_key)
 * and only checks that `x` is a string, so a placeholder is passed and the real public key is
 * derived by OpenSSL; tests check it against RFC 7748 / RFC 8032 public keys.
 */
function okpPrivateKey(crv: "X25519" | "Ed25519", d: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: "OKP", crv, d: b64u(d), x: OKP_X_PLACEHOLDER }, format: "jwk" });
}

/** The raw public key of an OKP (X25519/Ed25519) key. */
function okpPublicBytes(key: KeyObject): Uint8Array {
  const jwk = createPublicKey(key).export({ format: "jwk" });
  return u8(Buffer.from(jwk.x ?? "", "base64url"));
}

function x25519Share(privateKey: Uint8Array): KeyShare {
  checkLength(privateKey, 32, "x25519 private key");
  const priv = okpPrivateKey("X25519", privateKey);
  const publicKey = okpPublicBytes(priv);
  return {
    group: "x25519",
    publicKey,
    sharedSecret(peer) {
      if (peer.length !== 32)
        throw new InvalidKeyShareError(`x25519 public key must be 32 bytes, got ${peer.length}`);
      let secret: Buffer;
      try {
        const pub = createPublicKey({ key: { kty: "OKP", crv: "X25519", x: b64u(peer) }, format: "jwk" });
        secret = diffieHellman({ privateKey: priv, publicKey: pub });
      } catch (cause) {
        // OpenSSL refuses to derive an all-zero X25519 secret (a low-order peer point).
        throw new InvalidKeyShareError("x25519 public key is a low-order point", { cause });
      }
      // RFC 8446 §7.4.2: reject an all-zero shared secret.
      if (isAllZero(secret)) throw new InvalidKeyShareError("x25519 shared secret is all zero");
      return u8(secret);
    },
  };
}

function p256Share(privateKey: Uint8Array): KeyShare {
  checkLength(privateKey, 32, "secp256r1 private key");
  const ecdh = createECDH("prime256v1");
  try {
    ecdh.setPrivateKey(privateKey);
  } catch (cause) {
    throw new RangeError("secp256r1 private key out of range", { cause });
  }
  const publicKey = u8(ecdh.getPublicKey());
  return {
    group: "secp256r1",
    publicKey,
    sharedSecret(peer) {
      // RFC 8446 §4.2.8.2: only the 65-byte uncompressed form; OpenSSL checks the point is on the curve.
      if (peer.length !== 65 || peer[0] !== 0x04) {
        throw new InvalidKeyShareError("secp256r1 public key must be a 65-byte uncompressed point");
      }
      try {
        return u8(ecdh.computeSecret(peer));
      } catch (cause) {
        throw new InvalidKeyShareError("secp256r1 public key is not a valid curve point", { cause });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Signatures. KeyObjects are cached per key object: a certificate's key is imported once.

const privateKeys = new WeakMap<PrivateKey, KeyObject>();
const publicKeys = new WeakMap<PublicKey, KeyObject | null>();

function privateKeyObject(key: PrivateKey): KeyObject {
  let ko = privateKeys.get(key);
  if (ko) return ko;
  switch (key.kind) {
    case "ec-p256":
      checkLength(key.point, 65, "secp256r1 public point");
      ko = createPrivateKey({
        key: {
          kty: "EC",
          crv: "P-256",
          d: b64u(key.d),
          x: b64u(key.point.subarray(1, 33)),
          y: b64u(key.point.subarray(33, 65)),
        },
        format: "jwk",
      });
      break;
    case "ed25519":
      checkLength(key.seed, 32, "ed25519 seed");
      ko = okpPrivateKey("Ed25519", key.seed);
      break;
    case "rsa":
      ko = createPrivateKey({
        key: {
          kty: "RSA",
          n: b64u(key.n),
          e: b64u(key.e),
          d: b64u(key.d),
          p: b64u(key.p),
          q: b64u(key.q),
          dp: b64u(key.dp),
          dq: b64u(key.dq),
          qi: b64u(key.qi),
        },
        format: "jwk",
      });
      break;
  }
  privateKeys.set(key, ko);
  return ko;
}

/** The KeyObject for a public key, or null when node cannot import it (an invalid key). */
function publicKeyObject(key: PublicKey): KeyObject | null {
  const cached = publicKeys.get(key);
  if (cached !== undefined) return cached;
  let ko: KeyObject | null = null;
  try {
    switch (key.kind) {
      case "ec-p256":
        if (key.point.length === 65 && key.point[0] === 0x04) {
          ko = createPublicKey({
            key: {
              kty: "EC",
              crv: "P-256",
              x: b64u(key.point.subarray(1, 33)),
              y: b64u(key.point.subarray(33)),
            },
            format: "jwk",
          });
        }
        break;
      case "ed25519":
        if (key.key.length === 32)
          ko = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: b64u(key.key) }, format: "jwk" });
        break;
      case "rsa":
        ko = createPublicKey({ key: { kty: "RSA", n: b64u(key.n), e: b64u(key.e) }, format: "jwk" });
        break;
    }
  } catch {
    ko = null;
  }
  publicKeys.set(key, ko);
  return ko;
}

function nodeSignature(scheme: SignatureScheme, key: PrivateKey, data: Uint8Array, _rng: Rng): Uint8Array {
  switch (scheme) {
    case "ecdsa_secp256r1_sha256":
      if (key.kind !== "ec-p256") break;
      return u8(nodeSign("sha256", data, { key: privateKeyObject(key), dsaEncoding: "der" }));
    case "ed25519":
      if (key.kind !== "ed25519") break;
      return u8(nodeSign(null, data, privateKeyObject(key)));
    case "rsa_pss_rsae_sha256":
      if (key.kind !== "rsa") break;
      return u8(
        nodeSign("sha256", data, {
          key: privateKeyObject(key),
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: 32,
        }),
      );
    case "rsa_pkcs1_sha256":
      if (key.kind !== "rsa") break;
      return u8(
        nodeSign("sha256", data, { key: privateKeyObject(key), padding: constants.RSA_PKCS1_PADDING }),
      );
  }
  throw new UnsupportedAlgorithmError(`cannot sign ${scheme} with a ${key.kind} key`);
}

function nodeVerification(
  scheme: SignatureScheme,
  key: PublicKey,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  const ko = publicKeyObject(key);
  if (!ko) return false;
  try {
    switch (scheme) {
      case "ecdsa_secp256r1_sha256":
        // OpenSSL accepts high-S signatures, as TLS requires.
        return (
          key.kind === "ec-p256" && nodeVerify("sha256", data, { key: ko, dsaEncoding: "der" }, signature)
        );
      case "ed25519":
        return key.kind === "ed25519" && signature.length === 64 && nodeVerify(null, data, ko, signature);
      case "rsa_pss_rsae_sha256":
        // saltLength 32: RFC 8446 §4.2.3 requires the salt to be as long as the digest.
        return (
          key.kind === "rsa" &&
          nodeVerify(
            "sha256",
            data,
            { key: ko, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
            signature,
          )
        );
      case "rsa_pkcs1_sha256":
        return (
          key.kind === "rsa" &&
          nodeVerify("sha256", data, { key: ko, padding: constants.RSA_PKCS1_PADDING }, signature)
        );
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** The node:crypto (OpenSSL) provider. */
export const nodeProvider: CryptoProvider = {
  name: "node",
  hash(alg, data) {
    return u8(createHash(alg).update(data).digest());
  },
  createHash: nodeIncrementalHash,
  hmac(alg, key, data) {
    return u8(hmacParts(alg, key, data));
  },
  hkdfExtract(alg, salt, ikm) {
    // RFC 5869 §2.2: an absent salt is HashLen zeros (which HMAC's zero padding also gives).
    return u8(hmacParts(alg, salt, ikm));
  },
  hkdfExpand,
  aead: nodeAead,
  headerProtection: nodeHeaderProtection,
  generateKeyShare(group, rng) {
    return group === "x25519" ? x25519Share(rng.fill(new Uint8Array(32))) : p256Share(drawP256Scalar(rng));
  },
  keyShareFromPrivate(group, privateKey) {
    return group === "x25519" ? x25519Share(privateKey) : p256Share(privateKey);
  },
  sign: nodeSignature,
  verify: nodeVerification,
};
