/**
 * Connection close (RFC 9000 §10.2): an application CONNECTION_CLOSE reaches the peer with its
 * code and reason; the closer stays closing and the peer draining for three PTOs, then both are
 * drained and forgotten by their endpoints.
 */
import { describe, expect, it } from "vitest";
import type { ConnectionEvent } from "../../../src/quic/connection.js";
import { TransportErrorCode } from "../../../src/quic/errors.js";
import { type SimDatagram, withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, makeData, packetTypes, provider } from "./helpers.js";

function timeOf(p: Pair, events: ConnectionEvent[], type: ConnectionEvent["type"]): () => number {
  let at = -1;
  return () => {
    if (at < 0 && events.some((e) => e.type === type)) at = p.net.now;
    return at;
  };
}

describe("connection close", () => {
  it("delivers the application code and reason, then both sides drain after 3 PTOs", () =>
    withSeed(131, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      expect(p.handshake(10_000)).toBe(true);
      p.run(() => false, 300);
      const t0 = p.net.now;
      p.clientConn.close(t0, 0x42, "bye now");
      p.touch(p.clientConn);
      const serverClosed = timeOf(p, p.serverEvents, "closed");
      const serverDrained = timeOf(p, p.serverEvents, "drained");
      const clientDrained = timeOf(p, p.clientEvents, "drained");
      p.run(() => serverClosed() >= 0 && serverDrained() >= 0 && clientDrained() >= 0, 10_000);
      expect(closedInfo(p.clientEvents)).toEqual({
        errorCode: 0x42,
        application: true,
        reason: "bye now",
        initiator: "local",
      });
      expect(closedInfo(p.serverEvents)).toEqual({
        errorCode: 0x42,
        application: true,
        reason: "bye now",
        initiator: "remote",
      });
      expect(serverClosed()).toBe(t0 + 10);
      // Three PTOs: 3 * (smoothed_rtt + max(4 * rttvar, 1) + max_ack_delay) with a 20 ms RTT.
      const minPeriod = 3 * (p.clientConn.rtt + 1 + 25);
      const maxPeriod = 3 * (3 * p.clientConn.rtt + 25);
      for (const [drainedAt, from] of [
        [clientDrained(), t0],
        [serverDrained(), serverClosed()],
      ]) {
        expect(drainedAt - from).toBeGreaterThanOrEqual(minPeriod);
        expect(drainedAt - from).toBeLessThanOrEqual(maxPeriod);
      }
      expect(p.clientEvents.at(-1)?.type).toBe("drained");
      expect(p.serverEvents.at(-1)?.type).toBe("drained");
      expect(p.client.connections.size).toBe(0);
      expect(p.server.connections.size).toBe(0);
      // The API refuses further use with a clear error.
      expect(() => p.clientConn.openStream(true)).toThrow(/connection is closed: bye now/);
    }));

  it("answers a peer that missed the CONNECTION_CLOSE with another one while closing", () =>
    withSeed(132, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      expect(p.handshake(10_000)).toBe(true);
      p.run(() => false, 300);
      // The server is sending data when the client closes; the first close datagram is lost.
      const s = p.serverConn!;
      const id = s.openStream(true)!;
      s.write(id, makeData(200_000, seed));
      p.touch(s);
      p.run(() => false, 15);
      const seen: SimDatagram[] = [];
      let dropped = 0;
      p.net.filter = (d) => {
        seen.push(d);
        if (d.from === "client" && dropped === 0) {
          dropped++;
          return true;
        }
        return false;
      };
      const t0 = p.net.now;
      p.clientConn.close(t0, 7, "going away");
      p.touch(p.clientConn);
      const serverClosed = timeOf(p, p.serverEvents, "closed");
      p.run(() => serverClosed() >= 0 && p.clientEvents.some((e) => e.type === "drained"), 10_000);
      expect(closedInfo(p.serverEvents)).toEqual({
        errorCode: 7,
        application: true,
        reason: "going away",
        initiator: "remote",
      });
      // The server learnt it from a later CONNECTION_CLOSE, sent in answer to its packets.
      const closes = seen.filter((d) => d.from === "client");
      expect(closes.length).toBeGreaterThanOrEqual(2);
      expect(serverClosed()).toBeGreaterThan(t0 + 10);
      expect(serverClosed()).toBeLessThan(t0 + 100);
      // While draining the server sends nothing (§10.2.2).
      expect(seen.filter((d) => d.from === "server" && d.sentAt > serverClosed())).toEqual([]);
    }));

  it("turns an application close during the handshake into APPLICATION_ERROR (§10.2.3)", () =>
    withSeed(133, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      // Client has sent its Initial; the server's flight is on its way (arrives at 20 ms).
      p.run(() => false, 15);
      const seen: SimDatagram[] = [];
      p.net.filter = (d) => {
        seen.push(d);
        return false;
      };
      p.clientConn.close(p.net.now, 0x99, "changed my mind");
      p.touch(p.clientConn);
      p.run(() => closedInfo(p.serverEvents) !== undefined, 5_000);
      // Without 1-RTT keys on the server's side, an Initial carries a transport close that does
      // not reveal the application's code or reason.
      expect(packetTypes(seen[0].data)).toEqual(["initial"]);
      expect(seen[0].data.length).toBeGreaterThanOrEqual(1200);
      expect(closedInfo(p.serverEvents)).toEqual({
        errorCode: TransportErrorCode.APPLICATION_ERROR,
        application: false,
        reason: "",
        initiator: "remote",
      });
      expect(closedInfo(p.clientEvents)?.errorCode).toBe(0x99);
    }));
});
