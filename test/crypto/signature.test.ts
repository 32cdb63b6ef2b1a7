/**
 * Signatures over every provider: RFC 8032 §7.1 Ed25519 vectors, ECDSA P-256 and RSA
 * (PSS and PKCS#1 v1.5) signed by one implementation and verified by the other, high-S ECDSA,
 * and tampering (a bad signature gives false, never a throw).
 */
import { createPrivateKey, generateKeyPairSync, sign as nodeSign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import type { CryptoProvider, PrivateKey, PublicKey, SignatureScheme } from "../../src/crypto/provider.js";
import { UnsupportedAlgorithmError } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import { fromHex, toHex } from "../../src/util/bytes.js";
import { PAIRS, PROVIDERS, rsaKey } from "./providers.js";

/** RFC 8032 §7.1 TEST 1–3. */
const ED25519 = [
  {
    name: "TEST 1",
    seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    pub: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    msg: "",
    sig: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2",
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    pub: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    msg: "72",
    sig: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3",
    seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    pub: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    msg: "af82",
    sig: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
];

const P256_N = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");

/** An ECDSA P-256 key from a fixed scalar; the public point is computed by the noble key share. */
function ecKey(seed: number): { priv: PrivateKey; pub: PublicKey } {
  const d = new SeededRng(seed).fill(new Uint8Array(32));
  d[0] &= 0x7f; // below n
  const point = nobleProvider.keyShareFromPrivate("secp256r1", d).publicKey;
  return { priv: { kind: "ec-p256", d, point }, pub: { kind: "ec-p256", point } };
}

function edKey(seedHex: string, pubHex: string): { priv: PrivateKey; pub: PublicKey } {
  const key = fromHex(pubHex);
  return { priv: { kind: "ed25519", seed: fromHex(seedHex), key }, pub: { kind: "ed25519", key } };
}

// Minimal DER for Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3).
function derInts(sig: Uint8Array): [bigint, bigint] {
  let pos = 2;
  const readInt = (): bigint => {
    const len = sig[pos + 1];
    const v = BigInt(`0x${toHex(sig.subarray(pos + 2, pos + 2 + len))}`);
    pos += 2 + len;
    return v;
  };
  return [readInt(), readInt()];
}

function derEncode(r: bigint, s: bigint): Uint8Array {
  const int = (x: bigint): number[] => {
    let hex = x.toString(16);
    if (hex.length % 2) hex = `0${hex}`;
    const bytes = Array.from(fromHex(hex));
    if (bytes[0] & 0x80) bytes.unshift(0);
    return [0x02, bytes.length, ...bytes];
  };
  const body = [...int(r), ...int(s)];
  return Uint8Array.from([0x30, body.length, ...body]);
}

const MSG = new TextEncoder().encode("TLS 1.3, server CertificateVerify");

describe.each(PROVIDERS)("signatures (%s)", (_name, p: CryptoProvider) => {
  it.each(ED25519)("Ed25519 RFC 8032 §7.1 $name: exact signature, verifies", (v) => {
    const { priv, pub } = edKey(v.seed, v.pub);
    const sig = p.sign("ed25519", priv, fromHex(v.msg), new SeededRng(1));
    expect(toHex(sig)).toBe(v.sig);
    expect(p.verify("ed25519", pub, fromHex(v.msg), sig)).toBe(true);
    expect(p.verify("ed25519", pub, fromHex(`${v.msg}00`), sig)).toBe(false);
  });

  it("ECDSA P-256: sign and verify, DER encoded", () => {
    const { priv, pub } = ecKey(1);
    const sig = p.sign("ecdsa_secp256r1_sha256", priv, MSG, new SeededRng(2));
    expect(sig[0]).toBe(0x30);
    expect(p.verify("ecdsa_secp256r1_sha256", pub, MSG, sig)).toBe(true);
  });

  it("ECDSA P-256: the high-S twin of a valid signature still verifies", () => {
    const { priv, pub } = ecKey(3);
    const sig = p.sign("ecdsa_secp256r1_sha256", priv, MSG, new SeededRng(4));
    const [r, s] = derInts(sig);
    const lowS = s > P256_N / 2n ? P256_N - s : s;
    const highS = P256_N - lowS;
    expect(p.verify("ecdsa_secp256r1_sha256", pub, MSG, derEncode(r, lowS))).toBe(true);
    expect(p.verify("ecdsa_secp256r1_sha256", pub, MSG, derEncode(r, highS))).toBe(true);
  });

  it("ECDSA P-256: verifies an OpenSSL signature", () => {
    const { priv, pub } = ecKey(5);
    if (priv.kind !== "ec-p256") throw new Error("unreachable");
    const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64url");
    const ko = createPrivateKey({
      key: {
        kty: "EC",
        crv: "P-256",
        d: b64(priv.d),
        x: b64(priv.point.subarray(1, 33)),
        y: b64(priv.point.subarray(33)),
      },
      format: "jwk",
    });
    for (let i = 0; i < 8; i++) {
      const sig = nodeSign("sha256", MSG, { key: ko, dsaEncoding: "der" });
      expect(p.verify("ecdsa_secp256r1_sha256", pub, MSG, sig)).toBe(true);
    }
  });

  it.each(["rsa_pss_rsae_sha256", "rsa_pkcs1_sha256"] as const)("%s: sign and verify", (scheme) => {
    const { priv, pub } = rsaKey();
    const sig = p.sign(scheme, priv, MSG, new SeededRng(5));
    expect(sig.length).toBe(256);
    expect(p.verify(scheme, pub, MSG, sig)).toBe(true);
  });

  it("RSA-PKCS#1 v1.5 signatures are deterministic", () => {
    const { priv } = rsaKey();
    expect(p.sign("rsa_pkcs1_sha256", priv, MSG, new SeededRng(1))).toEqual(
      p.sign("rsa_pkcs1_sha256", priv, MSG, new SeededRng(2)),
    );
  });

  it("a tampered message or signature, a wrong key or scheme, or garbage gives false, never a throw", () => {
    const ec = ecKey(6);
    const ed = edKey(ED25519[1].seed, ED25519[1].pub);
    const rsa = rsaKey();
    const cases: Array<[SignatureScheme, { priv: PrivateKey; pub: PublicKey }]> = [
      ["ecdsa_secp256r1_sha256", ec],
      ["ed25519", ed],
      ["rsa_pss_rsae_sha256", rsa],
      ["rsa_pkcs1_sha256", rsa],
    ];
    const other = ecKey(7).pub;
    for (const [scheme, key] of cases) {
      const sig = p.sign(scheme, key.priv, MSG, new SeededRng(8));
      const badMsg = MSG.slice();
      badMsg[0] ^= 1;
      expect(p.verify(scheme, key.pub, badMsg, sig)).toBe(false);
      for (const i of [0, 1, sig.length >> 1, sig.length - 1]) {
        const bad = sig.slice();
        bad[i] ^= 0x04;
        expect(p.verify(scheme, key.pub, MSG, bad)).toBe(false);
      }
      expect(p.verify(scheme, key.pub, MSG, sig.subarray(0, sig.length - 1))).toBe(false);
      expect(p.verify(scheme, key.pub, MSG, new Uint8Array(0))).toBe(false);
      expect(p.verify(scheme, key.pub, MSG, new Uint8Array(sig.length).fill(0xff))).toBe(false);
      expect(p.verify(scheme, other, MSG, sig)).toBe(false);
    }
    // Using one scheme's signature under another scheme.
    const pss = p.sign("rsa_pss_rsae_sha256", rsa.priv, MSG, new SeededRng(9));
    expect(p.verify("rsa_pkcs1_sha256", rsa.pub, MSG, pss)).toBe(false);
    // Malformed public keys.
    const sig = p.sign("ecdsa_secp256r1_sha256", ec.priv, MSG, new SeededRng(9));
    expect(p.verify("ecdsa_secp256r1_sha256", { kind: "ec-p256", point: new Uint8Array(65) }, MSG, sig)).toBe(
      false,
    );
    expect(p.verify("ed25519", { kind: "ed25519", key: new Uint8Array(31) }, MSG, new Uint8Array(64))).toBe(
      false,
    );
    expect(
      p.verify("rsa_pss_rsae_sha256", { kind: "rsa", n: new Uint8Array(0), e: fromHex("010001") }, MSG, pss),
    ).toBe(false);
  });

  it("signing with a key of the wrong kind throws UnsupportedAlgorithmError", () => {
    expect(() => p.sign("ed25519", ecKey(1).priv, MSG, new SeededRng(1))).toThrow(UnsupportedAlgorithmError);
  });
});

describe.each(PAIRS)("signatures across providers (%s)", (_name, signer, verifier) => {
  it.each(["ecdsa_secp256r1_sha256", "ed25519", "rsa_pss_rsae_sha256", "rsa_pkcs1_sha256"] as const)(
    "%s: signed by one, verified by the other",
    (scheme) => {
      const key =
        scheme === "ed25519"
          ? edKey(ED25519[2].seed, ED25519[2].pub)
          : scheme === "ecdsa_secp256r1_sha256"
            ? ecKey(11)
            : rsaKey();
      const rng = new SeededRng(12);
      for (let i = 0; i < 3; i++) {
        const msg = rng.fill(new Uint8Array(10 + i * 50));
        const sig = signer.sign(scheme, key.priv, msg, rng);
        expect(verifier.verify(scheme, key.pub, msg, sig)).toBe(true);
      }
    },
  );
});

describe("ECDSA signing in noble is hedged RFC 6979: deterministic for a given Rng", () => {
  it("same Rng seed, same signature; different seed, different signature", () => {
    const { priv } = ecKey(13);
    const s1 = nobleProvider.sign("ecdsa_secp256r1_sha256", priv, MSG, new SeededRng(1));
    const s2 = nobleProvider.sign("ecdsa_secp256r1_sha256", priv, MSG, new SeededRng(1));
    const s3 = nobleProvider.sign("ecdsa_secp256r1_sha256", priv, MSG, new SeededRng(2));
    expect(s1).toEqual(s2);
    expect(s1).not.toEqual(s3);
  });
});

describe("signature edge cases agree across providers", () => {
  it("ECDSA: DER with a trailing byte or a non-minimal integer is rejected by both", () => {
    const { priv, pub } = ecKey(21);
    const sig = nobleProvider.sign("ecdsa_secp256r1_sha256", priv, MSG, new SeededRng(1));
    const trailing = Uint8Array.from([...sig, 0]);
    const [r, s] = derInts(sig);
    const good = derEncode(r, s);
    const rLen = good[3];
    const nonMinimal = Uint8Array.from([0x30, good[1] + 1, 0x02, rLen + 1, 0, ...good.subarray(4)]);
    for (const [, p] of PROVIDERS) {
      expect(p.verify("ecdsa_secp256r1_sha256", pub, MSG, good)).toBe(true);
      expect(p.verify("ecdsa_secp256r1_sha256", pub, MSG, trailing)).toBe(false);
      expect(p.verify("ecdsa_secp256r1_sha256", pub, MSG, nonMinimal)).toBe(false);
    }
  });

  it("RSA with a 1025-bit modulus (PSS emLen = k - 1, RFC 8017 §8.1.2 step 2c)", () => {
    const jwk = generateKeyPairSync("rsa", { modulusLength: 1025 }).privateKey.export({ format: "jwk" });
    const b64u = (x: string | undefined): Uint8Array => new Uint8Array(Buffer.from(x ?? "", "base64url"));
    const priv: PrivateKey = {
      kind: "rsa",
      n: b64u(jwk.n),
      e: b64u(jwk.e),
      d: b64u(jwk.d),
      p: b64u(jwk.p),
      q: b64u(jwk.q),
      dp: b64u(jwk.dp),
      dq: b64u(jwk.dq),
      qi: b64u(jwk.qi),
    };
    const pub: PublicKey = { kind: "rsa", n: priv.n, e: priv.e };
    expect([priv.n.length, priv.n[0]]).toEqual([129, 1]); // modBits - 1 = 1024 is a multiple of 8
    for (const [, signer, verifier] of PAIRS) {
      for (const scheme of ["rsa_pss_rsae_sha256", "rsa_pkcs1_sha256"] as const) {
        const sig = signer.sign(scheme, priv, MSG, new SeededRng(2));
        expect(sig.length).toBe(129);
        expect(verifier.verify(scheme, pub, MSG, sig)).toBe(true);
      }
    }
  });
});
