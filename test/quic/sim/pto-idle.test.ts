/**
 * Probe timeout backoff (RFC 9002 §6.2.1: the PTO doubles after every expiry without an ACK)
 * and the idle timeout (RFC 9000 §10.1: the minimum of both advertised values, at least three
 * PTOs, restarted by receiving and by the first ack-eliciting packet sent after a receipt).
 */
import { describe, expect, it } from "vitest";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, makeData, provider } from "./helpers.js";

/** Virtual times of the client's datagrams once the link is black-holed, and the last deliveries. */
function blackHoleAfterHandshake(p: Pair) {
  expect(p.handshake(10_000)).toBe(true);
  // Let the post-handshake frames (HANDSHAKE_DONE, NEW_CONNECTION_ID, tickets) be acked.
  p.net.traceEnabled = true;
  p.run(() => false, 1_000);
  const lastDelivery = (to: string) =>
    Math.max(...p.net.trace.filter((t) => t.fate === "delivered" && t.to === to).map((t) => t.at));
  const lastToClient = lastDelivery("client");
  const lastToServer = lastDelivery("server");
  const t0 = p.net.now;
  const clientSends: number[] = [];
  p.net.filter = (d) => {
    if (d.from === "client") clientSends.push(d.sentAt);
    return true;
  };
  return { t0, lastToClient, lastToServer, clientSends };
}

describe("PTO backoff and idle timeout", () => {
  it("doubles the probe timeout after each unanswered probe", () =>
    withSeed(51, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 }, transport: { maxIdleTimeout: 60_000 } });
      const { t0, clientSends } = blackHoleAfterHandshake(p);
      const c = p.clientConn;
      const id = c.openStream(true)!;
      c.write(id, makeData(8_000, seed));
      p.touch(c);
      p.run(() => false, 20_000);
      // The data goes out at t0, then the probes: distinct send times after the first burst.
      const times = [...new Set(clientSends)];
      expect(times[0]).toBe(t0);
      const intervals = times.slice(1).map((t, i) => t - times[i]);
      expect(intervals.length).toBeGreaterThanOrEqual(6);
      const base = intervals[0];
      // PTO = smoothed_rtt + max(4 * rttvar, 1 ms) + max_ack_delay (25 ms), with a 20 ms RTT.
      expect(base).toBeGreaterThanOrEqual(p.clientConn.rtt + 25);
      expect(base).toBeLessThan(p.clientConn.rtt + 25 + 4 * p.clientConn.rtt);
      intervals.forEach((iv, k) => {
        expect(iv).toBeCloseTo(base * 2 ** k, 6);
      });
      // Each PTO sends (at most) two probe datagrams (§6.2.4).
      for (const t of times.slice(1)) {
        const n = clientSends.filter((s) => s === t).length;
        expect(n).toBeGreaterThanOrEqual(1);
        expect(n).toBeLessThanOrEqual(2);
      }
      expect(p.clientConn.stats.ptoCount).toBe(intervals.length);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
    }));

  it("closes both sides at the negotiated idle timeout, without probes extending it", () =>
    withSeed(52, (seed) => {
      const p = new Pair(provider, {
        seed,
        link: { latency: 10 },
        clientTransport: { maxIdleTimeout: 10_000 },
        serverTransport: { maxIdleTimeout: 6_000 },
      });
      const { t0, lastToClient, lastToServer } = blackHoleAfterHandshake(p);
      const c = p.clientConn;
      const id = c.openStream(true)!;
      c.write(id, makeData(8_000, seed));
      p.touch(c);
      const closedAt = { client: -1, server: -1 };
      p.run(() => {
        if (closedAt.client < 0 && closedInfo(p.clientEvents)) closedAt.client = p.net.now;
        if (closedAt.server < 0 && closedInfo(p.serverEvents)) closedAt.server = p.net.now;
        return closedAt.client >= 0 && closedAt.server >= 0;
      }, 60_000);
      const idle = 6_000; // min(10 s, 6 s), far above 3 * PTO
      // The server heard last at lastToServer and has sent nothing ack-eliciting since.
      expect(closedInfo(p.serverEvents)).toEqual({
        errorCode: 0,
        application: false,
        reason: "idle timeout",
        initiator: "idle",
      });
      expect(closedAt.server).toBeCloseTo(lastToServer + idle, 6);
      // The client's timer restarted with its first ack-eliciting packet after its last receipt
      // (the data at t0); the PTO probes after that do not restart it.
      expect(lastToClient).toBeLessThan(t0);
      expect(closedInfo(p.clientEvents)?.initiator).toBe("idle");
      expect(closedAt.client).toBeCloseTo(t0 + idle, 6);
      expect(p.clientEvents.at(-1)?.type).toBe("drained");
      expect(p.serverEvents.at(-1)?.type).toBe("drained");
      expect(p.client.connections.size).toBe(0);
      expect(p.server.connections.size).toBe(0);
    }));

  it("uses three PTOs when the idle timeout is shorter", () =>
    withSeed(53, (seed) => {
      // 200 ms RTT: PTO = 200 + max(4 * rttvar, 1) + 25 ms, so 3 * PTO > 675 ms > 300 ms.
      const p = new Pair(provider, { seed, link: { latency: 100 }, transport: { maxIdleTimeout: 300 } });
      p.net.traceEnabled = true;
      expect(p.handshake(10_000)).toBe(true);
      let closedAt = -1;
      p.run(() => {
        if (closedInfo(p.clientEvents)) closedAt = p.net.now;
        return closedAt >= 0;
      }, 10_000);
      expect(closedInfo(p.clientEvents)?.initiator).toBe("idle");
      const lastReceipt = Math.max(
        ...p.net.trace.filter((t) => t.fate === "delivered" && t.to === "client").map((t) => t.at),
      );
      const pto = (closedAt - lastReceipt) / 3;
      expect(p.clientConn.rtt).toBeCloseTo(200, 0);
      expect(pto).toBeGreaterThanOrEqual(p.clientConn.rtt + 1 + 25);
      expect(pto).toBeLessThanOrEqual(p.clientConn.rtt + 2 * p.clientConn.rtt + 25);
    }));
});
