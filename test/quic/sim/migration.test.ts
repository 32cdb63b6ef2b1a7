/**
 * Connection migration on the simulated network (RFC 9000 §8.2, §9): the client's NAT rebinds
 * in the middle of a transfer, an address that never answers, a forwarded copy of a genuine
 * packet (an off-path attacker, §9.3.3), reordered packets from the old address, and a new peer
 * host resetting congestion control (§9.4).
 */
import { describe, expect, it } from "vitest";
import type { Connection, ConnectionEvent } from "../../../src/quic/connection.js";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, makeData, provider, sha256, Transfer } from "./helpers.js";

/** A pair whose client sits behind a NAT at `client:1` from the start. */
function natPair(seed: number): Pair {
  const p = new Pair(provider, { seed, link: { latency: 10 } });
  p.net.nat("client", "client:1");
  return p;
}

/** Bytes the server sent to `to` and received from `from` from the trace (traceEnabled). */
function bytes(p: Pair, dir: "to" | "from", addr: string, since = 0): number {
  let n = 0;
  for (const d of p.net.trace) {
    if (d.at < since || d.fate === "duplicated" || d.fate === "corrupted") continue;
    if (dir === "to" && d.from === "server" && d.to === addr && d.fate !== "delivered") n += d.data.length;
    if (dir === "from" && d.from === addr && d.to === "server" && d.fate === "delivered") n += d.data.length;
  }
  return n;
}

const addressEvents = (events: ConnectionEvent[]) =>
  events.flatMap((e) =>
    e.type === "peer_address_changed" ? [`${e.remote} ${e.validated ? "valid" : "new"}`] : [],
  );

describe("connection migration", () => {
  it("follows a NAT rebinding in the middle of a transfer, validates the new address, keeps its RTT estimate", () =>
    withSeed(301, (seed) => {
      const p = natPair(seed);
      expect(p.handshake()).toBe(true);
      const data = makeData(2 << 20, seed);
      let rebound = false;
      let rttAfter: number | undefined;
      const t = new Transfer(p, data, {
        onStep: () => {
          const s = p.serverConn as Connection;
          if (!rebound && t.received > 512 * 1024) {
            rebound = true;
            p.net.nat("client", "client:2"); // client:1 now reaches nobody
          }
          if (rebound && rttAfter === undefined && s.stats.pathsValidated === 1) rttAfter = s.rtt;
        },
      });
      expect(t.run(60_000)).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      const s = p.serverConn as Connection;
      expect(s.remote).toBe("client:2");
      expect(s.stats.migrations).toBe(1);
      expect(s.stats.pathsValidated).toBe(1);
      expect(addressEvents(p.serverEvents)).toEqual(["client:2 new", "client:2 valid"]);
      // §9.4: only the port changed: the RTT estimate (20 ms here) was kept, not reset to 333 ms.
      expect(rttAfter).toBeDefined();
      expect(rttAfter).toBeLessThan(40);
      expect(closedInfo(p.serverEvents)).toBeUndefined();
      expect(closedInfo(p.clientEvents)).toBeUndefined();
    }));

  it("resets congestion control, RTT and the datagram size when the client moves to another host (§9.4, §14.2)", () =>
    withSeed(302, (seed) => {
      const p = natPair(seed);
      p.net.setLink("client", "server", { latency: 40 });
      expect(p.handshake()).toBe(true);
      const data = makeData(1 << 20, seed);
      let moved = false;
      let after: { cwnd: number; rtt: number; mtu: number } | undefined;
      let before = { cwnd: 0, rtt: 0, mtu: 0 };
      const t = new Transfer(p, data, {
        onStep: () => {
          const s = p.serverConn as Connection;
          if (!moved && t.received > 256 * 1024) {
            moved = true;
            before = { cwnd: s.congestionWindow, rtt: s.rtt, mtu: s.stats.maxDatagramSize };
            p.net.nat("client", "10.9.9.9:4000");
          }
          if (moved && !after && s.stats.pathsValidated === 1)
            after = { cwnd: s.congestionWindow, rtt: s.rtt, mtu: s.stats.maxDatagramSize };
        },
      });
      expect(t.run(60_000)).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      expect(before.rtt).toBeGreaterThan(70);
      expect(before.rtt).toBeLessThan(120);
      expect(after).toBeDefined();
      // RFC 9002 §7.2 initial window (10 datagrams, at most 14,720 bytes) and kInitialRtt 333 ms.
      expect(after!.cwnd).toBeLessThanOrEqual(14_720);
      expect(after!.rtt).toBe(333);
      // §14.2: and the datagram size is found again for the new path (1452 here, as before).
      expect(before.mtu).toBe(1452);
      expect(after!.mtu).toBe(1200);
      expect(p.serverConn!.stats.maxDatagramSize).toBe(1452);
      expect(p.serverConn!.remote).toBe("10.9.9.9:4000");
    }));

  it("sends at most 3x what an unvalidated address sent, then ends silently when it never answers (§9.3.1, §9.3.2)", () =>
    withSeed(303, (seed) => {
      const p = natPair(seed);
      expect(p.handshake()).toBe(true);
      p.net.traceEnabled = true;
      // A server → client stream keeps the server wanting to send.
      const s = p.serverConn as Connection;
      const id = s.openStream(false)!;
      s.write(id, makeData(1 << 20, seed));
      p.touch(s);
      p.run(() => false, 300);
      // The client moves, but only its first datagram from the new address gets through.
      const since = p.net.now;
      p.net.nat("client", "client:2");
      let passed = 0;
      p.net.filter = (d) => d.from === "client:2" && ++passed > 1;
      p.clientConn.ping();
      p.touch(p.clientConn);
      p.run(() => s.isClosing, 20_000);
      expect(s.stats.migrations).toBe(1);
      const received = bytes(p, "from", "client:2", since);
      expect(received).toBeGreaterThan(0);
      expect(bytes(p, "to", "client:2", since)).toBeLessThanOrEqual(3 * received);
      // Neither the new address nor the old one (client:1, gone with the rebinding) answered.
      expect(s.stats.pathsValidated).toBe(0);
      expect(closedInfo(p.serverEvents)?.reason).toMatch(/path validation failed/);
      // Silently: no CONNECTION_CLOSE went anywhere after the rebinding but the probes.
      expect(s.stats.pathChallengesSent).toBeGreaterThanOrEqual(2);
    }));

  it("a forwarded copy of a genuine packet from elsewhere moves the connection only until the real path answers (§9.3.3)", () =>
    withSeed(304, (seed) => {
      const p = natPair(seed);
      expect(p.handshake()).toBe(true);
      p.net.traceEnabled = true;
      const data = makeData(1 << 20, seed);
      let copied = 0;
      let copySize = 0;
      // An off-path attacker copies one client packet and gets it to the server first.
      p.net.filter = (d) => {
        if (copied === 0 && d.from === "client:1" && d.data.length > 500 && p.net.now > 100) {
          copied++;
          copySize = d.data.length;
          p.net.inject("evil:666", "server", d.data, 1);
        }
        return false;
      };
      const t = new Transfer(p, data);
      expect(t.run(60_000)).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      const s = p.serverConn as Connection;
      expect(copied).toBe(1);
      expect(s.remote).toBe("client:1");
      // To the copy's source, then back as soon as a newer packet came from the real client.
      expect(addressEvents(p.serverEvents).slice(0, 2)).toEqual(["evil:666 new", "client:1 valid"]);
      expect(bytes(p, "to", "evil:666")).toBeLessThanOrEqual(3 * copySize);
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));

  it("a late packet from the old address does not move the connection back (§9.3)", () =>
    withSeed(305, (seed) => {
      const p = natPair(seed);
      expect(p.handshake()).toBe(true);
      let held: Uint8Array | undefined;
      // Hold back one client packet (dropped on the wire), to deliver it late from client:1.
      p.net.filter = (d) => {
        if (!held && d.from === "client:1" && p.net.now > 50) {
          held = d.data.slice();
          return true;
        }
        return false;
      };
      const data = makeData(256 * 1024, seed);
      let stage = 0;
      const t = new Transfer(p, data, {
        onStep: () => {
          if (stage === 0 && held && t.received > 64 * 1024) {
            stage = 1;
            p.net.nat("client", "client:2");
          } else if (stage === 1 && p.serverConn!.stats.pathsValidated === 1) {
            stage = 2;
            p.net.inject("client:1", "server", held!, 0);
          }
        },
      });
      expect(t.run(60_000)).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      expect(stage).toBe(2);
      const s = p.serverConn as Connection;
      expect(s.remote).toBe("client:2");
      expect(s.stats.migrations).toBe(1);
    }));

  it("drops datagrams from another address before the handshake is confirmed (§9)", () =>
    withSeed(306, (seed) => {
      const p = natPair(seed);
      p.run(() => p.serverConn !== undefined, 1_000);
      const s = p.serverConn as Connection;
      const dropped = s.stats.packetsDropped;
      // The server's flight now goes to an address that reaches nobody; the client's PTO resends
      // come from client:2 and are dropped: no migration, the handshake cannot finish.
      p.net.nat("client", "client:2");
      p.run(() => false, 3_000);
      expect(s.remote).toBe("client:1");
      expect(p.clientEvents.some((e) => e.type === "handshake_confirmed")).toBe(false);
      expect(s.stats.packetsDropped).toBeGreaterThan(dropped);
      expect(s.stats.migrations).toBe(0);
    }));
});
