/**
 * Bulk stream transfer over lossy, reordering, jittery links (RFC 9002 loss recovery and
 * NewReno; RFC 9000 §2.2 in-order stream delivery): every byte arrives intact.
 */
import { describe, expect, it } from "vitest";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, makeData, provider, sha256, Transfer } from "./helpers.js";

const MB = 1 << 20;

describe("bulk transfer under loss", () => {
  it("moves 10 MB intact over 10% random loss in both directions", () =>
    withSeed(21, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10, loss: 0.1 } });
      expect(p.handshake(30_000)).toBe(true);
      const start = p.net.now;
      const data = makeData(10 * MB, seed);
      const t = new Transfer(p, data);
      expect(t.run(600_000)).toBe(true);
      expect(t.received).toBe(data.length);
      expect(t.receivedHash()).toBe(sha256(data));
      const elapsed = p.net.now - start;
      const sent = p.net.sent.get("client>server")!;
      // NewReno at 10% loss and a 20 ms RTT: a few hundred kB/s of virtual time, not minutes.
      expect(elapsed).toBeLessThan(120_000);
      // Retransmissions stay proportionate: under 1.5x the payload on the wire.
      expect(sent.bytes).toBeLessThan(1.5 * data.length);
      expect(p.clientConn.stats.packetsLost).toBeGreaterThan(0);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));

  it("moves 10 MB intact over 1% loss with reordering and jitter", () =>
    withSeed(22, (seed) => {
      const p = new Pair(provider, {
        seed,
        link: { latency: 20, jitter: 5, loss: 0.01, reorder: 0.05, reorderDelay: 15 },
      });
      expect(p.handshake(30_000)).toBe(true);
      const start = p.net.now;
      const data = makeData(10 * MB, seed);
      const t = new Transfer(p, data);
      expect(t.run(600_000)).toBe(true);
      expect(t.received).toBe(data.length);
      expect(t.receivedHash()).toBe(sha256(data));
      // Jitter reorders back-to-back packets, so the packet threshold (RFC 9002 §6.1.1) also
      // declares some spurious losses; NewReno still moves well over 100 kB/s.
      expect(p.net.now - start).toBeLessThan(150_000);
      expect(p.clientConn.stats.packetsLost).toBeGreaterThan(0);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));
});
