/**
 * TLS 1.3 session resumption with tickets (RFC 8446 §2.2, §4.2.11, §4.6.1): psk_dhe_ke, binder
 * checks, ticket validity, HelloRetryRequest, and every way an offered ticket is declined.
 */
import { describe, expect, it } from "vitest";
import type { CryptoProvider } from "../../src/crypto/provider.js";
import { ExtensionType } from "../../src/tls/extensions.js";
import type { SessionTicket, TlsEvent, TlsOutput } from "../../src/tls/handshake-common.js";
import { HandshakeReassembler, parseHandshakeBody } from "../../src/tls/messages.js";
import type { TlsServerConfig } from "../../src/tls/server.js";
import { CIPHER_SUITES, type CipherSuiteName } from "../../src/tls/suites.js";
import { TicketKeys } from "../../src/tls/ticket.js";
import { bytesEqual } from "../../src/util/bytes.js";
import { makePair, NOW, type PairOptions, runHandshake, secretsOf } from "./helpers.js";
import { PROVIDERS } from "./providers.js";

const SUITES = Object.keys(CIPHER_SUITES) as CipherSuiteName[];

function ticketsOf(events: readonly TlsEvent[]): SessionTicket[] {
  return events.flatMap((e) => (e.type === "session_ticket" ? [e.ticket] : []));
}

function completeOf(events: readonly TlsEvent[]): Extract<TlsEvent, { type: "handshake_complete" }> {
  const e = events.find((x) => x.type === "handshake_complete");
  if (e?.type !== "handshake_complete") throw new Error("no handshake_complete");
  return e;
}

/** The message types in the server's handshake-level flight. */
function serverFlight(sent: readonly TlsOutput[]): string[] {
  const r = new HandshakeReassembler();
  for (const o of sent) if (o.level === "handshake") r.push(o.data);
  const types: string[] = [];
  for (let m = r.next(); m; m = r.next()) types.push(parseHandshakeBody(m.msgType, m.body).type);
  return types;
}

/** A first full handshake against `ticketKeys`, returning the ticket the client got. */
function firstTicket(
  provider: CryptoProvider,
  ticketKeys: TicketKeys,
  opts: PairOptions = {},
  now = NOW,
): SessionTicket {
  const { client, server } = makePair(provider, {
    ...opts,
    server: { ticketKeys, ...opts.server },
  });
  const run = runHandshake(client, server, { now });
  expect(client.resumed).toBe(false);
  const [t] = ticketsOf(run.clientEvents);
  expect(t).toBeDefined();
  return t;
}

describe.each(PROVIDERS)("TLS 1.3 resumption (%s)", (_name, provider) => {
  const keys = (): TicketKeys => TicketKeys.generate(provider, { fill: (b) => b.fill(9) });

  it.each(SUITES)("resumes a %s session: PSK selected, no Certificate, fresh secrets", (suite) => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys, { client: { cipherSuites: [suite] } });
    const { client, server } = makePair(provider, {
      seed: 2,
      client: { cipherSuites: [suite], sessionTicket: ticket },
      server: { ticketKeys },
    });
    const run = runHandshake(client, server, { now: NOW + 1000 });
    expect(client.resumed && server.handshakeComplete && client.handshakeComplete).toBe(true);
    expect(serverFlight(run.serverSent)).toEqual(["encrypted_extensions", "finished"]);
    expect(completeOf(run.clientEvents)).toMatchObject({ resumed: true, peerCertificates: [] });
    expect(completeOf(run.serverEvents).resumed).toBe(true);
    // Both ends derived the same application secrets; psk_dhe_ke mixes in a fresh ECDHE share.
    const c = secretsOf(run.clientEvents);
    const s = secretsOf(run.serverEvents);
    expect(bytesEqual(c.get("application/write")!, s.get("application/read")!)).toBe(true);
    expect(bytesEqual(c.get("application/read")!, s.get("application/write")!)).toBe(true);
    // A resumed session issues a new ticket, which resumes again.
    const [next] = ticketsOf(run.clientEvents);
    expect(next).toBeDefined();
    expect(bytesEqual(next.psk, ticket.psk)).toBe(false);
    const again = makePair(provider, {
      seed: 3,
      client: { cipherSuites: [suite], sessionTicket: next },
      server: { ticketKeys },
    });
    runHandshake(again.client, again.server, { now: NOW + 2000 });
    expect(again.client.resumed).toBe(true);
  });

  it("sends pre_shared_key last with the ticket's obfuscated age", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys);
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket },
      server: { ticketKeys },
    });
    const run = runHandshake(client, server, { now: ticket.receivedAt + 1234 });
    const ch = parseHandshakeBody(1, run.clientSent[0].data.subarray(4));
    if (ch.type !== "client_hello") throw new Error("not a ClientHello");
    const last = ch.extensions[ch.extensions.length - 1];
    expect(last.type).toBe("pre_shared_key");
    if (last.type !== "pre_shared_key") return;
    expect(last.identities[0].obfuscatedTicketAge).toBe((1234 + ticket.ageAdd) >>> 0);
    expect(bytesEqual(last.identities[0].identity, ticket.ticket)).toBe(true);
    expect(client.resumed).toBe(true);
  });

  it("resumes through a HelloRetryRequest, with a new binder over ClientHello1 and the HRR", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys);
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket },
      server: { ticketKeys, groups: ["secp256r1"] },
    });
    const run = runHandshake(client, server, { now: NOW + 10 });
    expect(run.clientSent.filter((o) => o.level === "initial")).toHaveLength(2);
    expect(client.resumed).toBe(true);
    expect(completeOf(run.serverEvents).resumed).toBe(true);
  });

  const declined: [
    string,
    (t: SessionTicket) => { ticket: SessionTicket; now?: number; server?: Partial<TlsServerConfig> },
  ][] = [
    ["an expired ticket (client side)", (t) => ({ ticket: t, now: t.receivedAt + t.lifetime * 1000 })],
    [
      "a ticket the server thinks expired",
      (t) => ({ ticket: { ...t, lifetime: 604800 }, now: t.receivedAt + 86400 * 1000 + 1 }),
    ],
    [
      "a ticket of another server's key",
      (t) => ({
        ticket: t,
        server: { ticketKeys: TicketKeys.generate(provider, { fill: (b) => b.fill(3) }) },
      }),
    ],
    ["a ticket for another server name", (t) => ({ ticket: { ...t, serverName: "other.example" } })],
    [
      "a tampered ticket",
      (t) => {
        const ticket = t.ticket.slice();
        ticket[ticket.length - 1] ^= 1;
        return { ticket: { ...t, ticket } };
      },
    ],
    ["a ticket when the server issues none", (t) => ({ ticket: t, server: { ticketKeys: false } })],
  ];
  it.each(declined)("falls back to a full handshake for %s", (_what, make) => {
    const ticketKeys = keys();
    const first = firstTicket(provider, ticketKeys);
    const { ticket, now, server: serverOpts } = make(first);
    const { client, server } = makePair(provider, {
      seed: 4,
      client: { sessionTicket: ticket },
      server: { ticketKeys, ...serverOpts },
    });
    const run = runHandshake(client, server, { now: now ?? NOW + 1000 });
    expect(client.handshakeComplete && server.handshakeComplete).toBe(true);
    expect(client.resumed).toBe(false);
    expect(serverFlight(run.serverSent)).toEqual([
      "encrypted_extensions",
      "certificate",
      "certificate_verify",
      "finished",
    ]);
  });

  it("falls back when the server negotiates a suite of another hash", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys, {
      client: { cipherSuites: ["TLS_AES_256_GCM_SHA384"] },
    });
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket },
      server: { ticketKeys },
    });
    runHandshake(client, server, { now: NOW + 1000 });
    expect(client.handshakeComplete).toBe(true);
    expect(client.resumed).toBe(false);
  });

  it("does not offer a ticket whose hash fits none of our suites", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys, {
      client: { cipherSuites: ["TLS_AES_256_GCM_SHA384"] },
    });
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket, cipherSuites: ["TLS_AES_128_GCM_SHA256"] },
      server: { ticketKeys },
    });
    const run = runHandshake(client, server, { now: NOW + 1000 });
    const ch = parseHandshakeBody(1, run.clientSent[0].data.subarray(4));
    expect(ch.type === "client_hello" && ch.extensions.some((e) => e.type === "pre_shared_key")).toBe(false);
  });

  it("a wrong binder ends the handshake with decrypt_error (RFC 8446 §4.2.11)", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys);
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket },
      server: { ticketKeys },
    });
    expect(() =>
      runHandshake(client, server, {
        now: NOW + 1000,
        tamper: (from, out) => {
          if (from !== "client" || out.level !== "initial") return out.data;
          const d = out.data.slice();
          d[d.length - 1] ^= 0x80; // the binder is the last byte of the ClientHello
          return d;
        },
      }),
    ).toThrow(/binder/);
    expect(server.error?.description).toBe(51); // decrypt_error
  });

  it("a PSK offered without psk_dhe_ke is ignored: we never resume without (EC)DHE", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys);
    const { client, server } = makePair(provider, {
      client: {
        sessionTicket: ticket,
        testing: {
          // psk_ke only (mode 0); the binder is computed over this ClientHello as sent.
          clientHelloExtensions: (exts) =>
            exts.map((e) => (e.type === "psk_key_exchange_modes" ? { ...e, modes: [0] } : e)),
        },
      },
      server: { ticketKeys },
    });
    runHandshake(client, server, { now: NOW + 1000 });
    expect(client.handshakeComplete).toBe(true);
    expect(client.resumed).toBe(false);
  });

  it("the client refuses a ServerHello selecting a PSK identity it did not offer", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys);
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket },
      server: { ticketKeys },
    });
    expect(() =>
      runHandshake(client, server, {
        now: NOW + 1000,
        tamper: (from, out) => {
          if (from !== "server" || out.level !== "initial") return out.data;
          // ServerHello: find pre_shared_key (00 29 00 02 00 00) and make it select identity 1.
          const d = out.data.slice();
          for (let i = 0; i + 6 <= d.length; i++) {
            if (d[i] === 0 && d[i + 1] === ExtensionType.pre_shared_key && d[i + 2] === 0 && d[i + 3] === 2) {
              d[i + 5] = 1;
              return d;
            }
          }
          throw new Error("no pre_shared_key in the ServerHello");
        },
      }),
    ).toThrow(/PSK identity 1/);
    expect(client.error?.description).toBe(47); // illegal_parameter
  });
});

describe.each(PROVIDERS)("TLS 1.3 early data (%s)", (_name, provider) => {
  const keys = (): TicketKeys => TicketKeys.generate(provider, { fill: (b) => b.fill(9) });
  const ZERO_RTT = { maxEarlyDataSize: 0xffffffff, acceptEarlyData: () => true };

  function earlyOf(events: readonly TlsEvent[]): boolean | undefined {
    const e = events.find((x) => x.type === "early_data");
    return e?.type === "early_data" ? e.accepted : undefined;
  }

  it("accepts 0-RTT: the client's early write secret is the server's early read secret", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys, { server: ZERO_RTT });
    const { client, server } = makePair(provider, {
      seed: 5,
      client: { sessionTicket: ticket, earlyData: true },
      server: { ticketKeys, ...ZERO_RTT },
    });
    const run = runHandshake(client, server, { now: ticket.receivedAt + 500 });
    const c = secretsOf(run.clientEvents);
    const s = secretsOf(run.serverEvents);
    expect(c.get("early/write")).toBeDefined();
    expect(bytesEqual(c.get("early/write")!, s.get("early/read")!)).toBe(true);
    expect(earlyOf(run.clientEvents)).toBe(true);
    expect(earlyOf(run.serverEvents)).toBe(true);
    // The early secret comes right after the ClientHello, before any server message.
    expect(run.clientEvents[0]).toMatchObject({ type: "secret", level: "early", direction: "write" });
  });

  it("declines a replayed 0-RTT ClientHello (RFC 8446 §8.2) but still resumes", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys, { server: ZERO_RTT });
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket, earlyData: true },
      server: { ticketKeys, ...ZERO_RTT },
    });
    const now = ticket.receivedAt + 500;
    runHandshake(client, server, { now });
    expect(client.resumed).toBe(true);
    // An attacker replays the same ClientHello to another connection of the same server.
    const replayed = makePair(provider, { seed: 6, server: { ticketKeys, ...ZERO_RTT } }).server;
    const again = makePair(provider, {
      client: { sessionTicket: ticket, earlyData: true },
      server: { ticketKeys, ...ZERO_RTT },
    }).client;
    again.start(now);
    replayed.receive("initial", again.pollOutput()!.data, now + 1);
    const events: TlsEvent[] = [];
    for (let e = replayed.pollEvent(); e; e = replayed.pollEvent()) events.push(e);
    expect(earlyOf(events)).toBe(false);
    expect(events.some((e) => e.type === "secret" && e.level === "early")).toBe(false);
  });

  const declined: [
    string,
    PairOptions["server"],
    ((t: SessionTicket) => SessionTicket) | undefined,
    number,
  ][] = [
    [
      "the server's acceptEarlyData says no",
      { maxEarlyDataSize: 0xffffffff, acceptEarlyData: () => false },
      undefined,
      500,
    ],
    ["the server has no acceptEarlyData", { maxEarlyDataSize: 0xffffffff }, undefined, 500],
    // The client thinks the ticket is 20 s younger than the server knows it is.
    [
      "the ticket age is off by more than the window",
      ZERO_RTT,
      (t) => ({ ...t, receivedAt: t.receivedAt + 20_000 }),
      25_000,
    ],
  ];
  it.each(declined)("declines 0-RTT when %s, and resumes", (_what, serverOpts, edit, after) => {
    const ticketKeys = keys();
    const first = firstTicket(provider, ticketKeys, { server: ZERO_RTT });
    const ticket = edit ? edit(first) : first;
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket, earlyData: true },
      server: { ticketKeys, ...serverOpts },
    });
    const run = runHandshake(client, server, { now: first.receivedAt + after });
    expect(client.resumed).toBe(true);
    expect(earlyOf(run.clientEvents)).toBe(false);
    expect(earlyOf(run.serverEvents)).toBe(false);
    expect(secretsOf(run.serverEvents).has("early/read")).toBe(false);
  });

  it("does not offer 0-RTT with a ticket that does not allow it", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys); // maxEarlyDataSize 0
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket, earlyData: true },
      server: { ticketKeys, ...ZERO_RTT },
    });
    const run = runHandshake(client, server, { now: NOW + 500 });
    expect(client.resumed).toBe(true);
    expect(earlyOf(run.clientEvents)).toBeUndefined();
    expect(secretsOf(run.clientEvents).has("early/write")).toBe(false);
  });

  it("after a HelloRetryRequest the early data is rejected and the session still resumes", () => {
    const ticketKeys = keys();
    const ticket = firstTicket(provider, ticketKeys, { server: ZERO_RTT });
    const { client, server } = makePair(provider, {
      client: { sessionTicket: ticket, earlyData: true },
      server: { ticketKeys, ...ZERO_RTT, groups: ["secp256r1"] },
    });
    const run = runHandshake(client, server, { now: ticket.receivedAt + 500 });
    expect(client.resumed).toBe(true);
    expect(earlyOf(run.clientEvents)).toBe(false);
  });
});
