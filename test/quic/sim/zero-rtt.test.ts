/**
 * 0-RTT (RFC 9001 §4.6, RFC 9000 §17.2.3): with a ticket from a first connection, the client
 * sends stream data in 0-RTT packets with its first flight; the server reads it half a round
 * trip after the client started, a full round trip before the handshake completes. When the
 * server declines, the same data arrives once, resent in 1-RTT packets.
 */
import { describe, expect, it } from "vitest";
import type { Connection, ConnectionEvent } from "../../../src/quic/connection.js";
import type { SessionTicket } from "../../../src/tls/handshake-common.js";
import { type SimDatagram, withSeed } from "../../sim/network.js";
import { Pair, readAll } from "../harness.js";
import { packetTypes, provider } from "./helpers.js";

const STATIC_KEY = new Uint8Array(32).fill(0x3c);
const LATENCY = 25; // one way
const MESSAGE = new TextEncoder().encode("CONNECT+PUBLISH in 0-RTT");

function connected(events: readonly ConnectionEvent[]) {
  const e = events.find((x) => x.type === "connected");
  if (e?.type !== "connected") throw new Error("not connected");
  return e;
}

function ticketFrom(seed: number): SessionTicket {
  const p = new Pair(provider, {
    seed,
    staticKey: STATIC_KEY,
    serverEarlyData: true,
    link: { latency: LATENCY },
  });
  expect(p.handshake()).toBe(true);
  p.run(() => p.clientEvents.some((e) => e.type === "session_ticket"), 1000);
  const t = p.clientEvents.find((e) => e.type === "session_ticket");
  if (t?.type !== "session_ticket") throw new Error("no ticket");
  expect(t.ticket.maxEarlyDataSize).toBe(0xffffffff);
  return t.ticket;
}

/** A second connection that writes MESSAGE on a fresh stream before anything is sent. */
function secondConnection(
  seed: number,
  ticket: SessionTicket,
  serverEarlyData: boolean,
  drop?: (d: SimDatagram) => boolean,
) {
  let streamId = -1;
  const p = new Pair(provider, {
    seed,
    staticKey: STATIC_KEY,
    link: { latency: LATENCY },
    sessionTicket: ticket,
    earlyData: true,
    serverEarlyData,
    startAt: 10_000,
    beforeStart: (c: Connection) => {
      streamId = c.openStream(true) as number;
      c.write(streamId, MESSAGE);
      c.finish(streamId);
    },
  });
  const sent: SimDatagram[] = [];
  p.net.filter = (d) => {
    sent.push(d);
    return drop?.(d) ?? false;
  };
  let receivedAt = -1;
  const chunks: Uint8Array[] = [];
  p.run(() => {
    const s = p.serverConn;
    if (s && receivedAt < 0 && p.serverEvents.some((e) => e.type === "stream_readable")) {
      const r = readAll(s, p.net.now, streamId);
      chunks.push(...r.bytes);
      if (r.fin) receivedAt = p.net.now;
    }
    return receivedAt >= 0 && p.clientEvents.some((e) => e.type === "handshake_confirmed");
  }, 5000);
  const got = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    got.set(c, at);
    at += c.length;
  }
  return { p, sent, receivedAt: receivedAt - 10_000, got };
}

describe("0-RTT", () => {
  it("delivers stream data in the first flight: the server reads it after one one-way delay", () =>
    withSeed(401, (seed) => {
      const ticket = ticketFrom(seed);
      const { p, sent, receivedAt, got } = secondConnection(seed + 1, ticket, true);
      expect(new TextDecoder().decode(got)).toBe(new TextDecoder().decode(MESSAGE));
      // The client's first datagrams: the padded Initial, then 0-RTT right behind it.
      const fromClient = sent.filter((d) => d.from === "client");
      expect(packetTypes(fromClient[0].data)).toEqual(["initial"]);
      expect(packetTypes(fromClient[1].data)).toEqual(["0rtt"]);
      expect(receivedAt).toBe(LATENCY);
      expect(p.clientConn.stats.zeroRttPackets).toBeGreaterThan(0);
      expect(p.serverConn?.stats.zeroRttPackets).toBe(p.clientConn.stats.zeroRttPackets);
      expect(connected(p.clientEvents)).toMatchObject({ resumed: true, earlyData: "accepted" });
      expect(connected(p.serverEvents)).toMatchObject({ resumed: true, earlyData: "accepted" });
    }));

  it("a server that declines 0-RTT gets the data once, in 1-RTT, after the handshake", () =>
    withSeed(402, (seed) => {
      const ticket = ticketFrom(seed);
      const { p, sent, receivedAt, got } = secondConnection(seed + 1, ticket, false);
      expect(new TextDecoder().decode(got)).toBe(new TextDecoder().decode(MESSAGE));
      expect(sent.some((d) => d.from === "client" && packetTypes(d.data).includes("0rtt"))).toBe(true);
      // The client learns of the rejection from the server's flight (1 RTT) and resends at once.
      expect(receivedAt).toBe(3 * LATENCY);
      expect(connected(p.clientEvents)).toMatchObject({ resumed: true, earlyData: "rejected" });
      expect(connected(p.serverEvents)).toMatchObject({ resumed: true, earlyData: "rejected" });
    }));

  it("recovers lost 0-RTT packets by retransmitting their data", () =>
    withSeed(403, (seed) => {
      const ticket = ticketFrom(seed);
      const { got, p } = secondConnection(seed + 1, ticket, true, (d) =>
        packetTypes(d.data).includes("0rtt"),
      );
      expect(new TextDecoder().decode(got)).toBe(new TextDecoder().decode(MESSAGE));
      expect(connected(p.clientEvents).earlyData).toBe("accepted");
    }));
});
