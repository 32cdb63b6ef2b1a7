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

function transferOver(seed: number, mtu: number, loss = 0, bytes = 1 << 20) {
  const p = new Pair(provider, { seed, link: { latency: 10, mtu, loss } });
  p.net.traceEnabled = true;
  // Sizes of the client's datagrams that fit the path (the filter sees no too-big ones).
  const sizes: number[] = [];
  p.net.filter = (d) => {
    if (d.from === "client") sizes.push(d.data.length);
    return false;
  };
  expect(p.handshake(10_000)).toBe(true);
  const data = makeData(bytes, seed);
  const t = new Transfer(p, data);
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
});
