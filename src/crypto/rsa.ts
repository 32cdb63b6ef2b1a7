/**
 * RSA signatures in TypeScript on BigInt (RFC 8017): RSASSA-PSS (§8.1) with EMSA-PSS (§9.1),
 * MGF1 (Appendix B.2.1) and SHA-256, salt length = hash length, as TLS 1.3 requires for
 * `rsa_pss_rsae_sha256` (RFC 8446 §4.2.3); and RSASSA-PKCS1-v1_5 (§8.2) with EMSA-PKCS1-v1_5
 * (§9.2) and the SHA-256 DigestInfo, used by certificate signatures (`rsa_pkcs1_sha256`).
 *
 * The noble provider uses this module; the node provider uses OpenSSL instead. Signing uses the
 * Chinese Remainder Theorem (§5.1.2 method 2) with message blinding drawn from the caller's
 * `Rng`, and checks its result with the public exponent before returning it (a fault in the CRT
 * computation would otherwise leak a factor of n). BigInt arithmetic is not constant time;
 * blinding decorrelates timing from the message, but prefer the node provider for RSA signing
 * with long-term keys on a shared host.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { PrivateKey, PublicKey, Rng } from "./provider.js";

type RsaPublic = Extract<PublicKey, { kind: "rsa" }>;
type RsaPrivate = Extract<PrivateKey, { kind: "rsa" }>;

const H_LEN = 32;
const S_LEN = H_LEN;

/** DER of DigestInfo { AlgorithmIdentifier sha256 NULL, OCTET STRING (32) } without the hash (RFC 8017 §9.2 note 1). */
const SHA256_DIGEST_INFO = Uint8Array.of(
  0x30,
  0x31,
  0x30,
  0x0d,
  0x06,
  0x09,
  0x60,
  0x86,
  0x48,
  0x01,
  0x65,
  0x03,
  0x04,
  0x02,
  0x01,
  0x05,
  0x00,
  0x04,
  0x20,
);

/** OS2IP (RFC 8017 §4.2): big-endian bytes to a non-negative integer. */
export function os2ip(b: Uint8Array): bigint {
  let hex = "";
  for (let i = 0; i < b.length; i++) hex += b[i].toString(16).padStart(2, "0");
  return hex.length === 0 ? 0n : BigInt(`0x${hex}`);
}

/** I2OSP (RFC 8017 §4.1): integer to exactly `len` big-endian bytes; `undefined` if it does not fit. */
export function i2osp(x: bigint, len: number): Uint8Array | undefined {
  if (x < 0n) return undefined;
  const hex = x.toString(16);
  const n = (hex.length + 1) >> 1;
  if (n > len) {
    if (x === 0n && len === 0) return new Uint8Array(0);
    return undefined;
  }
  const out = new Uint8Array(len);
  const padded = hex.length & 1 ? `0${hex}` : hex;
  const off = len - n;
  for (let i = 0; i < n; i++) out[off + i] = Number.parseInt(padded.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** base^exp mod m, left-to-right with a fixed 4-bit window. */
export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  if (m === 1n) return 0n;
  const b = ((base % m) + m) % m;
  const table: bigint[] = new Array(16);
  table[0] = 1n;
  for (let i = 1; i < 16; i++) table[i] = (table[i - 1] * b) % m;
  const hex = exp.toString(16);
  let r = 1n;
  for (let i = 0; i < hex.length; i++) {
    if (i > 0) {
      r = (r * r) % m;
      r = (r * r) % m;
      r = (r * r) % m;
      r = (r * r) % m;
    }
    const d = Number.parseInt(hex[i], 16);
    if (d !== 0) r = (r * table[d]) % m;
  }
  return r;
}

/** Modular inverse by the extended Euclidean algorithm; `undefined` when gcd(a, m) != 1. */
export function modInverse(a: bigint, m: bigint): bigint | undefined {
  let [oldR, r] = [((a % m) + m) % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) return undefined;
  return ((oldS % m) + m) % m;
}

/** MGF1 with SHA-256 (RFC 8017 Appendix B.2.1). */
function mgf1(seed: Uint8Array, maskLen: number): Uint8Array {
  const out = new Uint8Array(maskLen);
  const input = new Uint8Array(seed.length + 4);
  input.set(seed);
  for (let counter = 0, off = 0; off < maskLen; counter++, off += H_LEN) {
    input[seed.length] = counter >>> 24;
    input[seed.length + 1] = (counter >>> 16) & 0xff;
    input[seed.length + 2] = (counter >>> 8) & 0xff;
    input[seed.length + 3] = counter & 0xff;
    const h = sha256(input);
    out.set(h.subarray(0, Math.min(H_LEN, maskLen - off)), off);
  }
  return out;
}

/** M' = (0x)00 00 00 00 00 00 00 00 || mHash || salt, hashed (RFC 8017 §9.1.1 steps 5–6). */
function pssHash(mHash: Uint8Array, salt: Uint8Array): Uint8Array {
  const mPrime = new Uint8Array(8 + mHash.length + salt.length);
  mPrime.set(mHash, 8);
  mPrime.set(salt, 8 + mHash.length);
  return sha256(mPrime);
}

/** EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-256 and sLen = hLen. */
function emsaPssEncode(message: Uint8Array, emBits: number, salt: Uint8Array): Uint8Array {
  const emLen = Math.ceil(emBits / 8);
  if (emLen < H_LEN + S_LEN + 2) throw new RangeError("RSA modulus too small for PSS with SHA-256");
  const h = pssHash(sha256(message), salt);
  const dbLen = emLen - H_LEN - 1;
  const db = new Uint8Array(dbLen);
  db[dbLen - S_LEN - 1] = 0x01;
  db.set(salt, dbLen - S_LEN);
  const mask = mgf1(h, dbLen);
  for (let i = 0; i < dbLen; i++) db[i] ^= mask[i];
  db[0] &= 0xff >>> (8 * emLen - emBits);
  const em = new Uint8Array(emLen);
  em.set(db);
  em.set(h, dbLen);
  em[emLen - 1] = 0xbc;
  return em;
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with SHA-256 and sLen = hLen. */
function emsaPssVerify(message: Uint8Array, em: Uint8Array, emBits: number): boolean {
  const emLen = Math.ceil(emBits / 8);
  if (em.length !== emLen || emLen < H_LEN + S_LEN + 2) return false;
  if (em[emLen - 1] !== 0xbc) return false;
  const dbLen = emLen - H_LEN - 1;
  const h = em.subarray(dbLen, dbLen + H_LEN);
  const topMask = 0xff >>> (8 * emLen - emBits);
  if ((em[0] & ~topMask) !== 0) return false;
  const db = mgf1(h, dbLen);
  for (let i = 0; i < dbLen; i++) db[i] ^= em[i];
  db[0] &= topMask;
  const psLen = dbLen - S_LEN - 1;
  for (let i = 0; i < psLen; i++) if (db[i] !== 0) return false;
  if (db[psLen] !== 0x01) return false;
  const hPrime = pssHash(sha256(message), db.subarray(dbLen - S_LEN));
  let diff = 0;
  for (let i = 0; i < H_LEN; i++) diff |= hPrime[i] ^ h[i];
  return diff === 0;
}

/** EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2) with SHA-256. */
function emsaPkcs1Encode(message: Uint8Array, emLen: number): Uint8Array {
  const tLen = SHA256_DIGEST_INFO.length + H_LEN;
  if (emLen < tLen + 11) throw new RangeError("RSA modulus too small for PKCS#1 v1.5 with SHA-256");
  const em = new Uint8Array(emLen);
  em[1] = 0x01;
  em.fill(0xff, 2, emLen - tLen - 1);
  em.set(SHA256_DIGEST_INFO, emLen - tLen);
  em.set(sha256(message), emLen - H_LEN);
  return em;
}

interface PublicParams {
  n: bigint;
  e: bigint;
  k: number;
  modBits: number;
}

function publicParams(key: RsaPublic | RsaPrivate): PublicParams | undefined {
  const n = os2ip(key.n);
  const e = os2ip(key.e);
  if (n < 3n || (n & 1n) === 0n || e < 3n || (e & 1n) === 0n || e >= n) return undefined;
  const modBits = bitLength(n);
  return { n, e, k: Math.ceil(modBits / 8), modBits };
}

/** RSAVP1 (RFC 8017 §5.2.2): the encoded message inside `signature`, as k bytes, or undefined. */
function rsavp1(p: PublicParams, signature: Uint8Array): Uint8Array | undefined {
  if (signature.length !== p.k) return undefined;
  const s = os2ip(signature);
  if (s >= p.n) return undefined;
  return i2osp(modPow(s, p.e, p.n), p.k);
}

/** RSASP1 (RFC 8017 §5.2.1) with CRT, blinding, and a check of the result against the public key. */
function rsasp1(key: RsaPrivate, p: PublicParams, m: bigint, rng: Rng): bigint {
  const prime1 = os2ip(key.p);
  const prime2 = os2ip(key.q);
  const dp = os2ip(key.dp);
  const dq = os2ip(key.dq);
  const qi = os2ip(key.qi);
  if (prime1 * prime2 !== p.n) throw new RangeError("RSA private key: p * q != n");
  // Blinding: sign m * r^e, then multiply by r^-1 (r drawn uniformly below n, invertible).
  let r = 0n;
  let rInv: bigint | undefined;
  const rBytes = new Uint8Array(p.k);
  for (let tries = 0; tries < 64 && rInv === undefined; tries++) {
    r = os2ip(rng.fill(rBytes)) % p.n;
    if (r > 1n) rInv = modInverse(r, p.n);
  }
  if (rInv === undefined) throw new Error("RSA blinding: could not draw an invertible factor");
  const c = (m * modPow(r, p.e, p.n)) % p.n;
  const m1 = modPow(c % prime1, dp, prime1);
  const m2 = modPow(c % prime2, dq, prime2);
  const h = (((qi * (m1 - m2)) % prime1) + prime1) % prime1;
  const blinded = m2 + h * prime2;
  const s = (blinded * rInv) % p.n;
  if (modPow(s, p.e, p.n) !== m) throw new Error("RSA signing fault: result does not verify");
  return s;
}

/** RSASSA-PSS-SIGN (RFC 8017 §8.1.1), SHA-256, MGF1-SHA-256, 32-byte salt from `rng`. */
export function rsaPssSign(key: RsaPrivate, message: Uint8Array, rng: Rng): Uint8Array {
  const p = publicParams(key);
  if (!p) throw new RangeError("invalid RSA private key");
  const salt = rng.fill(new Uint8Array(S_LEN));
  const em = emsaPssEncode(message, p.modBits - 1, salt);
  const s = rsasp1(key, p, os2ip(em), rng);
  return i2osp(s, p.k) as Uint8Array;
}

/** RSASSA-PSS-VERIFY (RFC 8017 §8.1.2). Returns false for any invalid signature or key. */
export function rsaPssVerify(key: RsaPublic, message: Uint8Array, signature: Uint8Array): boolean {
  const p = publicParams(key);
  if (!p) return false;
  const full = rsavp1(p, signature);
  if (!full) return false;
  // emLen = ceil((modBits - 1) / 8), which is k - 1 when modBits - 1 is a multiple of 8 (§8.1.2 step 2c).
  const emBits = p.modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < p.k) {
    if (full[0] !== 0) return false;
    return emsaPssVerify(message, full.subarray(1), emBits);
  }
  return emsaPssVerify(message, full, emBits);
}

/** RSASSA-PKCS1-V1_5-SIGN (RFC 8017 §8.2.1) with SHA-256. Deterministic; `rng` only blinds. */
export function rsaPkcs1Sign(key: RsaPrivate, message: Uint8Array, rng: Rng): Uint8Array {
  const p = publicParams(key);
  if (!p) throw new RangeError("invalid RSA private key");
  const em = emsaPkcs1Encode(message, p.k);
  const s = rsasp1(key, p, os2ip(em), rng);
  return i2osp(s, p.k) as Uint8Array;
}

/** RSASSA-PKCS1-V1_5-VERIFY (RFC 8017 §8.2.2) by re-encoding and comparing (step 3–4). */
export function rsaPkcs1Verify(key: RsaPublic, message: Uint8Array, signature: Uint8Array): boolean {
  const p = publicParams(key);
  if (!p) return false;
  const em = rsavp1(p, signature);
  if (!em) return false;
  let expected: Uint8Array;
  try {
    expected = emsaPkcs1Encode(message, p.k);
  } catch {
    return false;
  }
  let diff = 0;
  for (let i = 0; i < em.length; i++) diff |= em[i] ^ expected[i];
  return diff === 0;
}
