/** QUIC header protection masks (RFC 9001 §5.4) over every provider, with the Appendix A vectors. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { AeadAlgorithm } from "../../src/crypto/provider.js";
import { fromHex, toHex } from "../../src/util/bytes.js";
import { PROVIDERS } from "./providers.js";

describe.each(PROVIDERS)("header protection (%s)", (_name, p) => {
  it("RFC 9001 A.2 client Initial (AES-128)", () => {
    const hp = p.headerProtection("aes-128-gcm", fromHex("9f50449e04a0e810283a1e9933adedd2"));
    expect(toHex(hp.mask(fromHex("d1b1c98dd7689fb8ec11d242b123dc9b")))).toBe("437b9aec36");
  });

  it("RFC 9001 A.3 server Initial (AES-128)", () => {
    const hp = p.headerProtection("aes-128-gcm", fromHex("c206b8d9b9f0f37644430b490eeaa314"));
    expect(toHex(hp.mask(fromHex("2cd0991cd25b0aac406a5816b6394100")))).toBe("2ec0d8356a");
  });

  it("RFC 9001 A.5 ChaCha20 short header", () => {
    const hp = p.headerProtection(
      "chacha20-poly1305",
      fromHex("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"),
    );
    expect(toHex(hp.mask(fromHex("5e5cd55c41f69080575d7999c25a5bfb")))).toBe("aefefe7d03");
  });

  it("the same sample always gives the same mask (reused ECB context), and a sample view works", () => {
    const hp = p.headerProtection("aes-256-gcm", new Uint8Array(32).fill(1));
    const packet = new Uint8Array(40).map((_, i) => i * 3);
    const sample = packet.subarray(20, 36);
    const m1 = hp.mask(sample);
    const m2 = hp.mask(sample.slice());
    expect(m1.length).toBe(5);
    expect(m1).toEqual(m2);
    expect(() => hp.mask(packet.subarray(0, 15))).toThrow(RangeError);
  });
});

describe("header protection: node and noble agree", () => {
  it("on random keys and samples", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<AeadAlgorithm>("aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (alg, key32, sample) => {
          const key = alg === "aes-128-gcm" ? key32.subarray(0, 16) : key32;
          expect(nodeProvider.headerProtection(alg, key).mask(sample)).toEqual(
            nobleProvider.headerProtection(alg, key).mask(sample),
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});
