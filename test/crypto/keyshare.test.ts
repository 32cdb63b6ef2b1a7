/** (EC)DHE key shares over every provider: RFC 7748 §6.1, P-256 agreement, invalid shares (RFC 8446 §7.4.2). */
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import { InvalidKeyShareError, type NamedGroup } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import { fromHex, toHex } from "../../src/util/bytes.js";
import { PAIRS, PROVIDERS } from "./providers.js";

const ALICE_PRIV = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const BOB_PRIV = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

/** The P-256 generator G, uncompressed (SEC 2 §2.4.2): a valid point. */
const P256_G =
  "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" +
  "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

/** Low-order Curve25519 points, whose shared secret is all zero: u = 0, u = 1, and a point of order 8. */
const X25519_LOW_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
];

const GROUPS: NamedGroup[] = ["x25519", "secp256r1"];

describe.each(PROVIDERS)("key shares (%s)", (_name, p) => {
  it("RFC 7748 §6.1 X25519: public keys and shared secret", () => {
    const alice = p.keyShareFromPrivate("x25519", fromHex(ALICE_PRIV));
    const bob = p.keyShareFromPrivate("x25519", fromHex(BOB_PRIV));
    expect(toHex(alice.publicKey)).toBe(ALICE_PUB);
    expect(toHex(bob.publicKey)).toBe(BOB_PUB);
    expect(toHex(alice.sharedSecret(fromHex(BOB_PUB)))).toBe(SHARED);
    expect(toHex(bob.sharedSecret(fromHex(ALICE_PUB)))).toBe(SHARED);
  });

  it("P-256: a scalar of 1 gives the generator", () => {
    const one = new Uint8Array(32);
    one[31] = 1;
    expect(toHex(p.keyShareFromPrivate("secp256r1", one).publicKey)).toBe(P256_G);
  });

  it.each(GROUPS)("%s: key shares from the same seed are identical", (group) => {
    const a = p.generateKeyShare(group, new SeededRng(42));
    const b = p.generateKeyShare(group, new SeededRng(42));
    expect(a.publicKey).toEqual(b.publicKey);
    expect(a.publicKey.length).toBe(group === "x25519" ? 32 : 65);
  });

  it("invalid x25519 shares throw InvalidKeyShareError", () => {
    const ks = p.generateKeyShare("x25519", new SeededRng(1));
    for (const low of X25519_LOW_ORDER) {
      expect(() => ks.sharedSecret(fromHex(low))).toThrow(InvalidKeyShareError);
    }
    expect(() => ks.sharedSecret(new Uint8Array(31))).toThrow(InvalidKeyShareError);
    expect(() => ks.sharedSecret(new Uint8Array(33).fill(9))).toThrow(InvalidKeyShareError);
  });

  it("invalid secp256r1 shares throw InvalidKeyShareError", () => {
    const ks = p.generateKeyShare("secp256r1", new SeededRng(1));
    const offCurve = fromHex(P256_G);
    offCurve[64] ^= 1;
    expect(() => ks.sharedSecret(offCurve)).toThrow(InvalidKeyShareError);
    expect(() => ks.sharedSecret(new Uint8Array(65))).toThrow(InvalidKeyShareError); // no 0x04 prefix
    const zeroPoint = new Uint8Array(65);
    zeroPoint[0] = 4;
    expect(() => ks.sharedSecret(zeroPoint)).toThrow(InvalidKeyShareError);
    expect(() => ks.sharedSecret(fromHex(P256_G).subarray(0, 33))).toThrow(InvalidKeyShareError); // compressed-size
    expect(() => ks.sharedSecret(new Uint8Array(64))).toThrow(InvalidKeyShareError);
    const valid = ks.sharedSecret(fromHex(P256_G));
    expect(valid).toEqual(ks.publicKey.subarray(1, 33)); // d*G has x = our public key's x
  });

  it("an out-of-range P-256 private key is refused", () => {
    expect(() => p.keyShareFromPrivate("secp256r1", new Uint8Array(32))).toThrow(RangeError);
    expect(() => p.keyShareFromPrivate("secp256r1", new Uint8Array(32).fill(0xff))).toThrow(RangeError);
  });
});

describe.each(PAIRS)("key agreement across providers (%s)", (_name, a, b) => {
  it.each(GROUPS)("%s: both sides derive the same secret", (group) => {
    const rng = new SeededRng(7);
    for (let i = 0; i < 5; i++) {
      const ours = a.generateKeyShare(group, rng);
      const theirs = b.generateKeyShare(group, rng);
      const s1 = ours.sharedSecret(theirs.publicKey);
      expect(s1.length).toBe(32);
      expect(theirs.sharedSecret(ours.publicKey)).toEqual(s1);
    }
  });

  it.each(GROUPS)("%s: the same private key gives the same public key", (group) => {
    expect(a.generateKeyShare(group, new SeededRng(9)).publicKey).toEqual(
      b.generateKeyShare(group, new SeededRng(9)).publicKey,
    );
  });
});

describe("rng use is identical across providers", () => {
  it("generateKeyShare draws the same bytes from the Rng", () => {
    for (const group of GROUPS) {
      const r1 = new SeededRng(3);
      const r2 = new SeededRng(3);
      nobleProvider.generateKeyShare(group, r1);
      nodeProvider.generateKeyShare(group, r2);
      expect(r1.nextU32()).toBe(r2.nextU32());
    }
  });
});

describe("x25519 edge encodings agree across providers (RFC 7748 §5)", () => {
  it("the high bit of u is masked, and u >= p is reduced, identically", () => {
    const rng = new SeededRng(21);
    const priv = rng.fill(new Uint8Array(32));
    const highBit = rng.fill(new Uint8Array(32));
    highBit[31] |= 0x80;
    // u = p + 9, little-endian: not canonical, equivalent to the base point 9.
    const nonCanonical = fromHex("eaffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    for (const peer of [highBit, nonCanonical]) {
      expect(nodeProvider.keyShareFromPrivate("x25519", priv).sharedSecret(peer)).toEqual(
        nobleProvider.keyShareFromPrivate("x25519", priv).sharedSecret(peer),
      );
    }
  });
});
