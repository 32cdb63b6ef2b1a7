/**
 * Key schedule (RFC 8446 §7.1) for SHA-256 and SHA-384 against an independent HKDF written with
 * node:crypto's HMAC (the RFC 8448 traces only cover SHA-256), the transcript hash rules (§4.4.1),
 * the exporter (§7.5) and the server's session ticket sealing.
 */
import { createHash, createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { HashAlgorithm } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import {
  exportKeyingMaterial,
  finishedVerifyData,
  KeySchedule,
  nextApplicationTrafficSecret,
  resumptionPsk,
  Transcript,
  verifyFinished,
} from "../../src/tls/key-schedule.js";
import { TicketKeys, type TicketState } from "../../src/tls/ticket.js";
import { concat, toHex } from "../../src/util/bytes.js";
import { PROVIDERS } from "./providers.js";

// --- an independent oracle: RFC 5869 + RFC 8446 §7.1 over node:crypto HMAC -------------------------

const len = (h: HashAlgorithm): number => (h === "sha256" ? 32 : 48);
const H = (h: HashAlgorithm, d: Uint8Array): Uint8Array => new Uint8Array(createHash(h).update(d).digest());
const hmac = (h: HashAlgorithm, k: Uint8Array, d: Uint8Array): Uint8Array =>
  new Uint8Array(createHmac(h, k).update(d).digest());
const extract = (h: HashAlgorithm, salt: Uint8Array, ikm: Uint8Array) => hmac(h, salt, ikm);
function expand(h: HashAlgorithm, prk: Uint8Array, info: Uint8Array, n: number): Uint8Array {
  let t: Uint8Array = new Uint8Array(0);
  const out: number[] = [];
  for (let i = 1; out.length < n; i++) {
    t = hmac(h, prk, concat(t, info, new Uint8Array([i])));
    out.push(...t);
  }
  return new Uint8Array(out.slice(0, n));
}
function label(h: HashAlgorithm, secret: Uint8Array, l: string, ctx: Uint8Array, n: number): Uint8Array {
  const full = new TextEncoder().encode(`tls13 ${l}`);
  return expand(
    h,
    secret,
    concat(new Uint8Array([n >> 8, n & 0xff, full.length]), full, new Uint8Array([ctx.length]), ctx),
    n,
  );
}
const derive = (h: HashAlgorithm, s: Uint8Array, l: string, th: Uint8Array) => label(h, s, l, th, len(h));

describe.each(PROVIDERS)("key schedule (%s)", (_name, provider) => {
  for (const hash of ["sha256", "sha384"] as const) {
    it(`matches an independent derivation for ${hash}, with and without a PSK`, () => {
      fc.assert(
        fc.property(
          fc.option(fc.uint8Array({ minLength: len(hash), maxLength: len(hash) }), { nil: undefined }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: len(hash), maxLength: len(hash) }),
          fc.uint8Array({ minLength: 0, maxLength: 4 }),
          (psk, ecdhe, th, nonce) => {
            const zeros = new Uint8Array(len(hash));
            const early = extract(hash, zeros, psk ?? zeros);
            const empty = H(hash, new Uint8Array(0));
            const hs = extract(hash, derive(hash, early, "derived", empty), ecdhe);
            const ms = extract(hash, derive(hash, hs, "derived", empty), zeros);

            const ks = new KeySchedule(provider, hash, psk);
            expect(toHex(ks.earlySecret)).toBe(toHex(early));
            expect(toHex(ks.binderKey(true))).toBe(toHex(derive(hash, early, "res binder", empty)));
            expect(toHex(ks.binderKey(false))).toBe(toHex(derive(hash, early, "ext binder", empty)));
            expect(toHex(ks.clientEarlyTrafficSecret(th))).toBe(
              toHex(derive(hash, early, "c e traffic", th)),
            );
            expect(toHex(ks.earlyExporterMasterSecret(th))).toBe(
              toHex(derive(hash, early, "e exp master", th)),
            );
            expect(toHex(ks.deriveHandshakeSecret(ecdhe))).toBe(toHex(hs));
            expect(toHex(ks.clientHandshakeTrafficSecret(th))).toBe(
              toHex(derive(hash, hs, "c hs traffic", th)),
            );
            expect(toHex(ks.serverHandshakeTrafficSecret(th))).toBe(
              toHex(derive(hash, hs, "s hs traffic", th)),
            );
            expect(toHex(ks.deriveMasterSecret())).toBe(toHex(ms));
            expect(toHex(ks.clientApplicationTrafficSecret(th))).toBe(
              toHex(derive(hash, ms, "c ap traffic", th)),
            );
            expect(toHex(ks.serverApplicationTrafficSecret(th))).toBe(
              toHex(derive(hash, ms, "s ap traffic", th)),
            );
            expect(toHex(ks.exporterMasterSecret(th))).toBe(toHex(derive(hash, ms, "exp master", th)));
            const rms = ks.resumptionMasterSecret(th);
            expect(toHex(rms)).toBe(toHex(derive(hash, ms, "res master", th)));
            expect(toHex(resumptionPsk(provider, hash, rms, nonce))).toBe(
              toHex(label(hash, rms, "resumption", nonce, len(hash))),
            );
            const fk = label(hash, hs, "finished", new Uint8Array(0), len(hash));
            const vd = finishedVerifyData(provider, hash, hs, th);
            expect(toHex(vd)).toBe(toHex(hmac(hash, fk, th)));
            expect(verifyFinished(provider, hash, hs, th, vd)).toBe(true);
            const bad = vd.slice();
            bad[0] ^= 1;
            expect(verifyFinished(provider, hash, hs, th, bad)).toBe(false);
            expect(verifyFinished(provider, hash, hs, th, vd.subarray(1))).toBe(false);
            expect(toHex(nextApplicationTrafficSecret(provider, hash, rms))).toBe(
              toHex(label(hash, rms, "traffic upd", new Uint8Array(0), len(hash))),
            );
            const ctx = new Uint8Array([1, 2]);
            expect(toHex(exportKeyingMaterial(provider, hash, ms, "EXPORTER-x", ctx, 20))).toBe(
              toHex(label(hash, derive(hash, ms, "EXPORTER-x", empty), "exporter", H(hash, ctx), 20)),
            );
          },
        ),
        { numRuns: 20 },
      );
    });
  }

  it("psk_ke mode mixes zeros into the handshake secret", () => {
    const a = new KeySchedule(provider, "sha256", new Uint8Array(32).fill(1));
    const b = new KeySchedule(provider, "sha256", new Uint8Array(32).fill(1));
    expect(toHex(a.deriveHandshakeSecret(undefined))).toBe(
      toHex(b.deriveHandshakeSecret(new Uint8Array(32))),
    );
  });

  it("refuses to derive out of order", () => {
    const ks = new KeySchedule(provider, "sha256");
    expect(() => ks.clientHandshakeTrafficSecret(new Uint8Array(32))).toThrow();
    ks.deriveHandshakeSecret(new Uint8Array(32));
    expect(() => ks.clientApplicationTrafficSecret(new Uint8Array(32))).toThrow();
  });
});

describe.each(PROVIDERS)("transcript hash (%s)", (_name, provider) => {
  const m1 = new Uint8Array([1, 0, 0, 2, 9, 9]);
  const m2 = new Uint8Array([2, 0, 0, 1, 7]);
  const m3 = new Uint8Array([8, 0, 0, 0]);

  for (const hash of ["sha256", "sha384"] as const) {
    it(`hashes messages added before the hash was chosen (${hash})`, () => {
      const t = new Transcript(provider);
      t.update(m1);
      t.update(m2);
      t.setHash(hash);
      expect(toHex(t.digest())).toBe(toHex(H(hash, concat(m1, m2))));
      t.update(m3);
      expect(toHex(t.digest())).toBe(toHex(H(hash, concat(m1, m2, m3))));
      expect(toHex(t.digestWith(m1))).toBe(toHex(H(hash, concat(m1, m2, m3, m1))));
      expect(toHex(t.digest())).toBe(toHex(H(hash, concat(m1, m2, m3))));
    });

    it(`replaces ClientHello1 with message_hash after a HelloRetryRequest (${hash})`, () => {
      const t = new Transcript(provider, hash);
      t.update(m1);
      t.replaceWithMessageHash();
      t.update(m2);
      const synthetic = concat(new Uint8Array([254, 0, 0, len(hash)]), H(hash, m1));
      expect(toHex(t.digest())).toBe(toHex(H(hash, concat(synthetic, m2))));
      expect(toHex(t.digestWith(m3))).toBe(toHex(H(hash, concat(synthetic, m2, m3))));
    });
  }

  it("will not change its hash once chosen", () => {
    const t = new Transcript(provider, "sha256");
    t.setHash("sha256");
    expect(() => t.setHash("sha384")).toThrow();
    expect(() => new Transcript(provider).digest()).toThrow();
  });
});

describe.each(PROVIDERS)("session tickets (%s)", (_name, provider) => {
  const state: TicketState = {
    psk: new Uint8Array(32).fill(5),
    suite: 0x1302,
    alpn: "mqtt",
    serverName: "broker.example",
    issuedAt: 1_767_225_600_123,
    lifetime: 604800,
    ageAdd: 0xfedcba98,
    maxEarlyData: 0xffffffff,
    appData: new Uint8Array([1, 2, 3]),
  };

  it("seals and opens every field", () => {
    const keys = TicketKeys.generate(provider, new SeededRng(1));
    const ticket = keys.seal(state, new SeededRng(2));
    expect(keys.open(ticket)).toEqual(state);
    const bare = { ...state, alpn: undefined, serverName: undefined, appData: new Uint8Array(0) };
    expect(keys.open(keys.seal(bare, new SeededRng(3)))).toEqual(bare);
    expect(keys.open(keys.seal({ ...state, alpn: "" }, new SeededRng(3)))?.alpn).toBe("");
  });

  it("refuses another key's tickets, tampered tickets and garbage", () => {
    const keys = TicketKeys.generate(provider, new SeededRng(1));
    const other = TicketKeys.generate(provider, new SeededRng(9));
    const ticket = keys.seal(state, new SeededRng(2));
    expect(other.open(ticket)).toBeUndefined();
    fc.assert(
      fc.property(fc.nat(ticket.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const t = ticket.slice();
        t[at] ^= x;
        expect(keys.open(t)).toBeUndefined();
      }),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        expect(keys.open(b)).toBeUndefined();
      }),
      { numRuns: 200 },
    );
    expect(keys.open(ticket.subarray(0, ticket.length - 1))).toBeUndefined();
  });

  it("needs a 32-byte key", () => {
    expect(() => new TicketKeys(provider, new Uint8Array(16))).toThrow(RangeError);
  });
});
