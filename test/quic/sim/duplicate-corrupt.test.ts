/**
 * Duplicated and corrupted datagrams are dropped without harm: duplicates by packet number
 * (RFC 9000 §12.3), corrupted ones by AEAD authentication (RFC 9001 §5.3) or header checks,
 * never as a connection error.
 */
import { describe, expect, it } from "vitest";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, makeData, provider, sha256, Transfer } from "./helpers.js";

describe("duplicated and corrupted packets", () => {
  for (const seed0 of [31, 32, 33]) {
    it(`completes a 2 MB transfer intact with 20% duplicates and 5% corruption (seed ${seed0})`, () =>
      withSeed(seed0, (seed) => {
        const p = new Pair(provider, { seed, link: { latency: 10, duplicate: 0.2, corrupt: 0.05 } });
        p.net.traceEnabled = true;
        expect(p.handshake(30_000)).toBe(true);
        const data = makeData(2 << 20, seed);
        const t = new Transfer(p, data);
        expect(t.run(120_000)).toBe(true);
        expect(t.receivedHash()).toBe(sha256(data));
        const fates = (f: string) => p.net.trace.filter((d) => d.fate === f).length;
        expect(fates("duplicated")).toBeGreaterThan(100);
        expect(fates("corrupted")).toBeGreaterThan(20);
        // Duplicates and forgeries were dropped at both ends, not acted upon.
        const dropped = p.clientConn.stats.packetsDropped + p.serverConn!.stats.packetsDropped;
        expect(dropped).toBeGreaterThan(fates("duplicated") / 2);
        expect(closedInfo(p.clientEvents)).toBeUndefined();
        expect(closedInfo(p.serverEvents)).toBeUndefined();
        expect(p.clientConn.isEstablished).toBe(true);
        expect(p.serverConn!.isEstablished).toBe(true);
      }));
  }

  it("completes the handshake itself with 20% duplicates and 5% corruption", () =>
    withSeed(34, (seed) => {
      for (let s = seed; s < seed + 10; s++) {
        const p = new Pair(provider, { seed: s, link: { latency: 10, duplicate: 0.2, corrupt: 0.05 } });
        expect(p.handshake(30_000), `seed ${s}`).toBe(true);
        expect(closedInfo(p.clientEvents), `seed ${s}`).toBeUndefined();
        expect(closedInfo(p.serverEvents), `seed ${s}`).toBeUndefined();
      }
    }));
});
