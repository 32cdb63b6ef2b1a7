/**
 * Small helpers shared by the providers: argument checks, the all-zero test of RFC 8446 §7.4.2,
 * and drawing a secp256r1 scalar from an `Rng` without depending on a curve library.
 */
import { fromHex } from "../util/bytes.js";
import { type AeadAlgorithm, aeadKeyLength, type Rng } from "./provider.js";

/** Throws a `RangeError` (a programming error, not a protocol one) unless `b` has `len` bytes. */
export function checkLength(b: Uint8Array, len: number, what: string): void {
  if (b.length !== len) throw new RangeError(`${what} must be ${len} bytes, got ${b.length}`);
}

/** Throws a `RangeError` unless `key` has the length `alg` needs (16 or 32 bytes). */
export function checkAeadKey(alg: AeadAlgorithm, key: Uint8Array): void {
  checkLength(key, aeadKeyLength(alg), `${alg} key`);
}

/** True when every byte of `b` is zero (constant time in the length). */
export function isAllZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i];
  return acc === 0;
}

/** The order n of the secp256r1 group (SEC 2 §2.4.2), big-endian. */
const P256_N = fromHex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");

/** True when the 32-byte big-endian scalar `d` is in [1, n-1] for secp256r1. */
export function isValidP256Scalar(d: Uint8Array): boolean {
  if (d.length !== 32 || isAllZero(d)) return false;
  for (let i = 0; i < 32; i++) {
    if (d[i] !== P256_N[i]) return d[i] < P256_N[i];
  }
  return false; // d == n
}

/** Draws a valid secp256r1 scalar from `rng` by rejection sampling (a retry is ~2^-32 likely). */
export function drawP256Scalar(rng: Rng): Uint8Array {
  const d = new Uint8Array(32);
  for (;;) {
    rng.fill(d);
    if (isValidP256Scalar(d)) return d;
  }
}
