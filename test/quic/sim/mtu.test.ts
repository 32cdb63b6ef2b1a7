/**
 * Datagram size and the path MTU (RFC 9000 §14): nothing above 1200 bytes is sent before the
 * path is known to carry it (§14.3); larger sizes up to both sides' max_udp_payload_size are
 * found with PMTU probes of PING and PADDING (§14.4, DPLPMTUD), whose loss neither loses data
 * nor shrinks the congestion window.
 */
import { describe, expect, it } from "vitest";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, makeData, provider, sha256, Transfer } from "./helpers.js";

function transferOver(
  seed: number,
  mtu: number,
  loss = 0,
  bytes = 1 << 20,
  opts: { maxUdpPayloadSize?: number; bandwidth?: number; onStep?: (p: Pair) => void } = {},
) {
  const p = new Pair(provider, {
    seed,
    link: {
      latency: 10,
      mtu,
      loss,
      bandwidth: opts.bandwidth ?? 0,
      queueBytes: opts.bandwidth ? 256 << 10 : 0,
    },
    transport: { maxUdpPayloadSize: opts.maxUdpPayloadSize },
  });
  p.net.traceEnabled = true;
  // Sizes of the client's datagrams that fit the path (the filter sees no too-big ones).
  const sizes: number[] = [];
  p.net.filter = (d) => {
    if (d.from === "client") sizes.push(d.data.length);
    return false;
  };
  expect(p.handshake(10_000)).toBe(true);
  const data = makeData(bytes, seed);
  const t = new Transfer(p, data, { onStep: () => opts.onStep?.(p) });
  expect(t.run(60_000)).toBe(true);
  expect(t.receivedHash()).toBe(sha256(data));
  const tooBig = p.net.trace.filter((d) => d.fate === "too-big");
  return { p, t, sizes, tooBig };
}

describe("path MTU", () => {
  it("probes up to 1452 bytes on a 1500-byte path and then sends full-size packets", () =>
    withSeed(151, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      const sizes: number[] = [];
      const early: number[] = [];
      p.net.filter = (d) => {
        if (d.from !== "client") return false;
        sizes.push(d.data.length);
        if (!p.clientEvents.some((e) => e.type === "handshake_confirmed")) early.push(d.data.length);
        return false;
      };
      expect(p.handshake(10_000)).toBe(true);
      // Until the handshake is confirmed, nothing larger than 1200 bytes.
      expect(Math.max(...early)).toBe(1200);
      const data = makeData(1 << 20, seed);
      const t = new Transfer(p, data);
      expect(t.run(60_000)).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      expect(Math.max(...sizes)).toBe(1452);
      // Most of the transfer went in full-size datagrams.
      expect(sizes.filter((s) => s === 1452).length).toBeGreaterThan((1 << 20) / 1452 / 2);
    }));

  it("keeps working on a 1280-byte path (IPv6 minimum): probes are lost, data is not", () =>
    withSeed(152, (seed) => {
      const r = transferOver(seed, 1280, 0, 4 << 20);
      // Only probes were too big: three tries at each of 1452, 1326 and 1294 bytes, from each
      // side; never data (which would be retransmitted and show in the byte count).
      expect(r.tooBig.length).toBeGreaterThan(0);
      expect(r.tooBig.length).toBeLessThanOrEqual(18);
      const sent = r.p.net.sent.get("client>server")!;
      expect(sent.bytes).toBeLessThan(1.1 * (4 << 20));
      // The search settled on a size the path carries (within 16 bytes of it) for the data.
      const big = r.sizes.filter((s) => s > 1200 && s <= 1280);
      expect(big.length).toBeGreaterThan(100);
      expect(Math.max(...big)).toBeGreaterThanOrEqual(1280 - 16);
      expect(closedInfo(r.p.clientEvents)).toBeUndefined();
    }));

  it("finds a size between 1200 and 1452 on a 1350-byte path, also with loss", () =>
    withSeed(153, (seed) => {
      const r = transferOver(seed, 1350, 0.02, 4 << 20);
      const used = r.sizes.filter((s) => s <= 1350);
      expect(Math.max(...used)).toBeGreaterThanOrEqual(1350 - 16);
      expect(closedInfo(r.p.clientEvents)).toBeUndefined();
    }));

  describe("with a 16 KB maximum (loopback-like; RFC 8899 search over a wide range)", () => {
    const wide = { maxUdpPayloadSize: 16384 };

    it("settles at the configured maximum on a path that carries it", () =>
      withSeed(154, (seed) => {
        const r = transferOver(seed, 20_000, 0, 4 << 20, wide);
        expect(r.tooBig).toEqual([]);
        expect(r.p.clientConn.stats.maxDatagramSize).toBe(16384);
        expect(r.p.serverConn?.stats.maxDatagramSize).toBe(16384);
        // The bulk of the data went in full 16 KB datagrams.
        expect(r.sizes.filter((s) => s === 16384).length).toBeGreaterThan((4 << 20) / 16384 / 2);
        expect(r.p.clientConn.stats.packetsLost).toBe(0);
      }));

    it("settles at most 16 bytes under the limit of a path that drops what is larger", () =>
      withSeed(155, (seed) => {
        // The search takes some 30 round trips (three lost probes per failed size): a 16 MB
        // transfer over a 20 MB/s bottleneck lasts long enough for it to finish.
        const limit = 5000;
        const r = transferOver(seed, limit, 0, 16 << 20, { ...wide, bandwidth: 20e6 });
        for (const c of [r.p.clientConn, r.p.serverConn]) {
          expect(c?.stats.maxDatagramSize).toBeLessThanOrEqual(limit);
          expect(c?.stats.maxDatagramSize).toBeGreaterThanOrEqual(limit - 16);
        }
        expect(Math.max(...r.sizes)).toBeLessThanOrEqual(limit);
        // Only probes were too big (three of each failed size, per side; data is never sent at an
        // unvalidated size, so it is not retransmitted: the byte count stays near the data size).
        expect(r.tooBig.length).toBeGreaterThan(0);
        expect(r.tooBig.length % 3).toBe(0);
        expect(r.tooBig.length).toBeLessThanOrEqual(2 * 3 * 8);
        expect(r.p.net.sent.get("client>server")!.bytes).toBeLessThan(1.1 * (16 << 20));
        expect(closedInfo(r.p.clientEvents)).toBeUndefined();
      }));

    it("drops to the Ethernet size through the table of common sizes, whose losses do not shrink the window", () =>
      withSeed(156, (seed) => {
        // The client sends the data: its congestion window must never shrink, although its
        // probes of 16384 and 8952 bytes (and the bisection's above 1452) are lost.
        const windows: number[] = [];
        const r = transferOver(seed, 1500, 0, 4 << 20, {
          ...wide,
          onStep: (p) => windows.push(p.clientConn.congestionWindow),
        });
        const client = r.p.clientConn;
        // 1452 at once after the two larger table sizes failed; the bisection above it goes on.
        expect(client.stats.maxDatagramSize).toBeGreaterThanOrEqual(1452);
        expect(client.stats.maxDatagramSize).toBeLessThanOrEqual(1500);
        const clientProbesLost = r.tooBig.filter((d) => d.from === "client");
        expect(clientProbesLost.map((d) => d.data.length).slice(0, 6)).toEqual([
          16384, 16384, 16384, 8952, 8952, 8952,
        ]);
        // Every packet declared lost was a probe (the last one may still be outstanding).
        expect(client.stats.packetsLost).toBeGreaterThanOrEqual(6);
        expect(client.stats.packetsLost).toBeLessThanOrEqual(clientProbesLost.length);
        for (let i = 1; i < windows.length; i++) expect(windows[i]).toBeGreaterThanOrEqual(windows[i - 1]);
        expect(windows.at(-1)).toBeGreaterThan(windows[0]);
      }));
  });

  it("falls back to 1200 bytes when the path MTU shrinks mid-transfer, then finds the new one (RFC 8899 §4.3)", () =>
    withSeed(157, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      expect(p.handshake(10_000)).toBe(true);
      const data = makeData(4 << 20, seed);
      let shrunk = false;
      let shrunkAt = 0;
      const t = new Transfer(p, data, {
        onStep: () => {
          // A route change: from now on nothing above 1300 bytes gets through, either way.
          if (!shrunk && p.clientConn.stats.maxDatagramSize === 1452 && t.received > 1 << 20) {
            shrunk = true;
            shrunkAt = p.net.now;
            p.net.setLink("client", "server", { mtu: 1300 });
          }
        },
      });
      expect(t.run(60_000)).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      expect(shrunk).toBe(true);
      const c = p.clientConn;
      expect(c.stats.pmtuBlackHoles).toBe(1);
      // Found again below the new limit (within the search's 16-byte resolution).
      expect(c.stats.maxDatagramSize).toBeGreaterThan(1300 - 28 - 16);
      expect(c.stats.maxDatagramSize).toBeLessThanOrEqual(1300);
      // Detected after two PTOs, not after an idle timeout: the rest took seconds, not 30 s.
      expect(t.finAt! - shrunkAt).toBeLessThan(5_000);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
    }));
});
