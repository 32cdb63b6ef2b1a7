/**
 * Handshake under loss of whole flights (RFC 9002 §6.2: PTO with the 333 ms initial RTT, so the
 * first retransmission goes out ~1 s after the lost flight).
 */
import { describe, expect, it } from "vitest";
import { type SimDatagram, withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, packetTypes, provider } from "./helpers.js";

/** RFC 9002 §6.2.1 with kInitialRtt = 333 ms: smoothed_rtt + max(4 * rttvar, 1 ms), rttvar = 333/2. */
const INITIAL_PTO = 333 + 4 * (333 / 2);

function confirmedAt(p: Pair): { client: number; server: number } {
  const times = { client: -1, server: -1 };
  const check = () => {
    if (times.client < 0 && p.clientEvents.some((e) => e.type === "handshake_confirmed"))
      times.client = p.net.now;
    if (times.server < 0 && p.serverEvents.some((e) => e.type === "handshake_confirmed"))
      times.server = p.net.now;
    return times.client >= 0 && times.server >= 0;
  };
  p.run(check, 20_000);
  return times;
}

describe("handshake under loss", () => {
  it("completes after the client's first Initial is lost: the client PTO resends it at ~1 s", () =>
    withSeed(11, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      const sent: SimDatagram[] = [];
      p.net.filter = (d) => {
        if (d.from === "client") sent.push(d);
        return d.from === "client" && d.index === 0;
      };
      const t = confirmedAt(p);
      // The retransmitted Initial leaves exactly one initial PTO after the first one.
      expect(sent[0].sentAt).toBe(0);
      expect(packetTypes(sent[1].data)[0]).toBe("initial");
      expect(sent[1].sentAt).toBeCloseTo(INITIAL_PTO, 6);
      expect(sent[1].data.length).toBeGreaterThanOrEqual(1200);
      // Then one round trip for the server's flight, half of one for the client's Finished.
      expect(t.server).toBeGreaterThanOrEqual(INITIAL_PTO + 30);
      expect(t.server).toBeLessThan(INITIAL_PTO + 60);
      expect(t.client).toBeGreaterThanOrEqual(t.server);
      expect(t.client).toBeLessThan(INITIAL_PTO + 80);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));

  it("completes after the server's whole first flight is lost: PTOs resend it at ~1 s", () =>
    withSeed(12, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      const serverSent: SimDatagram[] = [];
      let firstFlightAt = -1;
      p.net.filter = (d) => {
        if (d.from !== "server") return false;
        serverSent.push(d);
        if (firstFlightAt < 0) firstFlightAt = d.sentAt;
        return d.sentAt === firstFlightAt;
      };
      const t = confirmedAt(p);
      expect(firstFlightAt).toBe(10);
      const flight = serverSent.filter((d) => d.sentAt === firstFlightAt);
      // Initial (ServerHello) + Handshake (certificate...) in the first flight, within 3x of 1200 bytes.
      expect(flight.flatMap((d) => packetTypes(d.data))).toEqual(
        expect.arrayContaining(["initial", "handshake"]),
      );
      expect(flight.reduce((n, d) => n + d.data.length, 0)).toBeLessThanOrEqual(3 * 1200);
      const resent = serverSent.filter((d) => d.sentAt > firstFlightAt);
      // Nothing more from the server until a PTO fires (its own at 10 + PTO, or the client's
      // Initial probe arriving then).
      expect(resent[0].sentAt).toBeGreaterThanOrEqual(INITIAL_PTO);
      expect(resent[0].sentAt).toBeLessThanOrEqual(firstFlightAt + INITIAL_PTO + 1);
      expect(t.client).toBeGreaterThan(INITIAL_PTO + 20);
      expect(t.client).toBeLessThan(INITIAL_PTO + 100);
      expect(t.server).toBeLessThan(INITIAL_PTO + 100);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));
});
