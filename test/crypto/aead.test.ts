/**
 * AEAD over every provider: AES-GCM known answers from McGrew & Viega, "The Galois/Counter Mode
 * of Operation (GCM)", Appendix B test cases 2, 3, 4 (AES-128) and 14, 15 (AES-256); the
 * ChaCha20-Poly1305 vector of RFC 8439 §2.8.2; tamper detection; random cross-provider round trips.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { AeadAlgorithm, CryptoProvider } from "../../src/crypto/provider.js";
import { fromHex, toHex } from "../../src/util/bytes.js";
import { PAIRS, PROVIDERS } from "./providers.js";

const K3 = "feffe9928665731c6d6a8f9467308308";
const P3 =
  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const P4 = P3.slice(0, 120); // 60 bytes
const IV3 = "cafebabefacedbaddecaf888";
const A4 = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

interface Vector {
  name: string;
  alg: AeadAlgorithm;
  key: string;
  nonce: string;
  aad: string;
  pt: string;
  ct: string;
  tag: string;
}

const VECTORS: Vector[] = [
  {
    name: "GCM test case 2 (AES-128, zero key and block)",
    alg: "aes-128-gcm",
    key: "00000000000000000000000000000000",
    nonce: "000000000000000000000000",
    aad: "",
    pt: "00000000000000000000000000000000",
    ct: "0388dace60b6a392f328c2b971b2fe78",
    tag: "ab6e47d42cec13bdf53a67b21257bddf",
  },
  {
    name: "GCM test case 3 (AES-128, 64 bytes)",
    alg: "aes-128-gcm",
    key: K3,
    nonce: IV3,
    aad: "",
    pt: P3,
    ct:
      "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
    tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
  },
  {
    name: "GCM test case 4 (AES-128, 60 bytes, AAD)",
    alg: "aes-128-gcm",
    key: K3,
    nonce: IV3,
    aad: A4,
    pt: P4,
    ct:
      "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
    tag: "5bc94fbc3221a5db94fae95ae7121a47",
  },
  {
    name: "GCM test case 14 (AES-256, zero key and block)",
    alg: "aes-256-gcm",
    key: "0000000000000000000000000000000000000000000000000000000000000000",
    nonce: "000000000000000000000000",
    aad: "",
    pt: "00000000000000000000000000000000",
    ct: "cea7403d4d606b6e074ec5d3baf39d18",
    tag: "d0d1c8a799996bf0265b98b5d48ab919",
  },
  {
    name: "GCM test case 15 (AES-256, 64 bytes)",
    alg: "aes-256-gcm",
    key: K3 + K3,
    nonce: IV3,
    aad: "",
    pt: P3,
    ct:
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
    tag: "b094dac5d93471bdec1a502270e3cc6c",
  },
  {
    name: "ChaCha20-Poly1305 RFC 8439 §2.8.2",
    alg: "chacha20-poly1305",
    key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
    nonce: "070000004041424344454647",
    aad: "50515253c0c1c2c3c4c5c6c7",
    pt: toHex(
      new TextEncoder().encode(
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
      ),
    ),
    ct:
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
      "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
      "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
      "3ff4def08e4b7a9de576d26586cec64b6116",
    tag: "1ae10b594f09e26a7e902ecbd0600691",
  },
];

const ALGS: AeadAlgorithm[] = ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"];
const keyLen = (alg: AeadAlgorithm): number => (alg === "aes-128-gcm" ? 16 : 32);

describe.each(PROVIDERS)("AEAD (%s)", (_name, p: CryptoProvider) => {
  it.each(VECTORS)("$name", (v) => {
    const aead = p.aead(v.alg, fromHex(v.key));
    const sealed = aead.seal(fromHex(v.nonce), fromHex(v.aad), fromHex(v.pt));
    expect(toHex(sealed)).toBe(v.ct + v.tag);
    const opened = aead.open(fromHex(v.nonce), fromHex(v.aad), fromHex(v.ct + v.tag));
    expect(opened && toHex(opened)).toBe(v.pt);
  });

  it.each(ALGS)("%s: a flipped bit anywhere (ciphertext, tag, AAD, nonce) gives null", (alg) => {
    const aead = p.aead(alg, new Uint8Array(keyLen(alg)).fill(9));
    const nonce = fromHex("000102030405060708090a0b");
    const aad = fromHex("c0ffee");
    const sealed = aead.seal(nonce, aad, new TextEncoder().encode("hello, packet"));
    for (const i of [0, 5, sealed.length - 16, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[i] ^= 0x01;
      expect(aead.open(nonce, aad, bad)).toBeNull();
    }
    expect(aead.open(nonce, fromHex("c0ffef"), sealed)).toBeNull();
    expect(aead.open(fromHex("000102030405060708090a0c"), aad, sealed)).toBeNull();
    expect(aead.open(nonce, aad, sealed.subarray(0, 15))).toBeNull();
    expect(aead.open(nonce, aad, sealed.subarray(1))).toBeNull();
  });

  it.each(ALGS)("%s: empty plaintext and input views at an offset", (alg) => {
    const aead = p.aead(alg, new Uint8Array(keyLen(alg)).fill(3));
    const nonce = new Uint8Array(12);
    const sealed = aead.seal(nonce, new Uint8Array(0), new Uint8Array(0));
    expect(sealed.length).toBe(16);
    expect(aead.open(nonce, new Uint8Array(0), sealed)).toEqual(new Uint8Array(0));
    // A packet inside a larger datagram: header as AAD and payload as subarrays of one buffer.
    const datagram = new Uint8Array(100).map((_, i) => i);
    const s2 = aead.seal(nonce, datagram.subarray(3, 10), datagram.subarray(10, 60));
    const carrier = new Uint8Array(s2.length + 7);
    carrier.set(s2, 7);
    expect(aead.open(nonce, datagram.subarray(3, 10), carrier.subarray(7))).toEqual(
      datagram.subarray(10, 60),
    );
  });

  it("rejects a wrong key or nonce length", () => {
    expect(() => p.aead("aes-128-gcm", new Uint8Array(32))).toThrow(RangeError);
    expect(() => p.aead("chacha20-poly1305", new Uint8Array(16))).toThrow(RangeError);
    const aead = p.aead("aes-256-gcm", new Uint8Array(32));
    expect(() => aead.seal(new Uint8Array(8), new Uint8Array(0), new Uint8Array(1))).toThrow(RangeError);
  });
});

describe.each(PAIRS)("AEAD cross-provider (%s)", (_name, a, b) => {
  it("random key/nonce/aad/plaintext sealed by one opens with the other", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ALGS),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 1500 }),
        (alg, key32, nonce, aad, pt) => {
          const key = key32.subarray(0, keyLen(alg));
          const sealed = a.aead(alg, key).seal(nonce, aad, pt);
          expect(sealed.length).toBe(pt.length + 16);
          expect(b.aead(alg, key).open(nonce, aad, sealed)).toEqual(pt);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("AEAD node and noble produce identical bytes", () => {
  it("on random inputs", () => {
    fc.assert(
      fc.property(fc.constantFrom(...ALGS), fc.uint8Array({ maxLength: 300 }), (alg, pt) => {
        const key = new Uint8Array(keyLen(alg)).fill(pt.length & 0xff);
        const nonce = new Uint8Array(12).fill(7);
        expect(nodeProvider.aead(alg, key).seal(nonce, pt.subarray(0, 5), pt)).toEqual(
          nobleProvider.aead(alg, key).seal(nonce, pt.subarray(0, 5), pt),
        );
      }),
      { numRuns: 50 },
    );
  });
});
