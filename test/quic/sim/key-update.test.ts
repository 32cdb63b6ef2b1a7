/**
 * 1-RTT key updates (RFC 9001 §6): either side initiates with `initiateKeyUpdate()`, the peer
 * follows on seeing the toggled Key Phase bit, and data keeps flowing, reordered packets of the
 * previous phase included.
 */
import { describe, expect, it } from "vitest";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, drive, makeData, provider, sha256, Transfer } from "./helpers.js";

describe("key update", () => {
  it("is refused before the handshake is confirmed and until the current phase is acknowledged", () =>
    withSeed(81, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      expect(p.clientConn.initiateKeyUpdate()).toBe(false);
      expect(p.handshake(10_000)).toBe(true);
      p.run(() => false, 500);
      expect(p.clientConn.initiateKeyUpdate()).toBe(true);
      // Nothing sent with the new keys has been acknowledged yet (§6.1).
      expect(p.clientConn.initiateKeyUpdate()).toBe(false);
      expect(p.clientConn.stats.keyUpdates).toBe(1);
      // The server follows as soon as a packet with the new phase arrives.
      p.clientConn.ping();
      p.touch(p.clientConn);
      p.run(() => p.serverConn!.stats.keyUpdates === 1, 1_000);
      expect(p.serverConn!.stats.keyUpdates).toBe(1);
      // The old keys are kept three PTOs (§6.5): no new update before that.
      expect(p.serverConn!.initiateKeyUpdate()).toBe(false);
      p.run(() => false, 2_000);
      // Nor before one of its own ack-eliciting packets with the new keys is acknowledged (it
      // only sent ACKs since).
      expect(p.serverConn!.initiateKeyUpdate()).toBe(false);
      p.serverConn!.ping();
      p.touch(p.serverConn!);
      p.run(() => false, 200);
      expect(p.serverConn!.initiateKeyUpdate()).toBe(true);
      p.serverConn!.ping();
      p.touch(p.serverConn!);
      p.run(() => p.clientConn.stats.keyUpdates === 2, 1_000);
      expect(p.clientConn.stats.keyUpdates).toBe(2);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));

  it("keeps a transfer intact across updates initiated alternately by both sides, with reordering", () =>
    withSeed(82, (seed) => {
      const p = new Pair(provider, {
        seed,
        link: { latency: 15, jitter: 4, loss: 0.01, reorder: 0.05, reorderDelay: 10 },
      });
      expect(p.handshake(10_000)).toBe(true);
      const data = makeData(4 << 20, seed);
      const t = new Transfer(p, data);
      let nextAttempt = p.net.now + 200;
      let turn = 0;
      const initiated = { client: 0, server: 0 };
      const ok = drive(
        p,
        () => {
          let n = t.step();
          if (p.net.now >= nextAttempt) {
            nextAttempt = p.net.now + 200;
            const side = turn % 2 === 0 ? "client" : "server";
            const conn = side === "client" ? p.clientConn : p.serverConn!;
            if (conn.initiateKeyUpdate()) {
              initiated[side]++;
              turn++;
              n++;
            }
          }
          return n;
        },
        () => t.fin,
        300_000,
      );
      expect(ok).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      expect(initiated.client).toBeGreaterThanOrEqual(2);
      expect(initiated.server).toBeGreaterThanOrEqual(2);
      // Let the last update reach the other side.
      p.clientConn.ping();
      p.serverConn!.ping();
      p.touch(p.clientConn);
      p.touch(p.serverConn!);
      p.run(() => false, 1_000);
      const total = initiated.client + initiated.server;
      expect(p.clientConn.stats.keyUpdates).toBe(total);
      expect(p.serverConn!.stats.keyUpdates).toBe(total);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));
});
