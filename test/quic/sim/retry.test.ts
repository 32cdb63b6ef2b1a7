/**
 * Retry (RFC 9000 §8.1.2, §17.2.5; RFC 9001 §5.8): a server validating addresses answers the
 * first Initial with a Retry; the client starts over with the token and the new DCID, and both
 * sides authenticate the exchange through the transport parameters (§7.3).
 */
import { describe, expect, it } from "vitest";
import { parsePacketHeader } from "../../../src/quic/packet.js";
import { type SimDatagram, withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, packetTypes, provider } from "./helpers.js";

const INITIAL_PTO = 333 + 4 * (333 / 2);

function confirmed(p: Pair): boolean {
  return (
    p.clientEvents.some((e) => e.type === "handshake_confirmed") &&
    p.serverEvents.some((e) => e.type === "handshake_confirmed")
  );
}

function longHeader(d: SimDatagram) {
  const h = parsePacketHeader(d.data, 8);
  if (h.type !== "initial" && h.type !== "retry") throw new Error(`unexpected ${h.type}`);
  return h;
}

describe("Retry", () => {
  it("completes the handshake one round trip later, echoing the token to the Retry's CID", () =>
    withSeed(91, (seed) => {
      const p = new Pair(provider, { seed, retry: true, link: { latency: 10 } });
      const seen: SimDatagram[] = [];
      p.net.filter = (d) => {
        seen.push(d);
        return false;
      };
      let at = -1;
      p.run(() => {
        if (at < 0 && confirmed(p)) at = p.net.now;
        return at >= 0;
      }, 10_000);
      expect(at).toBeGreaterThan(0);
      const [first, retry, second] = seen;
      expect(first.from).toBe("client");
      expect(retry.from).toBe("server");
      expect(packetTypes(retry.data)).toEqual(["retry"]);
      expect(retry.sentAt).toBe(10);
      const h0 = longHeader(first);
      const hr = longHeader(retry);
      const h1 = longHeader(second);
      expect(second.from).toBe("client");
      expect(h0.type === "initial" && h0.token.length).toBe(0);
      if (hr.type !== "retry" || h1.type !== "initial") throw new Error("unexpected packet types");
      // §17.2.5.2: the next Initial carries the token, to the Retry's Source Connection ID.
      expect(Buffer.from(h1.token)).toEqual(Buffer.from(hr.token));
      expect(Buffer.from(h1.dcid)).toEqual(Buffer.from(hr.scid));
      expect(Buffer.from(hr.dcid)).toEqual(Buffer.from(h0.scid));
      expect(second.sentAt).toBe(20);
      // One extra round trip (20 ms) compared with the 40 ms handshake without Retry.
      expect(at).toBe(60);
      // §7.3: the server's transport parameters carry the original DCID and the Retry SCID.
      const tp = p.clientConn.peerTransportParameters!;
      expect(Buffer.from(tp.originalDestinationConnectionId!)).toEqual(Buffer.from(h0.dcid));
      expect(Buffer.from(tp.retrySourceConnectionId!)).toEqual(Buffer.from(hr.scid));
      expect(closedInfo(p.clientEvents)).toBeUndefined();
    }));

  it("recovers when the first Initial after the Retry is lost, and ignores a replayed Retry", () =>
    withSeed(92, (seed) => {
      const p = new Pair(provider, { seed, retry: true, link: { latency: 10 } });
      let retryCopy: Uint8Array | undefined;
      p.net.filter = (d) => {
        if (d.from === "server" && packetTypes(d.data)[0] === "retry") retryCopy = d.data.slice();
        return d.from === "client" && d.index === 1;
      };
      let at = -1;
      p.run(() => {
        if (at < 0 && confirmed(p)) at = p.net.now;
        return at >= 0;
      }, 10_000);
      // §6.3 of RFC 9002: a Retry resets recovery, so the lost Initial is resent one initial PTO later.
      expect(at).toBeGreaterThan(20 + INITIAL_PTO);
      expect(at).toBeLessThan(20 + INITIAL_PTO + 80);
      // A second Retry for the same connection is ignored (§17.2.5.2).
      p.client.receive(p.net.now, "server", retryCopy!);
      p.run(() => false, 1_000);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(p.clientConn.isEstablished).toBe(true);
    }));

  it("ignores a Retry whose integrity tag does not verify (RFC 9001 §5.8)", () =>
    withSeed(93, (seed) => {
      const p = new Pair(provider, { seed, retry: true, link: { latency: 10 } });
      let forged = 0;
      p.net.filter = (d) => {
        if (d.from === "server" && d.index === 0 && packetTypes(d.data)[0] === "retry") {
          const bad = d.data.slice();
          bad[bad.length - 1] ^= 0x01;
          forged++;
          p.client.receive(d.sentAt, "server", bad);
          return true;
        }
        return false;
      };
      let at = -1;
      p.run(() => {
        if (at < 0 && confirmed(p)) at = p.net.now;
        return at >= 0;
      }, 10_000);
      expect(forged).toBe(1);
      // The client kept waiting, resent its Initial at the PTO, and got a genuine Retry.
      expect(at).toBeGreaterThan(INITIAL_PTO);
      expect(at).toBeLessThan(INITIAL_PTO + 100);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
    }));
});
