/** Quick sanity checks of the noble provider (the full suites run over every provider). */
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { nobleProvider as p } from "../../src/crypto/noble.js";
import type { PrivateKey, PublicKey } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import { fromHex, toHex } from "../../src/util/bytes.js";

const b64u = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? "", "base64url"));

describe("noble provider sanity", () => {
  it("HKDF RFC 5869 A.1", () => {
    const prk = p.hkdfExtract("sha256", fromHex("000102030405060708090a0b0c"), new Uint8Array(22).fill(0x0b));
    expect(toHex(prk)).toBe("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    expect(toHex(p.hkdfExpand("sha256", prk, fromHex("f0f1f2f3f4f5f6f7f8f9"), 42))).toBe(
      "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    );
  });

  it("header protection RFC 9001 A.2 and A.5", () => {
    const aes = p.headerProtection("aes-128-gcm", fromHex("9f50449e04a0e810283a1e9933adedd2"));
    expect(toHex(aes.mask(fromHex("d1b1c98dd7689fb8ec11d242b123dc9b")))).toBe("437b9aec36");
    const cc = p.headerProtection(
      "chacha20-poly1305",
      fromHex("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"),
    );
    expect(toHex(cc.mask(fromHex("5e5cd55c41f69080575d7999c25a5bfb")))).toBe("aefefe7d03");
  });

  it("AEAD round trip and tamper", () => {
    for (const alg of ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"] as const) {
      const a = p.aead(alg, new Uint8Array(alg === "aes-128-gcm" ? 16 : 32).fill(7));
      const n = new Uint8Array(12).fill(1);
      const ct = a.seal(n, fromHex("aa"), fromHex("0102030405"));
      expect(a.open(n, fromHex("aa"), ct)).toEqual(fromHex("0102030405"));
      ct[0] ^= 1;
      expect(a.open(n, fromHex("aa"), ct)).toBeNull();
    }
  });

  it("X25519 RFC 7748 §6.1", () => {
    const alice = p.keyShareFromPrivate(
      "x25519",
      fromHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    );
    expect(toHex(alice.publicKey)).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    const bob = fromHex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    expect(toHex(alice.sharedSecret(bob))).toBe(
      "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
    );
  });

  it("P-256 agreement", () => {
    const rng = new SeededRng(1);
    const a = p.generateKeyShare("secp256r1", rng);
    const b = p.generateKeyShare("secp256r1", rng);
    expect(a.publicKey.length).toBe(65);
    expect(a.sharedSecret(b.publicKey)).toEqual(b.sharedSecret(a.publicKey));
  });

  it("Ed25519 RFC 8032 TEST 1", () => {
    const seed = fromHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    const key = fromHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    const sig = p.sign("ed25519", { kind: "ed25519", seed, key }, new Uint8Array(0), new SeededRng(1));
    expect(toHex(sig)).toBe(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    expect(p.verify("ed25519", { kind: "ed25519", key }, new Uint8Array(0), sig)).toBe(true);
  });

  it("ECDSA and RSA round trips", () => {
    const rng = new SeededRng(2);
    const ks = p.generateKeyShare("secp256r1", rng);
    const msg = fromHex("48656c6c6f");
    const kp = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwk = kp.privateKey.export({ format: "jwk" });
    const point = new Uint8Array([4, ...b64u(jwk.x), ...b64u(jwk.y)]);
    const ecPriv: PrivateKey = { kind: "ec-p256", d: b64u(jwk.d), point };
    const sig = p.sign("ecdsa_secp256r1_sha256", ecPriv, msg, rng);
    expect(p.verify("ecdsa_secp256r1_sha256", { kind: "ec-p256", point }, msg, sig)).toBe(true);
    expect(ks.publicKey.length).toBe(65);

    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
    const priv: PrivateKey = {
      kind: "rsa",
      n: b64u(rsa.n),
      e: b64u(rsa.e),
      d: b64u(rsa.d),
      p: b64u(rsa.p),
      q: b64u(rsa.q),
      dp: b64u(rsa.dp),
      dq: b64u(rsa.dq),
      qi: b64u(rsa.qi),
    };
    const pub: PublicKey = { kind: "rsa", n: priv.n, e: priv.e };
    for (const scheme of ["rsa_pss_rsae_sha256", "rsa_pkcs1_sha256"] as const) {
      const s = p.sign(scheme, priv, msg, rng);
      expect(p.verify(scheme, pub, msg, s)).toBe(true);
      expect(p.verify(scheme, pub, fromHex("48656c6c6e"), s)).toBe(false);
    }
  });
});
