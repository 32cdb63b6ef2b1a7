/**
 * TLS resumption over QUIC (RFC 9001 §4.5, RFC 8446 §2.2): a client that kept a ticket from a
 * first connection resumes on the next one; the server then sends no certificate chain and no
 * signature. A ticket the server cannot open falls back cleanly.
 */
import { describe, expect, it } from "vitest";
import type { ConnectionEvent } from "../../../src/quic/connection.js";
import type { SessionTicket } from "../../../src/tls/handshake-common.js";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { provider } from "./helpers.js";

const STATIC_KEY = new Uint8Array(32).fill(0x5a);

function connected(events: readonly ConnectionEvent[]) {
  const e = events.find((x) => x.type === "connected");
  if (e?.type !== "connected") throw new Error("not connected");
  return e;
}

/** A first connection's ticket. */
function firstConnection(seed: number, staticKey = STATIC_KEY): SessionTicket {
  const p = new Pair(provider, { seed, staticKey, link: { latency: 10 } });
  expect(p.handshake()).toBe(true);
  p.run(() => p.clientEvents.some((e) => e.type === "session_ticket"), 1000);
  const t = p.clientEvents.find((e) => e.type === "session_ticket");
  if (t?.type !== "session_ticket") throw new Error("no session ticket");
  expect(connected(p.clientEvents).resumed).toBe(false);
  return t.ticket;
}

describe("resumption over QUIC", () => {
  it("resumes with the first connection's ticket: no certificate, then streams as usual", () =>
    withSeed(301, (seed) => {
      const first = firstConnection(seed);
      const p = new Pair(provider, {
        seed: seed + 1,
        staticKey: STATIC_KEY,
        link: { latency: 10 },
        sessionTicket: first,
        startAt: 10_000,
      });
      expect(p.handshake()).toBe(true);
      const c = connected(p.clientEvents);
      expect(c.resumed).toBe(true);
      expect(c.peerCertificates).toEqual([]);
      expect(connected(p.serverEvents).resumed).toBe(true);
      // Streams work as on any connection.
      const id = p.clientConn.openStream(true)!;
      p.clientConn.write(id, new TextEncoder().encode("resumed"));
      p.touch(p.clientConn);
      expect(p.run(() => p.serverEvents.some((e) => e.type === "stream_readable"), 1000)).toBe(true);
    }));

  it("a ticket from another server falls back to a full handshake", () =>
    withSeed(302, (seed) => {
      const first = firstConnection(seed, new Uint8Array(32).fill(0x11));
      const p = new Pair(provider, {
        seed: seed + 1,
        staticKey: STATIC_KEY,
        sessionTicket: first,
        startAt: 10_000,
      });
      expect(p.handshake()).toBe(true);
      expect(connected(p.clientEvents).resumed).toBe(false);
      expect(connected(p.clientEvents).peerCertificates.length).toBeGreaterThan(0);
      expect(connected(p.serverEvents).resumed).toBe(false);
    }));
});
