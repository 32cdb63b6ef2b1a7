/**
 * Full in-memory TLS 1.3 handshakes between TlsClient and TlsServer (QUIC mode) for every cipher
 * suite × group × signature scheme, under every crypto provider.
 */
import { describe, expect, it } from "vitest";
import type { NamedGroup } from "../../src/crypto/provider.js";
import type { CertKeyType } from "../../src/tls/certgen.js";
import type { TlsEvent } from "../../src/tls/handshake-common.js";
import {
  type HandshakeMessage,
  HandshakeReassembler,
  parseHandshake,
  parseHandshakeBody,
} from "../../src/tls/messages.js";
import { CIPHER_SUITES, type CipherSuiteName, signatureSchemeByCode } from "../../src/tls/suites.js";
import { TicketKeys } from "../../src/tls/ticket.js";
import { fromHex, toHex } from "../../src/util/bytes.js";
import { makePair, NOW, runHandshake, secretsOf } from "./helpers.js";
import { PROVIDERS } from "./providers.js";
import rfc8448 from "./vectors/rfc8448-simple-1rtt.json" with { type: "json" };

const SUITES = Object.keys(CIPHER_SUITES) as CipherSuiteName[];
const GROUPS: NamedGroup[] = ["x25519", "secp256r1"];
const KEYS: [CertKeyType, string][] = [
  ["ecdsa-p256", "ecdsa_secp256r1_sha256"],
  ["ed25519", "ed25519"],
];

const matrix = SUITES.flatMap((suite) =>
  GROUPS.flatMap((group) => KEYS.map(([keyType, scheme]) => ({ suite, group, keyType, scheme }))),
);

function types(events: readonly TlsEvent[]): string[] {
  return events.map((e) => (e.type === "secret" ? `secret:${e.level}/${e.direction}` : e.type));
}

describe.each(PROVIDERS)("TLS 1.3 handshake over QUIC (%s)", (_name, provider) => {
  it.each(matrix)("$suite, $group, $scheme", ({ suite, group, keyType, scheme }) => {
    const { client, server } = makePair(provider, {
      keyType,
      client: { cipherSuites: [suite], groups: [group, ...GROUPS.filter((g) => g !== group)] },
    });
    const run = runHandshake(client, server);

    // The server signed with the scheme of its key.
    const flight = new HandshakeReassembler();
    flight.push(run.serverSent[1].data);
    const msgs: HandshakeMessage[] = [];
    for (let m = flight.next(); m; m = flight.next()) msgs.push(parseHandshakeBody(m.msgType, m.body));
    expect(msgs.map((m) => m.type)).toEqual([
      "encrypted_extensions",
      "certificate",
      "certificate_verify",
      "finished",
    ]);
    const cv = msgs[2];
    expect(cv.type === "certificate_verify" && signatureSchemeByCode(cv.algorithm)).toBe(scheme);

    // No HelloRetryRequest: one ClientHello, one ServerHello.
    expect(run.clientSent.map((o) => o.level)).toEqual(["initial", "handshake"]);
    expect(run.serverSent.map((o) => o.level)).toEqual(["initial", "handshake", "application"]);

    expect(types(run.clientEvents)).toEqual([
      "secret:handshake/read",
      "secret:handshake/write",
      "transport_parameters",
      "alpn",
      "secret:application/read",
      "secret:application/write",
      "handshake_complete",
      "session_ticket",
    ]);
    expect(types(run.serverEvents)).toEqual([
      "secret:handshake/write",
      "secret:handshake/read",
      "secret:application/write",
      "transport_parameters",
      "alpn",
      "secret:application/read",
      "handshake_complete",
      "ticket_issued",
    ]);

    // Both sides derive the same secrets, with the negotiated suite.
    const c = secretsOf(run.clientEvents);
    const s = secretsOf(run.serverEvents);
    for (const level of ["handshake", "application"]) {
      expect(toHex(c.get(`${level}/write`)!)).toBe(toHex(s.get(`${level}/read`)!));
      expect(toHex(c.get(`${level}/read`)!)).toBe(toHex(s.get(`${level}/write`)!));
      expect(toHex(c.get(`${level}/write`)!)).not.toBe(toHex(c.get(`${level}/read`)!));
    }
    const hashLen = CIPHER_SUITES[suite].hash === "sha384" ? 48 : 32;
    expect(c.get("application/read")!.length).toBe(hashLen);
    for (const e of [...run.clientEvents, ...run.serverEvents]) {
      if (e.type === "secret") expect(e.suite.name).toBe(suite);
    }
    expect(client.cipherSuite?.name).toBe(suite);
    expect(server.cipherSuite?.name).toBe(suite);

    // ALPN and transport parameters cross over.
    const ctp = run.clientEvents.find((e) => e.type === "transport_parameters");
    const stp = run.serverEvents.find((e) => e.type === "transport_parameters");
    expect(ctp?.type === "transport_parameters" && toHex(ctp.data)).toBe("0a0b");
    expect(stp?.type === "transport_parameters" && toHex(stp.data)).toBe("010203");
    expect(client.alpnProtocol).toBe("mqtt");
    expect(server.alpnProtocol).toBe("mqtt");
    expect(server.serverName).toBe("localhost");

    const done = run.clientEvents.find((e) => e.type === "handshake_complete");
    if (done?.type !== "handshake_complete") throw new Error("client did not complete");
    expect(done.peerCertificates).toHaveLength(2);
    expect(client.handshakeComplete && server.handshakeComplete).toBe(true);

    // Exporters agree.
    const label = "EXPORTER-test";
    const ctx = new Uint8Array([1, 2, 3]);
    expect(toHex(client.exportKeyingMaterial(label, ctx, 32))).toBe(
      toHex(server.exportKeyingMaterial(label, ctx, 32)),
    );

    // The ticket reaches the client with a PSK, and the server can open it to the same PSK.
    const t = run.clientEvents.find((e) => e.type === "session_ticket");
    if (t?.type !== "session_ticket") throw new Error("no ticket");
    expect(t.ticket.suite).toBe(suite);
    expect(t.ticket.alpn).toBe("mqtt");
    expect(t.ticket.psk.length).toBe(hashLen);
    expect(toHex(t.ticket.peerTransportParameters!)).toBe("0a0b");
  });

  it("survives input delivered one byte at a time", () => {
    const { client, server } = makePair(provider, { client: { cipherSuites: ["TLS_AES_256_GCM_SHA384"] } });
    const run = runHandshake(client, server, { fragment: 1 });
    expect(client.handshakeComplete && server.handshakeComplete).toBe(true);
    const c = secretsOf(run.clientEvents);
    const s = secretsOf(run.serverEvents);
    expect(toHex(c.get("application/write")!)).toBe(toHex(s.get("application/read")!));
    expect(run.clientEvents.some((e) => e.type === "session_ticket")).toBe(true);
  });

  it("survives input split at odd sizes", () => {
    for (const fragment of [2, 3, 7, 100]) {
      const { client, server } = makePair(provider, { seed: fragment });
      runHandshake(client, server, { fragment });
      expect(client.handshakeComplete && server.handshakeComplete).toBe(true);
    }
  });

  it("sends a HelloRetryRequest when the client's only key share is for a group the server refuses", () => {
    const { client, server } = makePair(provider, {
      client: { groups: ["x25519", "secp256r1"], keyShareGroups: ["x25519"] },
      server: { groups: ["secp256r1"] },
    });
    const run = runHandshake(client, server);
    expect(run.clientSent.map((o) => o.level)).toEqual(["initial", "initial", "handshake"]);
    expect(run.serverSent.map((o) => o.level)).toEqual(["initial", "initial", "handshake", "application"]);
    expect(client.handshakeComplete && server.handshakeComplete).toBe(true);
    const c = secretsOf(run.clientEvents);
    const s = secretsOf(run.serverEvents);
    expect(toHex(c.get("handshake/write")!)).toBe(toHex(s.get("handshake/read")!));
    expect(toHex(c.get("application/read")!)).toBe(toHex(s.get("application/write")!));
  });

  it("HelloRetryRequest with a cookie, SHA-384 suite, one byte at a time", () => {
    const { client, server } = makePair(provider, {
      client: { cipherSuites: ["TLS_AES_256_GCM_SHA384"], keyShareGroups: ["secp256r1"] },
      server: { groups: ["x25519"], helloRetryCookie: true },
    });
    const run = runHandshake(client, server, { fragment: 1 });
    expect(client.handshakeComplete && server.handshakeComplete).toBe(true);
    expect(run.clientEvents.some((e) => e.type === "session_ticket")).toBe(true);
  });

  it("uses the client's key share without HRR when the server accepts it, whatever the server prefers", () => {
    const { client, server } = makePair(provider, {
      client: { keyShareGroups: ["secp256r1"] },
      server: { groups: ["x25519", "secp256r1"] },
    });
    const run = runHandshake(client, server);
    expect(run.clientSent.map((o) => o.level)).toEqual(["initial", "handshake"]);
  });

  it("issues several tickets that a shared TicketKeys opens to the client's PSKs", () => {
    const ticketKeys = TicketKeys.generate(provider, { fill: (b) => b.fill(7) });
    const { client, server } = makePair(provider, {
      server: { ticketKeys, ticketCount: 2, maxEarlyDataSize: 0xffffffff, ticketLifetime: 3600 },
    });
    const run = runHandshake(client, server, { now: NOW + 5 });
    const tickets = run.clientEvents.flatMap((e) => (e.type === "session_ticket" ? [e.ticket] : []));
    expect(tickets).toHaveLength(2);
    expect(toHex(tickets[0].psk)).not.toBe(toHex(tickets[1].psk));
    for (const t of tickets) {
      const state = ticketKeys.open(t.ticket);
      expect(state).toBeDefined();
      expect(toHex(state!.psk)).toBe(toHex(t.psk));
      expect(state!.issuedAt).toBe(NOW + 5);
      expect(state!.lifetime).toBe(3600);
      expect(state!.ageAdd).toBe(t.ageAdd);
      expect(state!.alpn).toBe("mqtt");
      expect(state!.serverName).toBe("localhost");
      expect(t.maxEarlyDataSize).toBe(0xffffffff);
      const tampered = t.ticket.slice();
      tampered[tampered.length - 1] ^= 1;
      expect(ticketKeys.open(tampered)).toBeUndefined();
    }
    expect(server.sendSessionTicket(NOW + 10)).toBe(true);
    expect(server.pollOutput()?.level).toBe("application");
  });

  it("issues no ticket when tickets are disabled", () => {
    const { client, server } = makePair(provider, { server: { ticketKeys: false } });
    const run = runHandshake(client, server);
    expect(run.serverSent.map((o) => o.level)).toEqual(["initial", "handshake"]);
    expect(client.handshakeComplete).toBe(true);
  });

  it("signs with rsa_pss_rsae_sha256 when the server has an RSA key (RFC 8448 §2 key and certificate)", () => {
    const k = rfc8448.serverRsaKey;
    const privateKey = {
      kind: "rsa" as const,
      n: fromHex(k.n),
      e: fromHex(k.e),
      d: fromHex(k.d),
      p: fromHex(k.p),
      q: fromHex(k.q),
      dp: fromHex(k.dp),
      dq: fromHex(k.dq),
      qi: fromHex(k.qi),
    };
    const cert = parseHandshake(fromHex(rfc8448.certificate));
    if (cert.type !== "certificate") throw new Error("bad fixture");
    const { client, server } = makePair(provider, {
      client: { verifier: "insecure-skip-verification" },
      server: { certificateChain: [cert.entries[0].data], privateKey },
    });
    const run = runHandshake(client, server);
    expect(client.handshakeComplete && server.handshakeComplete).toBe(true);
    const msgs = new HandshakeReassembler();
    msgs.push(run.serverSent[1].data);
    const all: HandshakeMessage[] = [];
    for (let m = msgs.next(); m; m = msgs.next()) all.push(parseHandshakeBody(m.msgType, m.body));
    const cv = all.find((m) => m.type === "certificate_verify");
    expect(cv?.type === "certificate_verify" && cv.algorithm).toBe(0x0804);
  });
});
