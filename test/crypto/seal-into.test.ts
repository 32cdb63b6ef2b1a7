/**
 * `Aead.sealInto` (the per-packet path that seals a QUIC packet in place): for every provider and
 * algorithm it writes exactly what `seal` returns, at the offset asked, also when the plaintext
 * is the output's own bytes, leaves the bytes around the output alone, and refuses an output
 * without room for the tag.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AeadAlgorithm } from "../../src/crypto/provider.js";
import { PROVIDERS } from "./providers.js";

const ALGS: Array<[AeadAlgorithm, number]> = [
  ["aes-128-gcm", 16],
  ["aes-256-gcm", 32],
  ["chacha20-poly1305", 32],
];

describe.each(PROVIDERS)("sealInto (%s)", (_name, provider) => {
  describe.each(ALGS)("%s", (alg, keyLength) => {
    it("writes seal()'s output at the offset, in place or from a separate plaintext", () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: keyLength, maxLength: keyLength }),
          fc.uint8Array({ minLength: 12, maxLength: 12 }),
          fc.uint8Array({ maxLength: 40 }),
          fc.uint8Array({ maxLength: 1500 }),
          fc.nat(64),
          (key, nonce, aad, plaintext, offset) => {
            const aead = provider.aead(alg, key);
            expect(aead.sealInto).toBeTypeOf("function");
            const expected = aead.seal(nonce, aad, plaintext);
            expect(expected.length).toBe(plaintext.length + 16);

            // Separate plaintext; guard bytes on both sides must survive.
            const out = new Uint8Array(offset + plaintext.length + 16 + 8).fill(0xa5);
            const n = aead.sealInto?.(nonce, aad, plaintext, out, offset);
            expect(n).toBe(plaintext.length + 16);
            expect(out.subarray(offset, offset + expected.length)).toEqual(expected);
            expect(out.subarray(0, offset).every((b) => b === 0xa5)).toBe(true);
            expect(out.subarray(offset + expected.length).every((b) => b === 0xa5)).toBe(true);

            // In place, as a QUIC packet is sealed: the header (AAD) before, the payload after.
            const packet = new Uint8Array(aad.length + plaintext.length + 16);
            packet.set(aad);
            packet.set(plaintext, aad.length);
            aead.sealInto?.(
              nonce,
              packet.subarray(0, aad.length),
              packet.subarray(aad.length, aad.length + plaintext.length),
              packet,
              aad.length,
            );
            expect(packet.subarray(0, aad.length)).toEqual(aad);
            expect(packet.subarray(aad.length)).toEqual(expected);
            expect(aead.open(nonce, aad, packet.subarray(aad.length))).toEqual(plaintext);
          },
        ),
        { numRuns: 40, seed: 0x5ea1 },
      );
    });

    it("throws RangeError when the output has no room for ciphertext and tag", () => {
      const aead = provider.aead(alg, new Uint8Array(keyLength).fill(7));
      const nonce = new Uint8Array(12);
      const plaintext = new Uint8Array(100).fill(1);
      expect(() => aead.sealInto?.(nonce, new Uint8Array(0), plaintext, new Uint8Array(115), 0)).toThrow(
        RangeError,
      );
      expect(() => aead.sealInto?.(nonce, new Uint8Array(0), plaintext, new Uint8Array(116), 1)).toThrow(
        RangeError,
      );
      expect(aead.sealInto?.(nonce, new Uint8Array(0), plaintext, new Uint8Array(116), 0)).toBe(116);
    });
  });
});
