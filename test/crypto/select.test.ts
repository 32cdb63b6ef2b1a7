/** Provider selection: `getCryptoProvider`, the `auto` provider's per-group choices, and SeededRng. */
import { afterEach, describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import { SeededRng } from "../../src/crypto/random.js";
import {
  autoProvider,
  createAutoProvider,
  describeCryptoChoice,
  getCryptoProvider,
  measureOpsPerSec,
  PRIMITIVE_GROUPS,
} from "../../src/crypto/select.js";
import { fromHex, toHex } from "../../src/util/bytes.js";
import { rsaKey } from "./providers.js";

describe("getCryptoProvider", () => {
  const saved = process.env.MQUICTT_CRYPTO;
  afterEach(() => {
    if (saved === undefined) delete process.env.MQUICTT_CRYPTO;
    else process.env.MQUICTT_CRYPTO = saved;
  });

  it("returns the provider asked for", () => {
    expect(getCryptoProvider("noble")).toBe(nobleProvider);
    expect(getCryptoProvider("node")).toBe(nodeProvider);
    expect(getCryptoProvider("auto")).toBe(autoProvider());
    expect(getCryptoProvider("auto").name).toBe("auto");
  });

  it("defaults to MQUICTT_CRYPTO, else auto", () => {
    process.env.MQUICTT_CRYPTO = "noble";
    expect(getCryptoProvider()).toBe(nobleProvider);
    process.env.MQUICTT_CRYPTO = " Node ";
    expect(getCryptoProvider()).toBe(nodeProvider);
    delete process.env.MQUICTT_CRYPTO;
    expect(getCryptoProvider()).toBe(autoProvider());
  });

  it("names the valid values when MQUICTT_CRYPTO is wrong", () => {
    process.env.MQUICTT_CRYPTO = "openssl";
    expect(() => getCryptoProvider()).toThrow(/expected noble, node or auto/);
  });
});

describe("auto provider", () => {
  it("measures a group lazily, once", () => {
    const auto = createAutoProvider({ budgetMs: 0.5 });
    const before = auto.describe({ measure: false });
    expect(before.every((r) => r.chosen === null)).toBe(true);
    auto.aead("aes-128-gcm", new Uint8Array(16));
    const row = auto.describe({ measure: false }).find((r) => r.primitive === "aead:aes-128-gcm");
    expect(row?.chosen).toMatch(/^(noble|node)$/);
    expect(row?.nobleOpsPerSec).toBeGreaterThan(0);
    expect(row?.nodeOpsPerSec).toBeGreaterThan(0);
    expect(row?.chosen).toBe((row?.nobleOpsPerSec ?? 0) > (row?.nodeOpsPerSec ?? 0) ? "noble" : "node");
    auto.aead("aes-128-gcm", new Uint8Array(16));
    const again = auto.describe({ measure: false }).find((r) => r.primitive === "aead:aes-128-gcm");
    expect(again).toEqual(row);
    expect(auto.describe({ measure: false }).filter((r) => r.chosen !== null)).toHaveLength(1);
  });

  it("describe() measures every synthetic group; sign/verify wait for real use", () => {
    const rows = createAutoProvider({ budgetMs: 0.3 }).describe();
    expect(rows.map((r) => r.primitive)).toEqual(PRIMITIVE_GROUPS);
    for (const r of rows) {
      if (r.primitive.startsWith("sign:") || r.primitive.startsWith("verify:")) expect(r.chosen).toBeNull();
      else expect(r.chosen).not.toBeNull();
    }
  });

  it("sign and verify are measured on their first real call", () => {
    const auto = createAutoProvider({ budgetMs: 0.3 });
    const { priv, pub } = rsaKey();
    const msg = fromHex("0102");
    const sig = auto.sign("rsa_pss_rsae_sha256", priv, msg, new SeededRng(1));
    expect(auto.verify("rsa_pss_rsae_sha256", pub, msg, sig)).toBe(true);
    const rows = auto.describe({ measure: false });
    expect(rows.find((r) => r.primitive === "sign:rsa_pss_rsae_sha256")?.chosen).not.toBeNull();
    expect(rows.find((r) => r.primitive === "verify:rsa_pss_rsae_sha256")?.chosen).not.toBeNull();
  });

  it("forced choices skip measurement", () => {
    const auto = createAutoProvider({ force: { hash: "noble", "keyshare:x25519": "node" } });
    expect(toHex(auto.hash("sha256", new Uint8Array(0)))).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    auto.generateKeyShare("x25519", new SeededRng(1));
    const rows = auto.describe({ measure: false });
    expect(rows.find((r) => r.primitive === "hash")).toEqual({
      primitive: "hash",
      chosen: "noble",
      nobleOpsPerSec: null,
      nodeOpsPerSec: null,
    });
    expect(rows.find((r) => r.primitive === "keyshare:x25519")?.chosen).toBe("node");
  });

  it("sign draws exactly 32 bytes from the caller's Rng, whichever provider signs", () => {
    const { priv } = rsaKey();
    for (const forced of ["noble", "node"] as const) {
      const auto = createAutoProvider({ force: { "sign:rsa_pss_rsae_sha256": forced } });
      const rng = new SeededRng(5);
      auto.sign("rsa_pss_rsae_sha256", priv, fromHex("00"), rng);
      const expected = new SeededRng(5);
      expected.fill(new Uint8Array(32));
      expect(rng.nextU32()).toBe(expected.nextU32());
    }
  });

  it("describeCryptoChoice() reports the shared auto provider", () => {
    const rows = describeCryptoChoice();
    expect(rows).toHaveLength(PRIMITIVE_GROUPS.length);
    expect(rows.find((r) => r.primitive === "aead:aes-256-gcm")?.chosen).not.toBeNull();
  });

  it("measureOpsPerSec judges a slow op on its second (warm) call", () => {
    let calls = 0;
    const ops = measureOpsPerSec(() => {
      calls++;
      const end = performance.now() + 3;
      while (performance.now() < end) {
        // spin
      }
    }, 1);
    expect(calls).toBe(2);
    expect(ops).toBeGreaterThan(0);
    expect(ops).toBeLessThan(400);
  });

  it("a first call that fails in both providers does not fix the choice", () => {
    const auto = createAutoProvider({ budgetMs: 0.3 });
    // An ed25519 key under the ECDSA scheme: both throw, so the call throws, as the provider would.
    const edKey = { kind: "ed25519", seed: new Uint8Array(32), key: new Uint8Array(32) } as const;
    expect(() => auto.sign("ecdsa_secp256r1_sha256", edKey, fromHex("00"), new SeededRng(1))).toThrow();
    const row = () =>
      auto.describe({ measure: false }).find((r) => r.primitive === "sign:ecdsa_secp256r1_sha256");
    expect(row()?.chosen).toBeNull(); // a failed first call decides nothing
    const rsa = rsaKey();
    auto.sign("rsa_pss_rsae_sha256", rsa.priv, fromHex("00"), new SeededRng(1));
    const pss = auto.describe({ measure: false }).find((r) => r.primitive === "sign:rsa_pss_rsae_sha256");
    expect(pss?.chosen).not.toBeNull();
  });
});

describe("SeededRng", () => {
  it("is deterministic per seed and differs across seeds", () => {
    const a = new SeededRng(1234).fill(new Uint8Array(37));
    const b = new SeededRng(1234).fill(new Uint8Array(37));
    const c = new SeededRng(1235).fill(new Uint8Array(37));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(new SeededRng(1234).seed).toBe(1234);
  });

  it("produces floats in [0, 1)", () => {
    const r = new SeededRng(9);
    for (let i = 0; i < 1000; i++) {
      const x = r.next();
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
  });
});
