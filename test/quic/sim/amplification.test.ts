/**
 * Anti-amplification (RFC 9000 §8.1): before the client's address is validated, a server sends
 * at most three times the bytes it received, PTOs included (RFC 9002 §6.2.2.1).
 */
import { describe, expect, it } from "vitest";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, packetTypes, provider } from "./helpers.js";

/**
 * Drops the client's datagrams from `silentFrom` on (and all the server's when `deafClient`)
 * and checks the 3x bound at every server send.
 */
function silentClient(seed: number, silentFrom: number, deafClient = false) {
  const p = new Pair(provider, { seed, link: { latency: 10 }, transport: { maxIdleTimeout: 20_000 } });
  let receivedByServer = 0;
  let sentByServer = 0;
  const serverSends: { at: number; bytes: number; types: string[] }[] = [];
  let worst = 0;
  p.net.filter = (d) => {
    if (d.from === "client") {
      if (d.index >= silentFrom) return true;
      // Delivered without loss on this link: counts as received by the server on arrival, which
      // is before anything the server sends in response.
      receivedByServer += d.data.length;
      return false;
    }
    sentByServer += d.data.length;
    worst = Math.max(worst, sentByServer / receivedByServer);
    serverSends.push({ at: d.sentAt, bytes: d.data.length, types: packetTypes(d.data) });
    expect(sentByServer).toBeLessThanOrEqual(3 * receivedByServer);
    return deafClient;
  };
  let serverClosedAt = -1;
  p.run(() => {
    if (serverClosedAt < 0 && closedInfo(p.serverEvents)) serverClosedAt = p.net.now;
    return serverClosedAt >= 0;
  }, 60_000);
  return { p, receivedByServer, sentByServer, serverSends, worst, serverClosedAt };
}

describe("anti-amplification limit", () => {
  it("sends at most 3x the client's single Initial when the client goes silent", () =>
    withSeed(61, (seed) => {
      const r = silentClient(seed, 1);
      expect(r.receivedByServer).toBe(1200);
      // The first flight plus PTO retransmissions exhaust the budget exactly, never more.
      expect(r.sentByServer).toBeLessThanOrEqual(3600);
      expect(r.sentByServer).toBeGreaterThan(2400);
      expect(r.serverSends[0].at).toBe(10);
      expect(r.serverSends[0].types).toEqual(["initial", "handshake"]);
      // Retransmissions come from the PTO (after ~1 s), and stop at the limit: nothing after.
      const later = r.serverSends.filter((s) => s.at > 10);
      expect(later.length).toBeGreaterThan(0);
      expect(later[0].at).toBeGreaterThan(900);
      const stoppedAt = r.serverSends.at(-1)!.at;
      expect(r.p.net.sent.get("server>client")!.bytes).toBe(r.sentByServer);
      // The server then gives up at its idle timeout, having sent nothing more.
      expect(closedInfo(r.p.serverEvents)?.initiator).toBe("idle");
      expect(stoppedAt).toBeLessThan(1_100);
      // Last receipt and first ack-eliciting send at 10 ms: idle 20 s after that.
      expect(r.serverClosedAt).toBeCloseTo(10 + 20_000, 6);
      expect(r.p.server.connections.size).toBe(0);
    }));

  it("grows the budget with each datagram from a client that never hears the server, never beyond 3x", () =>
    withSeed(62, (seed) => {
      // The server's flights are all lost, so the client keeps probing with Initials (at ~1 s,
      // ~3 s, ~7 s, ...), each of which raises the server's budget; then the client goes silent.
      const r = silentClient(seed, 5, true);
      expect(r.receivedByServer).toBe(5 * 1200);
      expect(r.sentByServer).toBeLessThanOrEqual(3 * r.receivedByServer);
      expect(r.sentByServer).toBeGreaterThan(3 * 1200);
      expect(r.worst).toBeLessThanOrEqual(3);
      // The client never got anything: it gave up at its idle timeout too.
      expect(closedInfo(r.p.clientEvents)?.initiator).toBe("idle");
      expect(closedInfo(r.p.serverEvents)?.initiator).toBe("idle");
    }));
});
