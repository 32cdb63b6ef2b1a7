/**
 * systemRng serves small requests from a pool: every byte must be handed out once, requests of
 * any size must be filled completely, and the pool must be refilled when it runs out.
 */
import { describe, expect, it } from "vitest";
import { systemRng } from "../../src/crypto/random.js";

describe("systemRng", () => {
  it("fills small and large requests, never repeating a draw across pool refills", () => {
    const seen = new Set<string>();
    // 2000 draws of 16 bytes cross the 4 KiB pool boundary several times.
    for (let i = 0; i < 2000; i++) {
      const key = Buffer.from(systemRng.fill(new Uint8Array(16))).toString("hex");
      expect(seen.has(key)).toBe(false);
      seen.add(key);
    }
    const big = systemRng.fill(new Uint8Array(10_000));
    // 10 kB of zeros from a CSPRNG is impossible in practice; a forgotten fill would give them.
    expect(big.some((b) => b !== 0)).toBe(true);
    expect(big.subarray(9_000).some((b) => b !== 0)).toBe(true);
  });

  it("fills odd sizes up to the pool's largest request completely", () => {
    for (const n of [0, 1, 3, 31, 255, 256, 257]) {
      const out = systemRng.fill(new Uint8Array(n));
      expect(out.length).toBe(n);
      // The last 8 bytes (or all, if fewer) are not all zero: the tail is filled too.
      const tail = out.subarray(Math.max(0, n - 8));
      if (n >= 8) expect(tail.some((b) => b !== 0)).toBe(true);
    }
  });

  it("returns the array it was given", () => {
    const a = new Uint8Array(8);
    expect(systemRng.fill(a)).toBe(a);
  });
});
