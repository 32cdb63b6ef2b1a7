/**
 * The reference crypto provider: pure TypeScript on @noble/hashes, @noble/ciphers and
 * @noble/curves, plus RSA on BigInt (./rsa.ts). The TLS handshake is built and verified on it;
 * `node` (./node.ts) must agree with it on every vector.
 *
 * ECDSA signing is RFC 6979 deterministic *hedged* with 32 bytes from the caller's `Rng` as
 * additional data (RFC 6979 §3.6): a broken RNG cannot leak the key, and a `SeededRng` keeps tests
 * reproducible. Signatures are emitted low-S; verification accepts high-S (OpenSSL emits both).
 */
import { unsafe as aesUnsafe, gcm } from "@noble/ciphers/aes.js";
import { chacha20, chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { expand as hkdfExpandNoble, extract as hkdfExtractNoble } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha384 } from "@noble/hashes/sha2.js";
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
  type NamedGroup,
  type PrivateKey,
  type PublicKey,
  type Rng,
  type SignatureScheme,
  UnsupportedAlgorithmError,
} from "./provider.js";
import { rsaPkcs1Sign, rsaPkcs1Verify, rsaPssSign, rsaPssVerify } from "./rsa.js";

const HASHES = { sha256, sha384 } as const;

function nobleAead(alg: AeadAlgorithm, key: Uint8Array): Aead {
  checkAeadKey(alg, key);
  const k = key.slice();
  const make = alg === "chacha20-poly1305" ? chacha20poly1305 : gcm;
  return {
    algorithm: alg,
    seal(nonce, aad, plaintext) {
      checkLength(nonce, 12, "AEAD nonce");
      return make(k, nonce, aad).encrypt(plaintext);
    },
    sealInto(nonce, aad, plaintext, out, offset) {
      checkLength(nonce, 12, "AEAD nonce");
      if (offset < 0 || offset + plaintext.length + 16 > out.length)
        throw new RangeError("no room for the sealed output");
      // noble's GCM has no output parameter: encrypt() returns a fresh array, copied once.
      const sealed = make(k, nonce, aad).encrypt(plaintext);
      out.set(sealed, offset);
      return sealed.length;
    },
    open(nonce, aad, ciphertextAndTag) {
      checkLength(nonce, 12, "AEAD nonce");
      if (ciphertextAndTag.length < 16) return null;
      try {
        return make(k, nonce, aad).decrypt(ciphertextAndTag);
      } catch {
        return null;
      }
    },
  };
}

const HP_BLOCK = new Uint8Array(16);

function nobleHeaderProtection(alg: AeadAlgorithm, hpKey: Uint8Array): HeaderProtection {
  checkAeadKey(alg, hpKey);
  if (alg === "chacha20-poly1305") {
    // RFC 9001 §5.4.4: counter = sample[0..4] little-endian, nonce = sample[4..16],
    // mask = ChaCha20(hp_key, counter, nonce, {0,0,0,0,0}).
    const k = hpKey.slice();
    const zeros = new Uint8Array(5);
    return {
      algorithm: alg,
      mask(sample) {
        checkLength(sample, 16, "header protection sample");
        const counter = (sample[0] | (sample[1] << 8) | (sample[2] << 16) | (sample[3] << 24)) >>> 0;
        return chacha20(k, sample.subarray(4, 16), zeros, new Uint8Array(5), counter);
      },
    };
  }
  // RFC 9001 §5.4.3: mask = AES-ECB(hp_key, sample)[0..5]. The key schedule is expanded once;
  // `encryptBlock` works in place on an aligned 16-byte block, one shared by every instance
  // (these live as long as a connection; mask() is synchronous and copies its result out).
  const xk = aesUnsafe.expandKeyLE(hpKey);
  const block = HP_BLOCK;
  return {
    algorithm: alg,
    mask(sample) {
      checkLength(sample, 16, "header protection sample");
      block.set(sample);
      aesUnsafe.encryptBlock(xk, block);
      return block.slice(0, 5);
    },
  };
}

function nobleHash(alg: HashAlgorithm): IncrementalHash {
  const h = HASHES[alg].create();
  return {
    update(data) {
      h.update(data);
    },
    digest() {
      return h.clone().digest();
    },
  };
}

function x25519Share(priv: Uint8Array): KeyShare {
  checkLength(priv, 32, "x25519 private key");
  const d = priv.slice();
  const publicKey = x25519.getPublicKey(d);
  return {
    group: "x25519",
    publicKey,
    sharedSecret(peer) {
      if (peer.length !== 32)
        throw new InvalidKeyShareError(`x25519 public key must be 32 bytes, got ${peer.length}`);
      let secret: Uint8Array;
      try {
        secret = x25519.getSharedSecret(d, peer);
      } catch (cause) {
        throw new InvalidKeyShareError("x25519 public key is a low-order point", { cause });
      }
      // RFC 8446 §7.4.2 / RFC 7748 §6.1: an all-zero shared secret must be rejected.
      if (isAllZero(secret)) throw new InvalidKeyShareError("x25519 shared secret is all zero");
      return secret;
    },
  };
}

function p256Share(priv: Uint8Array): KeyShare {
  checkLength(priv, 32, "secp256r1 private key");
  if (!p256.utils.isValidSecretKey(priv)) throw new RangeError("secp256r1 private key out of range");
  const d = priv.slice();
  const publicKey = p256.getPublicKey(d, false);
  return {
    group: "secp256r1",
    publicKey,
    sharedSecret(peer) {
      // RFC 8446 §4.2.8.2: only the uncompressed form is allowed; the point must be on the curve.
      if (peer.length !== 65 || peer[0] !== 0x04) {
        throw new InvalidKeyShareError("secp256r1 public key must be a 65-byte uncompressed point");
      }
      let shared: Uint8Array;
      try {
        shared = p256.getSharedSecret(d, peer, true);
      } catch (cause) {
        throw new InvalidKeyShareError("secp256r1 public key is not a valid curve point", { cause });
      }
      // RFC 8446 §7.4.1: the shared secret is the x-coordinate, 32 bytes.
      return shared.slice(1);
    },
  };
}

/** Signs with noble / BigInt RSA. */
function nobleSign(scheme: SignatureScheme, key: PrivateKey, data: Uint8Array, rng: Rng): Uint8Array {
  switch (scheme) {
    case "ecdsa_secp256r1_sha256": {
      if (key.kind !== "ec-p256") break;
      const extraEntropy = rng.fill(new Uint8Array(32));
      return p256.sign(data, key.d, { prehash: true, lowS: true, format: "der", extraEntropy });
    }
    case "ed25519":
      if (key.kind !== "ed25519") break;
      return ed25519.sign(data, key.seed);
    case "rsa_pss_rsae_sha256":
      if (key.kind !== "rsa") break;
      return rsaPssSign(key, data, rng);
    case "rsa_pkcs1_sha256":
      if (key.kind !== "rsa") break;
      return rsaPkcs1Sign(key, data, rng);
  }
  throw new UnsupportedAlgorithmError(`cannot sign ${scheme} with a ${key.kind} key`);
}

function nobleVerify(
  scheme: SignatureScheme,
  key: PublicKey,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    switch (scheme) {
      case "ecdsa_secp256r1_sha256":
        if (key.kind !== "ec-p256") return false;
        return p256.verify(signature, data, key.point, { prehash: true, lowS: false, format: "der" });
      case "ed25519":
        if (key.kind !== "ed25519" || signature.length !== 64) return false;
        // Strict RFC 8032 §5.1.7 decoding (not ZIP-215), as OpenSSL does.
        return ed25519.verify(signature, data, key.key, { zip215: false });
      case "rsa_pss_rsae_sha256":
        return key.kind === "rsa" && rsaPssVerify(key, data, signature);
      case "rsa_pkcs1_sha256":
        return key.kind === "rsa" && rsaPkcs1Verify(key, data, signature);
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** The pure-TypeScript provider (noble + BigInt RSA). */
export const nobleProvider: CryptoProvider = {
  name: "noble",
  hash(alg, data) {
    return HASHES[alg](data);
  },
  createHash: nobleHash,
  hmac(alg, key, data) {
    return hmac(HASHES[alg], key, data);
  },
  hkdfExtract(alg, salt, ikm) {
    // RFC 5869 §2.2: an absent salt is HashLen zeros; HMAC pads an empty key to the same thing.
    return hkdfExtractNoble(HASHES[alg], ikm, salt.length === 0 ? new Uint8Array(hashLength(alg)) : salt);
  },
  hkdfExpand(alg, prk, info, length) {
    return hkdfExpandNoble(HASHES[alg], prk, info, length);
  },
  aead: nobleAead,
  headerProtection: nobleHeaderProtection,
  generateKeyShare(group: NamedGroup, rng: Rng) {
    if (group === "x25519") return x25519Share(rng.fill(new Uint8Array(32)));
    return p256Share(drawP256Scalar(rng));
  },
  keyShareFromPrivate(group, privateKey) {
    return group === "x25519" ? x25519Share(privateKey) : p256Share(privateKey);
  },
  sign: nobleSign,
  verify: nobleVerify,
};
