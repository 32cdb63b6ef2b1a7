/** Hashes, HMAC and HKDF over every provider: RFC 5869 Appendix A and cross-provider agreement. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import { fromHex, toHex } from "../../src/util/bytes.js";
import { PROVIDERS } from "./providers.js";

const range = (from: number, to: number): Uint8Array =>
  Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** RFC 5869 Appendix A.1–A.3 (the SHA-256 cases). */
const RFC5869 = [
  {
    name: "A.1 basic",
    ikm: new Uint8Array(22).fill(0x0b),
    salt: range(0x00, 0x0c),
    info: range(0xf0, 0xf9),
    length: 42,
    prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
    okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
  },
  {
    name: "A.2 longer inputs/outputs",
    ikm: range(0x00, 0x4f),
    salt: range(0x60, 0xaf),
    info: range(0xb0, 0xff),
    length: 82,
    prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
    okm:
      "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c" +
      "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71" +
      "cc30c58179ec3e87c14c01d5c1f3434f1d87",
  },
  {
    name: "A.3 zero-length salt/info",
    ikm: new Uint8Array(22).fill(0x0b),
    salt: new Uint8Array(0),
    info: new Uint8Array(0),
    length: 42,
    prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
    okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
  },
];

describe.each(PROVIDERS)("hash/HMAC/HKDF (%s)", (_name, p) => {
  it.each(RFC5869)("RFC 5869 $name", (v) => {
    const prk = p.hkdfExtract("sha256", v.salt, v.ikm);
    expect(toHex(prk)).toBe(v.prk);
    expect(toHex(p.hkdfExpand("sha256", prk, v.info, v.length))).toBe(v.okm);
  });

  it("SHA-256 and SHA-384 of 'abc' (FIPS 180-4 examples)", () => {
    const abc = new TextEncoder().encode("abc");
    expect(toHex(p.hash("sha256", abc))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(toHex(p.hash("sha384", abc))).toBe(
      "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
    );
  });

  it("HMAC-SHA-256 RFC 4231 test case 2", () => {
    const mac = p.hmac(
      "sha256",
      new TextEncoder().encode("Jefe"),
      new TextEncoder().encode("what do ya want for nothing?"),
    );
    expect(toHex(mac)).toBe("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });

  it("HMAC RFC 4231 test case 6: a key longer than the block is hashed first", () => {
    const key = new Uint8Array(131).fill(0xaa);
    const data = new TextEncoder().encode("Test Using Larger Than Block-Size Key - Hash Key First");
    expect(toHex(p.hmac("sha256", key, data))).toBe(
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    );
    expect(toHex(p.hmac("sha384", key, data))).toBe(
      "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
    );
  });

  it("HMAC keys of exactly one block and one byte more agree with the reference", () => {
    for (const alg of ["sha256", "sha384"] as const) {
      for (const n of [0, 63, 64, 65, 127, 128, 129]) {
        const key = Uint8Array.from({ length: n }, (_, i) => i * 7);
        const data = Uint8Array.from({ length: 50 }, (_, i) => i);
        expect(p.hmac(alg, key, data)).toEqual(nobleProvider.hmac(alg, key, data));
      }
    }
  });

  it("incremental hash: digest() does not end the hash", () => {
    for (const alg of ["sha256", "sha384"] as const) {
      const h = p.createHash(alg);
      h.update(fromHex("0102"));
      expect(h.digest()).toEqual(p.hash(alg, fromHex("0102")));
      h.update(fromHex("03"));
      expect(h.digest()).toEqual(p.hash(alg, fromHex("010203")));
      expect(h.digest()).toEqual(p.hash(alg, fromHex("010203")));
    }
  });

  it("HKDF-Expand rejects lengths beyond 255 * HashLen", () => {
    expect(() => p.hkdfExpand("sha256", new Uint8Array(32), new Uint8Array(0), 255 * 32 + 1)).toThrow();
  });

  it("returns plain Uint8Arrays", () => {
    expect(p.hash("sha256", new Uint8Array(1)).constructor).toBe(Uint8Array);
  });
});

describe("hash/HMAC/HKDF agree between noble and node", () => {
  const bytes = (max: number) => fc.uint8Array({ maxLength: max });
  it("SHA-256/384, HMAC and HKDF-SHA384/SHA256 on random inputs", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("sha256" as const, "sha384" as const),
        bytes(300),
        bytes(200),
        bytes(100),
        fc.integer({ min: 0, max: 400 }),
        (alg, a, b, c, length) => {
          expect(nodeProvider.hash(alg, a)).toEqual(nobleProvider.hash(alg, a));
          expect(nodeProvider.hmac(alg, b, a)).toEqual(nobleProvider.hmac(alg, b, a));
          const prk = nobleProvider.hkdfExtract(alg, b, a);
          expect(nodeProvider.hkdfExtract(alg, b, a)).toEqual(prk);
          expect(nodeProvider.hkdfExpand(alg, prk, c, length)).toEqual(
            nobleProvider.hkdfExpand(alg, prk, c, length),
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});
