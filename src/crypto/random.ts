/**
 * Randomness sources. The sans-IO core never draws randomness by itself: it is handed an `Rng`.
 */
import { randomFillSync } from "node:crypto";
import type { Rng } from "./provider.js";

/** Size of the pool small requests are served from. */
const POOL_SIZE = 4096;
/** Requests above this go to the CSPRNG directly. */
const POOL_MAX_REQUEST = 256;
const pool = new Uint8Array(POOL_SIZE);
let poolUsed = POOL_SIZE;

/**
 * The system CSPRNG. A handshake draws a dozen small values (CIDs, randoms, key shares, ticket
 * nonces) and each randomFillSync call costs far more than its bytes, so small requests are
 * served from a pool refilled 4 KiB at a time. Every byte is handed out once and wiped from the pool.
 */
export const systemRng: Rng = {
  fill(out: Uint8Array): Uint8Array {
    const n = out.length;
    if (n > POOL_MAX_REQUEST) return randomFillSync(out);
    if (poolUsed + n > POOL_SIZE) {
      randomFillSync(pool);
      poolUsed = 0;
    }
    out.set(pool.subarray(poolUsed, poolUsed + n));
    pool.fill(0, poolUsed, poolUsed + n);
    poolUsed += n;
    return out;
  },
};

/**
 * A deterministic generator for tests and simulations (xoshiro128** seeded by splitmix32).
 * Not for keys outside tests. The same seed always gives the same bytes, so a failing
 * simulation can be replayed from its printed seed.
 */
export class SeededRng implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    let x = this.seed;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** Next 32-bit unsigned value. */
  nextU32(): number {
    const result = Math.imul(((Math.imul(this.s1, 5) << 7) | (Math.imul(this.s1, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = ((this.s3 << 11) | (this.s3 >>> 21)) >>> 0;
    return result;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 0x100000000;
  }

  fill(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i += 4) {
      const v = this.nextU32();
      for (let j = 0; j < 4 && i + j < out.length; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}
