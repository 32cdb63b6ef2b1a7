/**
 * Stateless reset (RFC 9000 §10.3): a server that lost a connection's state (here: a fresh
 * endpoint with the same static key at the same address) answers its packets with a stateless
 * reset, and the client recognises the token and ends the connection.
 */
import { describe, expect, it } from "vitest";
import { SeededRng } from "../../../src/crypto/random.js";
import { type SimDatagram, withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, makeData, provider, restartServer } from "./helpers.js";

describe("stateless reset", () => {
  it("a restarted server resets the client's connection, which drains after 3 PTOs", () =>
    withSeed(111, (seed) => {
      const staticKey = new SeededRng(seed).fill(new Uint8Array(32));
      const p = new Pair(provider, { seed, staticKey, link: { latency: 10 } });
      expect(p.handshake(10_000)).toBe(true);
      p.run(() => false, 500);
      restartServer(p, seed, staticKey);
      const seen: SimDatagram[] = [];
      p.net.filter = (d) => {
        seen.push(d);
        return false;
      };
      const c = p.clientConn;
      const t0 = p.net.now;
      c.write(c.openStream(true)!, makeData(2_000, seed));
      p.touch(c);
      let closedAt = -1;
      p.run(() => {
        if (closedAt < 0 && closedInfo(p.clientEvents)) closedAt = p.net.now;
        return p.clientEvents.some((e) => e.type === "drained");
      }, 10_000);
      expect(closedInfo(p.clientEvents)).toEqual({
        errorCode: 0,
        application: false,
        reason: "stateless reset",
        initiator: "stateless-reset",
      });
      // One round trip: the first packet reaches the new endpoint, the reset comes back.
      expect(closedAt).toBe(t0 + 20);
      const reset = seen.find((d) => d.from === "server")!;
      const trigger = seen.find((d) => d.from === "client")!;
      // §10.3: looks like a short-header packet, smaller than what triggered it, >= 21 bytes.
      expect(reset.data[0] & 0xc0).toBe(0x40);
      expect(reset.data.length).toBeLessThan(trigger.data.length);
      expect(reset.data.length).toBeGreaterThanOrEqual(21);
      // Draining (§10.2.2): nothing sent after the reset, then drained 3 PTOs later.
      expect(seen.filter((d) => d.from === "client" && d.sentAt > closedAt)).toEqual([]);
      const drainedAfter = p.net.now - closedAt;
      expect(drainedAfter).toBeGreaterThanOrEqual(3 * (c.rtt + 25));
      expect(drainedAfter).toBeLessThan(3 * (3 * c.rtt + 25));
      expect(p.client.connections.size).toBe(0);
    }));

  it("a reset with the wrong token (another static key) is ignored", () =>
    withSeed(112, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      expect(p.handshake(10_000)).toBe(true);
      p.run(() => false, 500);
      restartServer(p, seed, new SeededRng(seed + 1).fill(new Uint8Array(32)));
      let resets = 0;
      p.net.filter = (d) => {
        if (d.from === "server") resets++;
        return false;
      };
      const c = p.clientConn;
      c.write(c.openStream(true)!, makeData(2_000, seed));
      p.touch(c);
      p.run(() => false, 3_000);
      expect(resets).toBeGreaterThan(0);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(c.isEstablished).toBe(true);
    }));
});
