/**
 * RFC 8448 §3 (Simple 1-RTT Handshake): the published messages must parse and re-serialize byte
 * for byte, and the key schedule must reproduce every published secret. Vectors are in
 * ./vectors/rfc8448-simple-1rtt.json, extracted verbatim from the RFC text.
 */
import { describe, expect, it } from "vitest";
import { SeededRng } from "../../src/crypto/random.js";
import { AlertDescription, TlsAlert } from "../../src/tls/alert.js";
import { TlsClient } from "../../src/tls/client.js";
import { findExtension } from "../../src/tls/extensions.js";
import type { TlsEvent } from "../../src/tls/handshake-common.js";
import {
  finishedKey,
  finishedVerifyData,
  KeySchedule,
  resumptionPsk,
  Transcript,
  trafficKeys,
} from "../../src/tls/key-schedule.js";
import {
  type ClientHello,
  type HandshakeMessage,
  parseHandshake,
  serializeHandshake,
} from "../../src/tls/messages.js";
import { concat, fromHex, toHex } from "../../src/util/bytes.js";
import { PROVIDERS } from "./providers.js";
import hrrVectors from "./vectors/rfc8448-hello-retry-request.json" with { type: "json" };
import resumedVectors from "./vectors/rfc8448-resumed-0rtt.json" with { type: "json" };
import vectors from "./vectors/rfc8448-simple-1rtt.json" with { type: "json" };

/** The names of the hex-string vectors (not the structured RSA key). */
type HexName = {
  [K in keyof typeof vectors]: (typeof vectors)[K] extends string ? K : never;
}[keyof typeof vectors];
const v = (name: HexName): Uint8Array => fromHex(vectors[name]);

/** Flips one bit of one byte, to prove a check depends on every byte. */
function flip(b: Uint8Array, at = b.length - 1): Uint8Array {
  const c = b.slice();
  c[at] ^= 0x01;
  return c;
}

describe("RFC 8448 §3 message codecs", () => {
  const names = [
    "clientHello",
    "serverHello",
    "encryptedExtensions",
    "certificate",
    "certificateVerify",
    "serverFinished",
    "clientFinished",
    "newSessionTicket",
  ] as const;
  for (const name of names) {
    it(`${name} parses and re-serializes byte for byte`, () => {
      const bytes = v(name);
      const msg = parseHandshake(bytes);
      expect(toHex(serializeHandshake(msg))).toBe(toHex(bytes));
    });
  }

  it("decodes the ClientHello fields", () => {
    const ch = parseHandshake(v("clientHello")) as Extract<HandshakeMessage, { type: "client_hello" }>;
    expect(ch.type).toBe("client_hello");
    expect(ch.cipherSuites).toEqual([0x1301, 0x1303, 0x1302]);
    expect(findExtension(ch.extensions, "server_name")?.hostName).toBe("server");
    expect(findExtension(ch.extensions, "supported_versions")?.versions).toEqual([0x0304]);
    const ks = findExtension(ch.extensions, "key_share");
    expect(ks?.shares.map((s) => s.group)).toEqual([0x001d]);
    expect(toHex(ks!.shares[0].keyExchange)).toBe(vectors.clientPublicKey);
    expect(findExtension(ch.extensions, "psk_key_exchange_modes")?.modes).toEqual([1]);
    // renegotiation_info, session_ticket and record_size_limit are kept raw.
    expect(
      ch.extensions.filter((e) => e.type === "opaque").map((e) => (e.type === "opaque" ? e.code : -1)),
    ).toEqual([0xff01, 0x23, 0x1c]);
  });

  it("decodes the ServerHello, Certificate, CertificateVerify and NewSessionTicket fields", () => {
    const sh = parseHandshake(v("serverHello"));
    if (sh.type !== "server_hello") throw new Error("not a ServerHello");
    expect(sh.cipherSuite).toBe(0x1301);
    expect(findExtension(sh.extensions, "selected_version")?.version).toBe(0x0304);
    expect(toHex(findExtension(sh.extensions, "key_share_server")!.share.keyExchange)).toBe(
      vectors.serverPublicKey,
    );
    const cert = parseHandshake(v("certificate"));
    if (cert.type !== "certificate") throw new Error("not a Certificate");
    expect(cert.entries).toHaveLength(1);
    expect(cert.entries[0].data.length).toBe(432);
    const cv = parseHandshake(v("certificateVerify"));
    if (cv.type !== "certificate_verify") throw new Error("not a CertificateVerify");
    expect(cv.algorithm).toBe(0x0804);
    expect(cv.signature.length).toBe(128);
    const nst = parseHandshake(v("newSessionTicket"));
    if (nst.type !== "new_session_ticket") throw new Error("not a NewSessionTicket");
    expect(nst.lifetime).toBe(30);
    expect(toHex(nst.nonce)).toBe("0000");
    expect(findExtension(nst.extensions, "early_data_max")?.maxEarlyDataSize).toBe(0x400);
  });
});

describe.each(PROVIDERS)("RFC 8448 §3 key schedule (%s)", (_name, provider) => {
  const transcriptUpTo = (...names: HexName[]): Uint8Array => {
    const t = new Transcript(provider, "sha256");
    for (const n of names) t.update(v(n));
    return t.digest();
  };

  it("computes the x25519 shared secret from both published private keys", () => {
    const client = provider.keyShareFromPrivate("x25519", v("clientPrivateKey"));
    const server = provider.keyShareFromPrivate("x25519", v("serverPrivateKey"));
    expect(toHex(client.publicKey)).toBe(vectors.clientPublicKey);
    expect(toHex(server.publicKey)).toBe(vectors.serverPublicKey);
    expect(toHex(client.sharedSecret(server.publicKey))).toBe(vectors.sharedSecret);
    expect(toHex(server.sharedSecret(client.publicKey))).toBe(vectors.sharedSecret);
  });

  it("derives every published secret, key and Finished value", () => {
    const ks = new KeySchedule(provider, "sha256");
    expect(toHex(ks.earlySecret)).toBe(vectors.earlySecret);
    expect(toHex(ks.deriveHandshakeSecret(v("sharedSecret")))).toBe(vectors.handshakeSecret);

    const helloHash = transcriptUpTo("clientHello", "serverHello");
    expect(toHex(helloHash)).toBe(vectors.helloHash);
    const chts = ks.clientHandshakeTrafficSecret(helloHash);
    const shts = ks.serverHandshakeTrafficSecret(helloHash);
    expect(toHex(chts)).toBe(vectors.clientHandshakeTrafficSecret);
    expect(toHex(shts)).toBe(vectors.serverHandshakeTrafficSecret);
    const sk = trafficKeys(provider, "sha256", shts, 16);
    expect(toHex(sk.key)).toBe(vectors.serverHandshakeKey);
    expect(toHex(sk.iv)).toBe(vectors.serverHandshakeIv);
    const ck = trafficKeys(provider, "sha256", chts, 16);
    expect(toHex(ck.key)).toBe(vectors.clientHandshakeKey);
    expect(toHex(ck.iv)).toBe(vectors.clientHandshakeIv);

    expect(toHex(ks.deriveMasterSecret())).toBe(vectors.masterSecret);

    // Server Finished covers ClientHello..CertificateVerify.
    const beforeServerFinished = transcriptUpTo(
      "clientHello",
      "serverHello",
      "encryptedExtensions",
      "certificate",
      "certificateVerify",
    );
    expect(toHex(finishedKey(provider, "sha256", shts))).toBe(vectors.serverFinishedKey);
    expect(toHex(finishedVerifyData(provider, "sha256", shts, beforeServerFinished))).toBe(
      vectors.serverFinishedVerifyData,
    );

    const serverFinishedHash = transcriptUpTo(
      "clientHello",
      "serverHello",
      "encryptedExtensions",
      "certificate",
      "certificateVerify",
      "serverFinished",
    );
    expect(toHex(serverFinishedHash)).toBe(vectors.serverFinishedHash);
    const cats = ks.clientApplicationTrafficSecret(serverFinishedHash);
    const sats = ks.serverApplicationTrafficSecret(serverFinishedHash);
    expect(toHex(cats)).toBe(vectors.clientApplicationTrafficSecret);
    expect(toHex(sats)).toBe(vectors.serverApplicationTrafficSecret);
    expect(toHex(ks.exporterMasterSecret(serverFinishedHash))).toBe(vectors.exporterMasterSecret);
    expect(toHex(trafficKeys(provider, "sha256", sats, 16).key)).toBe(vectors.serverApplicationKey);
    expect(toHex(trafficKeys(provider, "sha256", sats, 16).iv)).toBe(vectors.serverApplicationIv);
    expect(toHex(trafficKeys(provider, "sha256", cats, 16).key)).toBe(vectors.clientApplicationKey);
    expect(toHex(trafficKeys(provider, "sha256", cats, 16).iv)).toBe(vectors.clientApplicationIv);

    // Client Finished covers ClientHello..server Finished.
    expect(toHex(finishedKey(provider, "sha256", chts))).toBe(vectors.clientFinishedKey);
    expect(toHex(finishedVerifyData(provider, "sha256", chts, serverFinishedHash))).toBe(
      vectors.clientFinishedVerifyData,
    );

    const clientFinishedHash = transcriptUpTo(
      "clientHello",
      "serverHello",
      "encryptedExtensions",
      "certificate",
      "certificateVerify",
      "serverFinished",
      "clientFinished",
    );
    expect(toHex(clientFinishedHash)).toBe(vectors.clientFinishedHash);
    const rms = ks.resumptionMasterSecret(clientFinishedHash);
    expect(toHex(rms)).toBe(vectors.resumptionMasterSecret);
    expect(toHex(resumptionPsk(provider, "sha256", rms, v("ticketNonce")))).toBe(vectors.resumptionPsk);
  });

  it("gets a different value when any input byte changes", () => {
    const ks = new KeySchedule(provider, "sha256");
    expect(toHex(ks.deriveHandshakeSecret(flip(v("sharedSecret"), 0)))).not.toBe(vectors.handshakeSecret);
    const t = new Transcript(provider, "sha256");
    t.update(v("clientHello"));
    t.update(flip(v("serverHello"), 40));
    expect(toHex(t.digest())).not.toBe(vectors.helloHash);
    expect(
      toHex(
        finishedVerifyData(
          provider,
          "sha256",
          flip(v("clientHandshakeTrafficSecret")),
          v("serverFinishedHash"),
        ),
      ),
    ).not.toBe(vectors.clientFinishedVerifyData);
  });

  it("verifies the server's rsa_pss_rsae_sha256 CertificateVerify with the RSA key of RFC 8448 §2", async () => {
    const { parseCertificate } = await import("../../src/tls/x509.js");
    const cert = parseHandshake(v("certificate"));
    const cv = parseHandshake(v("certificateVerify"));
    if (cert.type !== "certificate" || cv.type !== "certificate_verify") throw new Error("bad fixture");
    const leaf = parseCertificate(cert.entries[0].data);
    expect(leaf.publicKey?.kind).toBe("rsa");
    const { certificateVerifyInput } = await import("../../src/tls/handshake-common.js");
    const hash = transcriptUpTo("clientHello", "serverHello", "encryptedExtensions", "certificate");
    const input = certificateVerifyInput("server", hash);
    expect(provider.verify("rsa_pss_rsae_sha256", leaf.publicKey!, input, cv.signature)).toBe(true);
    expect(provider.verify("rsa_pss_rsae_sha256", leaf.publicKey!, flip(input), cv.signature)).toBe(false);
    expect(provider.verify("rsa_pss_rsae_sha256", leaf.publicKey!, input, flip(cv.signature, 5))).toBe(false);
  });
});

describe.each(PROVIDERS)("RFC 8448 §3 client state machine (%s)", (_name, provider) => {
  const rfcClientHello = parseHandshake(v("clientHello")) as ClientHello;

  /** A client that reproduces the published ClientHello: fixed random, key share and extensions. */
  function rfcClient(): TlsClient {
    return new TlsClient({
      provider,
      rng: new SeededRng(8448),
      quic: false,
      alpn: [],
      serverName: "server",
      verifier: "insecure-skip-verification",
      cipherSuites: ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384"],
      groups: ["x25519"],
      testing: {
        random: rfcClientHello.random,
        keySharePrivateKeys: { x25519: v("clientPrivateKey") },
        // The RFC's list (with ffdhe groups, renegotiation_info, record_size_limit ...), but with
        // the key share the client computed itself from the published private key.
        clientHelloExtensions: (defaults) =>
          rfcClientHello.extensions.map((e) =>
            e.type === "key_share" ? findExtension(defaults, "key_share")! : e,
          ),
      },
    });
  }

  function drainEvents(c: TlsClient): TlsEvent[] {
    const out: TlsEvent[] = [];
    for (let e = c.pollEvent(); e; e = c.pollEvent()) out.push(e);
    return out;
  }

  it("sends the published ClientHello and, given the server's flight, the published client Finished", () => {
    const client = rfcClient();
    client.start(0);
    const ch = client.pollOutput();
    expect(ch?.level).toBe("initial");
    expect(toHex(ch!.data)).toBe(vectors.clientHello);
    expect(client.pollOutput()).toBeUndefined();

    client.receive("initial", v("serverHello"), 1);
    const hsEvents = drainEvents(client);
    expect(hsEvents.map((e) => (e.type === "secret" ? `${e.level}/${e.direction}` : e.type))).toEqual([
      "handshake/read",
      "handshake/write",
    ]);
    const secrets = Object.fromEntries(
      hsEvents.flatMap((e) => (e.type === "secret" ? [[`${e.level}/${e.direction}`, toHex(e.secret)]] : [])),
    );
    expect(secrets["handshake/read"]).toBe(vectors.serverHandshakeTrafficSecret);
    expect(secrets["handshake/write"]).toBe(vectors.clientHandshakeTrafficSecret);
    expect(client.cipherSuite?.name).toBe("TLS_AES_128_GCM_SHA256");

    client.receive("handshake", v("serverFlight"), 2);
    const fin = client.pollOutput();
    expect(fin?.level).toBe("handshake");
    expect(toHex(fin!.data)).toBe(vectors.clientFinished);
    expect(client.pollOutput()).toBeUndefined();
    const events = drainEvents(client);
    const app = Object.fromEntries(
      events.flatMap((e) => (e.type === "secret" ? [[`${e.level}/${e.direction}`, toHex(e.secret)]] : [])),
    );
    expect(app["application/read"]).toBe(vectors.serverApplicationTrafficSecret);
    expect(app["application/write"]).toBe(vectors.clientApplicationTrafficSecret);
    const done = events.find((e) => e.type === "handshake_complete");
    expect(done?.type === "handshake_complete" && done.peerCertificates.length).toBe(1);
    expect(client.handshakeComplete).toBe(true);

    // The published ticket yields the published resumption PSK.
    client.receive("application", v("newSessionTicket"), 3000);
    const [ticketEvent] = drainEvents(client);
    if (ticketEvent?.type !== "session_ticket") throw new Error("no session_ticket event");
    expect(toHex(ticketEvent.ticket.psk)).toBe(vectors.resumptionPsk);
    expect(ticketEvent.ticket.lifetime).toBe(30);
    expect(ticketEvent.ticket.maxEarlyDataSize).toBe(0x400);
    expect(ticketEvent.ticket.receivedAt).toBe(3000);
    expect(ticketEvent.ticket.serverName).toBe("server");
  });

  it("reproduces the client Finished when the flight arrives one byte at a time", () => {
    const client = rfcClient();
    client.start(0);
    client.pollOutput();
    for (const b of v("serverHello")) client.receive("initial", new Uint8Array([b]), 0);
    for (const b of v("serverFlight")) client.receive("handshake", new Uint8Array([b]), 0);
    expect(toHex(client.pollOutput()!.data)).toBe(vectors.clientFinished);
  });

  /** Offsets into the server's handshake flight: EE 0..39, Certificate 40..484, CV 485..620, Finished 621..656. */
  const cases: [string, "serverHello" | "serverFlight", number, number][] = [
    ["ServerHello random", "serverHello", 10, AlertDescription.decrypt_error], // transcript differs -> Finished fails
    ["server key share", "serverHello", 60, AlertDescription.decrypt_error],
    ["CertificateVerify signature", "serverFlight", 600, AlertDescription.decrypt_error],
    ["server Finished", "serverFlight", 656, AlertDescription.decrypt_error],
    ["certificate_request_context length", "serverFlight", 44, AlertDescription.decode_error],
  ];
  for (const [what, which, at, expected] of cases) {
    it(`fails with alert ${expected} when one byte of the ${what} changes`, () => {
      const client = rfcClient();
      client.start(0);
      client.pollOutput();
      const sh = which === "serverHello" ? flip(v("serverHello"), at) : v("serverHello");
      const flight = which === "serverFlight" ? flip(v("serverFlight"), at) : v("serverFlight");
      let caught: unknown;
      try {
        client.receive("initial", sh, 0);
        client.receive("handshake", flight, 0);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(TlsAlert);
      expect((caught as TlsAlert).description).toBe(expected);
      // The alert is latched.
      expect(() => client.receive("handshake", new Uint8Array([0]), 0)).toThrow(caught as TlsAlert);
    });
  }
});

describe.each(PROVIDERS)("RFC 8448 §5 HelloRetryRequest (%s)", (_name, provider) => {
  const h = (name: keyof typeof hrrVectors): Uint8Array => fromHex(hrrVectors[name]);
  const ch1 = parseHandshake(h("clientHello1")) as ClientHello;
  const ch2 = parseHandshake(h("clientHello2")) as ClientHello;

  it("parses and re-serializes ClientHello1, the HelloRetryRequest, ClientHello2 and the ServerHello", () => {
    for (const name of [
      "clientHello1",
      "helloRetryRequest",
      "clientHello2",
      "serverHello",
      "encryptedExtensions",
      "certificate",
      "certificateVerify",
      "serverFinished",
      "clientFinished",
    ] as const) {
      expect(toHex(serializeHandshake(parseHandshake(h(name)))), name).toBe(hrrVectors[name]);
    }
    const hrr = parseHandshake(h("helloRetryRequest"));
    expect(hrr.type).toBe("hello_retry_request");
    if (hrr.type !== "hello_retry_request") return;
    expect(findExtension(hrr.extensions, "key_share_hrr")?.selectedGroup).toBe(0x0017);
    expect(findExtension(hrr.extensions, "cookie")?.cookie.length).toBe(114);
  });

  it("applies the message_hash rule (RFC 8446 §4.4.1) and derives the published secrets from P-256", () => {
    const client = provider.keyShareFromPrivate("secp256r1", h("clientPrivateKeyP256"));
    const server = provider.keyShareFromPrivate("secp256r1", h("serverPrivateKeyP256"));
    expect(toHex(client.publicKey)).toBe(hrrVectors.clientPublicKeyP256);
    expect(toHex(server.sharedSecret(client.publicKey))).toBe(hrrVectors.sharedSecret);
    const t = new Transcript(provider);
    t.update(h("clientHello1"));
    t.setHash("sha256");
    t.replaceWithMessageHash();
    t.update(h("helloRetryRequest"));
    t.update(h("clientHello2"));
    t.update(h("serverHello"));
    expect(toHex(t.digest())).toBe(hrrVectors.helloHash);
    // The rule spelled out: message_hash || 00 00 20 || Hash(ClientHello1).
    const manual = provider.hash(
      "sha256",
      concat(
        fromHex("fe000020"),
        provider.hash("sha256", h("clientHello1")),
        h("helloRetryRequest"),
        h("clientHello2"),
        h("serverHello"),
      ),
    );
    expect(toHex(manual)).toBe(hrrVectors.helloHash);
    const ks = new KeySchedule(provider, "sha256");
    expect(toHex(ks.deriveHandshakeSecret(h("sharedSecret")))).toBe(hrrVectors.handshakeSecret);
    expect(toHex(ks.clientHandshakeTrafficSecret(t.digest()))).toBe(hrrVectors.clientHandshakeTrafficSecret);
    expect(toHex(ks.serverHandshakeTrafficSecret(t.digest()))).toBe(hrrVectors.serverHandshakeTrafficSecret);
    expect(toHex(ks.deriveMasterSecret())).toBe(hrrVectors.masterSecret);
  });

  it("drives the client through the HelloRetryRequest to the published ClientHello2 and client Finished", () => {
    const client = new TlsClient({
      provider,
      rng: new SeededRng(5),
      quic: false,
      alpn: [],
      serverName: "server",
      verifier: "insecure-skip-verification",
      cipherSuites: ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384"],
      groups: ["x25519", "secp256r1"],
      keyShareGroups: ["x25519"],
      testing: {
        random: ch1.random,
        keySharePrivateKeys: { x25519: h("clientPrivateKeyX25519"), secp256r1: h("clientPrivateKeyP256") },
        // The RFC's lists, with the key share and cookie the client produced itself.
        clientHelloExtensions: (defaults, attempt) =>
          (attempt === 1 ? ch1 : ch2).extensions.map((e) =>
            e.type === "key_share" || e.type === "cookie" ? defaults.find((d) => d.type === e.type)! : e,
          ),
      },
    });
    client.start(0);
    expect(toHex(client.pollOutput()!.data)).toBe(hrrVectors.clientHello1);
    client.receive("initial", h("helloRetryRequest"), 0);
    expect(toHex(client.pollOutput()!.data)).toBe(hrrVectors.clientHello2);
    client.receive("initial", h("serverHello"), 0);
    client.receive("handshake", h("serverFlight"), 0);
    expect(toHex(client.pollOutput()!.data)).toBe(hrrVectors.clientFinished);
    const secrets = new Map<string, string>();
    for (let e = client.pollEvent(); e; e = client.pollEvent()) {
      if (e.type === "secret") secrets.set(`${e.level}/${e.direction}`, toHex(e.secret));
    }
    expect(secrets.get("handshake/write")).toBe(hrrVectors.clientHandshakeTrafficSecret);
    expect(secrets.get("application/read")).toBe(hrrVectors.serverApplicationTrafficSecret);
    expect(secrets.get("application/write")).toBe(hrrVectors.clientApplicationTrafficSecret);
  });
});

describe.each(PROVIDERS)("RFC 8448 §4 resumed handshake: the PSK binder (%s)", (_name, provider) => {
  const published = parseHandshake(fromHex(resumedVectors.clientHello)) as ClientHello;
  const nst = parseHandshake(v("newSessionTicket"));

  it("offers the §3 ticket in the published ClientHello, binder byte for byte", () => {
    if (nst.type !== "new_session_ticket") throw new Error("not a NewSessionTicket");
    const client = new TlsClient({
      provider,
      rng: new SeededRng(8448),
      quic: false,
      alpn: [],
      serverName: "server",
      verifier: "insecure-skip-verification",
      cipherSuites: ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384"],
      groups: ["x25519"],
      sessionTicket: {
        ticket: nst.ticket,
        psk: v("resumptionPsk"),
        suite: "TLS_AES_128_GCM_SHA256",
        alpn: undefined,
        serverName: "server",
        receivedAt: 0,
        lifetime: nst.lifetime,
        ageAdd: nst.ageAdd,
        maxEarlyDataSize: 1024,
        peerTransportParameters: undefined,
      },
      testing: {
        random: published.random,
        keySharePrivateKeys: { x25519: fromHex(resumedVectors.clientPrivateKey) },
        // The RFC's list, with our key share and our pre_shared_key offer (the published
        // obfuscated ticket age); the binder is ours to compute.
        clientHelloExtensions: (defaults) =>
          published.extensions.map((e) => {
            if (e.type === "key_share") return findExtension(defaults, "key_share")!;
            if (e.type !== "pre_shared_key") return e;
            const ours = findExtension(defaults, "pre_shared_key")!;
            return {
              ...ours,
              identities: [
                { ...ours.identities[0], obfuscatedTicketAge: e.identities[0].obfuscatedTicketAge },
              ],
            };
          }),
      },
    });
    client.start(5000);
    const out = client.pollOutput();
    expect(out?.level).toBe("initial");
    expect(toHex(out!.data)).toBe(resumedVectors.clientHello);
    expect(toHex(out!.data.subarray(out!.data.length - 32))).toBe(resumedVectors.binder);
  });

  it("derives the published early secret from the §3 resumption PSK", () => {
    expect(toHex(new KeySchedule(provider, "sha256", v("resumptionPsk")).earlySecret)).toBe(
      resumedVectors.earlySecret,
    );
  });
});
