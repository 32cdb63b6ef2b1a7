/**
 * Handshake failures end with the right TLS alert (RFC 8446 §6, RFC 9001 §8): tampering, ALPN,
 * missing extensions, HelloRetryRequest misuse, message order, garbage input.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SeededRng } from "../../src/crypto/random.js";
import { AlertDescription, type AlertName, TlsAlert } from "../../src/tls/alert.js";
import { generateTestCA } from "../../src/tls/certgen.js";
import type { TlsClient } from "../../src/tls/client.js";
import { type Extension, ExtensionType, extensionCode } from "../../src/tls/extensions.js";
import type { TlsOutput } from "../../src/tls/handshake-common.js";
import {
  type HandshakeMessage,
  HandshakeReassembler,
  parseHandshakeBody,
  serializeHandshake,
} from "../../src/tls/messages.js";
import { SignatureSchemeCode } from "../../src/tls/suites.js";
import { createPeerVerifier } from "../../src/tls/verify.js";
import { concat } from "../../src/util/bytes.js";
import { makePair, NOW, runHandshake } from "./helpers.js";
import { PROVIDERS } from "./providers.js";

/** Runs `fn` and returns the TlsAlert it throws (fails the test if it throws anything else or nothing). */
function alertOf(fn: () => unknown): TlsAlert {
  try {
    fn();
  } catch (e) {
    if (e instanceof TlsAlert) return e;
    throw new Error(`expected a TlsAlert, got ${String(e)}`, { cause: e });
  }
  throw new Error("expected a TlsAlert, nothing was thrown");
}

function expectAlert(fn: () => unknown, name: AlertName): TlsAlert {
  const a = alertOf(fn);
  expect(a.message).toContain(name);
  expect(a.description).toBe(AlertDescription[name]);
  return a;
}

function parseFlight(data: Uint8Array): HandshakeMessage[] {
  const r = new HandshakeReassembler();
  r.push(data);
  const out: HandshakeMessage[] = [];
  for (let m = r.next(); m; m = r.next()) out.push(parseHandshakeBody(m.msgType, m.body));
  return out;
}

/** A tamper function rewriting the messages of `from`'s chunks at `level`. */
function rewrite(
  from: "client" | "server",
  level: TlsOutput["level"],
  fn: (msgs: HandshakeMessage[]) => HandshakeMessage[],
  nth = 0,
): (who: "client" | "server", out: TlsOutput) => Uint8Array {
  let seen = 0;
  return (who, out) => {
    if (who !== from || out.level !== level || seen++ !== nth) return out.data;
    return concat(...fn(parseFlight(out.data)).map(serializeHandshake));
  };
}

const withoutExt =
  (code: number) =>
  (exts: Extension[]): Extension[] =>
    exts.filter((e) => extensionCode(e) !== code);

function flipLast(b: Uint8Array): Uint8Array {
  const c = b.slice();
  c[c.length - 1] ^= 0x80;
  return c;
}

describe.each(PROVIDERS)("handshake failures (%s)", (_name, provider) => {
  describe("authentication", () => {
    it("tampered server Finished -> decrypt_error", () => {
      const { client, server } = makePair(provider);
      const tamper = (who: string, out: TlsOutput) =>
        who === "server" && out.level === "handshake" ? flipLast(out.data) : out.data;
      expectAlert(() => runHandshake(client, server, { tamper }), "decrypt_error");
      expect(client.error?.description).toBe(AlertDescription.decrypt_error);
    });

    it("tampered client Finished -> decrypt_error at the server", () => {
      const { client, server } = makePair(provider);
      const tamper = (who: string, out: TlsOutput) =>
        who === "client" && out.level === "handshake" ? flipLast(out.data) : out.data;
      expectAlert(() => runHandshake(client, server, { tamper }), "decrypt_error");
      expect(server.error?.description).toBe(AlertDescription.decrypt_error);
      expect(server.handshakeComplete).toBe(false);
    });

    for (const keyType of ["ecdsa-p256", "ed25519"] as const) {
      it(`tampered CertificateVerify signature (${keyType}) -> decrypt_error`, () => {
        const { client, server } = makePair(provider, { keyType });
        const tamper = rewrite("server", "handshake", (msgs) =>
          msgs.map((m) => (m.type === "certificate_verify" ? { ...m, signature: flipLast(m.signature) } : m)),
        );
        const a = expectAlert(() => runHandshake(client, server, { tamper }), "decrypt_error");
        expect(a.reason).toContain("CertificateVerify");
      });
    }

    it("CertificateVerify with a scheme that does not fit the key -> illegal_parameter", () => {
      const { client, server } = makePair(provider, { keyType: "ecdsa-p256" });
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) =>
          m.type === "certificate_verify" ? { ...m, algorithm: SignatureSchemeCode.ed25519 } : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("CertificateVerify with rsa_pkcs1_sha256 -> illegal_parameter (certificates only, RFC 8446 §4.2.3)", () => {
      const { client, server } = makePair(provider, { keyType: "ecdsa-p256" });
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) =>
          m.type === "certificate_verify" ? { ...m, algorithm: SignatureSchemeCode.rsa_pkcs1_sha256 } : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("empty server Certificate -> decode_error", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) => (m.type === "certificate" ? { ...m, entries: [] } : m)),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "decode_error");
    });

    it("certificate for another name -> bad_certificate, with a readable reason", () => {
      const { client, server } = makePair(provider, { client: { serverName: "broker.example" } });
      const a = expectAlert(() => runHandshake(client, server), "bad_certificate");
      expect(a.reason).toContain("broker.example");
    });

    it("certificate from an unknown CA -> unknown_ca", () => {
      const other = generateTestCA({
        provider,
        rng: new SeededRng(99),
        now: NOW,
        commonName: "some other CA",
      }).der;
      const { client, server } = makePair(provider, {
        client: { verifier: createPeerVerifier({ roots: [other], now: () => NOW, provider }) },
      });
      expectAlert(() => runHandshake(client, server), "unknown_ca");
    });

    it("insecure mode accepts an untrusted chain but still checks CertificateVerify", () => {
      const ok = makePair(provider, { client: { verifier: "insecure-skip-verification", serverName: "x" } });
      runHandshake(ok.client, ok.server);
      expect(ok.client.handshakeComplete).toBe(true);
      const bad = makePair(provider, { client: { verifier: "insecure-skip-verification" } });
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) => (m.type === "certificate_verify" ? { ...m, signature: flipLast(m.signature) } : m)),
      );
      expectAlert(() => runHandshake(bad.client, bad.server, { tamper }), "decrypt_error");
    });
  });

  describe("ALPN (RFC 9001 §8.1)", () => {
    it("no overlap -> no_application_protocol at the server", () => {
      const { client, server } = makePair(provider, { server: { alpn: ["h3", "hq-interop"] } });
      expectAlert(() => runHandshake(client, server), "no_application_protocol");
      expect(server.error?.description).toBe(120);
    });

    it("a selector that declines -> no_application_protocol", () => {
      const { client, server } = makePair(provider, { server: { alpn: () => undefined } });
      expectAlert(() => runHandshake(client, server), "no_application_protocol");
    });

    it("a selector that picks something the client did not offer -> no_application_protocol", () => {
      const { client, server } = makePair(provider, { server: { alpn: () => "evil" } });
      expectAlert(() => runHandshake(client, server), "no_application_protocol");
    });

    it("the server picks by its own preference", () => {
      const { client, server } = makePair(provider, {
        client: { alpn: ["mqtt", "hq-interop"] },
        server: { alpn: ["hq-interop", "mqtt"] },
      });
      runHandshake(client, server);
      expect(client.alpnProtocol).toBe("hq-interop");
    });

    it("a ClientHello without ALPN -> no_application_protocol", () => {
      const { client, server } = makePair(provider, {
        client: {
          testing: {
            clientHelloExtensions: withoutExt(ExtensionType.application_layer_protocol_negotiation),
          },
        },
      });
      expectAlert(() => runHandshake(client, server), "no_application_protocol");
    });

    it("EncryptedExtensions without ALPN -> no_application_protocol at the client", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) =>
          m.type === "encrypted_extensions"
            ? { ...m, extensions: m.extensions.filter((e) => e.type !== "alpn") }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "no_application_protocol");
      expect(client.error?.description).toBe(120);
    });

    it("EncryptedExtensions selecting an unoffered protocol -> no_application_protocol at the client", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) =>
          m.type === "encrypted_extensions"
            ? {
                ...m,
                extensions: m.extensions.map((e) => (e.type === "alpn" ? { ...e, protocols: ["h3"] } : e)),
              }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "no_application_protocol");
    });

    it("EncryptedExtensions naming two protocols -> illegal_parameter", () => {
      const { client, server } = makePair(provider, { client: { alpn: ["mqtt", "h3"] } });
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) =>
          m.type === "encrypted_extensions"
            ? {
                ...m,
                extensions: m.extensions.map((e) =>
                  e.type === "alpn" ? { ...e, protocols: ["mqtt", "h3"] } : e,
                ),
              }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });
  });

  describe("required extensions", () => {
    it("ClientHello without quic_transport_parameters -> missing_extension (RFC 9001 §8.2)", () => {
      const { client, server } = makePair(provider, {
        client: { testing: { clientHelloExtensions: withoutExt(ExtensionType.quic_transport_parameters) } },
      });
      const a = expectAlert(() => runHandshake(client, server), "missing_extension");
      expect(a.description).toBe(0x6d); // QUIC error 0x16d
    });

    it("EncryptedExtensions without quic_transport_parameters -> missing_extension at the client", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) =>
          m.type === "encrypted_extensions"
            ? { ...m, extensions: m.extensions.filter((e) => e.type !== "quic_transport_parameters") }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "missing_extension");
    });

    it("ClientHello without key_share -> missing_extension", () => {
      const { client, server } = makePair(provider, {
        client: { testing: { clientHelloExtensions: withoutExt(ExtensionType.key_share) } },
      });
      expectAlert(() => runHandshake(client, server), "missing_extension");
    });

    it("ClientHello without supported_groups -> missing_extension", () => {
      const { client, server } = makePair(provider, {
        client: { testing: { clientHelloExtensions: withoutExt(ExtensionType.supported_groups) } },
      });
      expectAlert(() => runHandshake(client, server), "missing_extension");
    });

    it("ClientHello without signature_algorithms -> missing_extension", () => {
      const { client, server } = makePair(provider, {
        client: { testing: { clientHelloExtensions: withoutExt(ExtensionType.signature_algorithms) } },
      });
      expectAlert(() => runHandshake(client, server), "missing_extension");
    });

    it("ClientHello without supported_versions (a TLS 1.2 client) -> protocol_version", () => {
      const { client, server } = makePair(provider, {
        client: { testing: { clientHelloExtensions: withoutExt(ExtensionType.supported_versions) } },
      });
      expectAlert(() => runHandshake(client, server), "protocol_version");
    });

    it("pre_shared_key without psk_key_exchange_modes -> missing_extension (RFC 8446 §4.2.9)", () => {
      const { client, server } = makePair(provider, {
        client: {
          testing: {
            clientHelloExtensions: (exts) => [
              ...withoutExt(ExtensionType.psk_key_exchange_modes)(exts),
              {
                type: "pre_shared_key",
                identities: [{ identity: new Uint8Array([1]), obfuscatedTicketAge: 0 }],
                binders: [new Uint8Array(32)],
              },
            ],
          },
        },
      });
      expectAlert(() => runHandshake(client, server), "missing_extension");
    });

    it("a ClientHello offering a ticket that is not ours gets a full handshake", () => {
      const { client, server } = makePair(provider, {
        client: {
          testing: {
            clientHelloExtensions: (exts) => [
              ...exts,
              {
                type: "pre_shared_key",
                identities: [{ identity: new Uint8Array([1]), obfuscatedTicketAge: 0 }],
                binders: [new Uint8Array(32)],
              },
            ],
          },
        },
      });
      runHandshake(client, server);
      expect(client.handshakeComplete && server.handshakeComplete).toBe(true);
    });

    it("ClientHello offering only TLS 1.2 -> protocol_version", () => {
      const { client, server } = makePair(provider, {
        client: {
          testing: {
            clientHelloExtensions: (exts) =>
              exts.map((e) => (e.type === "supported_versions" ? { ...e, versions: [0x0303] } : e)),
          },
        },
      });
      expectAlert(() => runHandshake(client, server), "protocol_version");
    });

    it("ServerHello without supported_versions (a TLS 1.2 server) -> protocol_version", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("server", "initial", (msgs) =>
        msgs.map((m) =>
          m.type === "server_hello"
            ? { ...m, extensions: m.extensions.filter((e) => e.type !== "selected_version") }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "protocol_version");
    });

    it("ServerHello without key_share -> missing_extension", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("server", "initial", (msgs) =>
        msgs.map((m) =>
          m.type === "server_hello"
            ? { ...m, extensions: m.extensions.filter((e) => e.type !== "key_share_server") }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "missing_extension");
    });

    it("an unsolicited extension in EncryptedExtensions -> unsupported_extension", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("server", "handshake", (msgs) =>
        msgs.map((m) =>
          m.type === "encrypted_extensions"
            ? { ...m, extensions: [...m.extensions, { type: "early_data" } as const] }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "unsupported_extension");
    });
  });

  describe("negotiation", () => {
    it("no common cipher suite -> handshake_failure", () => {
      const { client, server } = makePair(provider, {
        client: { cipherSuites: ["TLS_AES_128_GCM_SHA256"] },
        server: { cipherSuites: ["TLS_CHACHA20_POLY1305_SHA256"] },
      });
      expectAlert(() => runHandshake(client, server), "handshake_failure");
    });

    it("no common group -> handshake_failure", () => {
      const { client, server } = makePair(provider, {
        client: { groups: ["x25519"] },
        server: { groups: ["secp256r1"] },
      });
      expectAlert(() => runHandshake(client, server), "handshake_failure");
    });

    it("no signature scheme the server's key can make -> handshake_failure", () => {
      const { client, server } = makePair(provider, {
        keyType: "ed25519",
        client: { signatureSchemes: ["ecdsa_secp256r1_sha256"] },
      });
      expectAlert(() => runHandshake(client, server), "handshake_failure");
    });

    it("ServerHello selecting a suite the client did not offer -> illegal_parameter", () => {
      const { client, server } = makePair(provider, { client: { cipherSuites: ["TLS_AES_128_GCM_SHA256"] } });
      const tamper = rewrite("server", "initial", (msgs) =>
        msgs.map((m) => (m.type === "server_hello" ? { ...m, cipherSuite: 0x1303 } : m)),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("ServerHello selecting TLS 1.2 in supported_versions -> illegal_parameter", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("server", "initial", (msgs) =>
        msgs.map((m) =>
          m.type === "server_hello"
            ? {
                ...m,
                extensions: m.extensions.map((e) =>
                  e.type === "selected_version" ? { ...e, version: 0x0303 } : e,
                ),
              }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("a key share not in supported_groups -> illegal_parameter", () => {
      const { client, server } = makePair(provider, {
        client: {
          testing: {
            clientHelloExtensions: (exts) =>
              exts.map((e) => (e.type === "supported_groups" ? { ...e, groups: [0x0017] } : e)),
          },
        },
      });
      expectAlert(() => runHandshake(client, server), "illegal_parameter");
    });

    it("an invalid x25519 key share (all zeros) -> illegal_parameter", () => {
      const { client, server } = makePair(provider, {
        client: {
          testing: {
            clientHelloExtensions: (exts) =>
              exts.map((e) =>
                e.type === "key_share"
                  ? { ...e, shares: [{ group: 0x001d, keyExchange: new Uint8Array(32) }] }
                  : e,
              ),
          },
        },
      });
      expectAlert(() => runHandshake(client, server), "illegal_parameter");
    });

    it("a legacy_session_id in QUIC -> illegal_parameter (RFC 9001 §8.4)", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("client", "initial", (msgs) =>
        msgs.map((m) =>
          m.type === "client_hello" ? { ...m, legacySessionId: new Uint8Array(32).fill(1) } : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("compression methods other than [null] -> illegal_parameter", () => {
      const { client, server } = makePair(provider);
      const tamper = rewrite("client", "initial", (msgs) =>
        msgs.map((m) =>
          m.type === "client_hello" ? { ...m, legacyCompressionMethods: new Uint8Array([1, 0]) } : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });
  });

  describe("HelloRetryRequest", () => {
    const hrrPair = (extra: { helloRetryCookie?: boolean } = {}) =>
      makePair(provider, {
        client: { keyShareGroups: ["x25519"] },
        server: { groups: ["secp256r1"], ...extra },
      });

    it("a second HelloRetryRequest -> unexpected_message", () => {
      const { client, server } = hrrPair();
      let hrr: Uint8Array | undefined;
      const tamper = (who: string, out: TlsOutput) => {
        if (who === "server" && out.level === "initial") {
          if (!hrr) hrr = out.data;
          else return hrr; // replay the HRR instead of the ServerHello
        }
        return out.data;
      };
      expectAlert(() => runHandshake(client, server, { tamper }), "unexpected_message");
    });

    it("HelloRetryRequest for the group the client already sent -> illegal_parameter", () => {
      const { client, server } = hrrPair();
      const tamper = rewrite("server", "initial", (msgs) =>
        msgs.map((m) =>
          m.type === "hello_retry_request"
            ? {
                ...m,
                extensions: m.extensions.map((e) =>
                  e.type === "key_share_hrr" ? { ...e, selectedGroup: 0x001d } : e,
                ),
              }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("HelloRetryRequest for a group the client did not offer -> illegal_parameter", () => {
      const { client, server } = hrrPair();
      const tamper = rewrite("server", "initial", (msgs) =>
        msgs.map((m) =>
          m.type === "hello_retry_request"
            ? {
                ...m,
                extensions: m.extensions.map((e) =>
                  e.type === "key_share_hrr" ? { ...e, selectedGroup: 0x0018 } : e,
                ),
              }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("HelloRetryRequest that changes nothing -> illegal_parameter", () => {
      const { client, server } = hrrPair();
      const tamper = rewrite("server", "initial", (msgs) =>
        msgs.map((m) =>
          m.type === "hello_retry_request"
            ? { ...m, extensions: m.extensions.filter((e) => e.type !== "key_share_hrr") }
            : m,
        ),
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("ServerHello with another suite than the HelloRetryRequest -> illegal_parameter", () => {
      const { client, server } = hrrPair();
      const tamper = rewrite(
        "server",
        "initial",
        (msgs) => msgs.map((m) => (m.type === "server_hello" ? { ...m, cipherSuite: 0x1303 } : m)),
        1,
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("second ClientHello without the requested key share -> illegal_parameter", () => {
      const { client, server } = hrrPair();
      const tamper = rewrite(
        "client",
        "initial",
        (msgs) =>
          msgs.map((m) =>
            m.type === "client_hello"
              ? {
                  ...m,
                  extensions: m.extensions.map((e) =>
                    e.type === "key_share"
                      ? { ...e, shares: [{ group: 0x001d, keyExchange: new Uint8Array(32).fill(9) }] }
                      : e,
                  ),
                }
              : m,
          ),
        1,
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("second ClientHello without our cookie -> illegal_parameter", () => {
      const { client, server } = hrrPair({ helloRetryCookie: true });
      const tamper = rewrite(
        "client",
        "initial",
        (msgs) =>
          msgs.map((m) =>
            m.type === "client_hello"
              ? { ...m, extensions: m.extensions.filter((e) => e.type !== "cookie") }
              : m,
          ),
        1,
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });

    it("second ClientHello with another random -> illegal_parameter", () => {
      const { client, server } = hrrPair();
      const tamper = rewrite(
        "client",
        "initial",
        (msgs) => msgs.map((m) => (m.type === "client_hello" ? { ...m, random: new Uint8Array(32) } : m)),
        1,
      );
      expectAlert(() => runHandshake(client, server, { tamper }), "illegal_parameter");
    });
  });

  describe("message order and levels", () => {
    function started(): { client: TlsClient; ch: Uint8Array; flight: TlsOutput[] } {
      const { client, server } = makePair(provider);
      client.start(NOW);
      const ch = client.pollOutput()!.data;
      server.receive("initial", ch, NOW);
      const flight: TlsOutput[] = [];
      for (let o = server.pollOutput(); o; o = server.pollOutput()) flight.push(o);
      return { client, ch, flight };
    }

    it("the server gets a Finished before any ClientHello -> unexpected_message", () => {
      const { server } = makePair(provider);
      const fin = serializeHandshake({ type: "finished", verifyData: new Uint8Array(32) });
      expectAlert(() => server.receive("initial", fin, NOW), "unexpected_message");
    });

    it("the server gets a ClientHello at the handshake level -> unexpected_message", () => {
      const { client, server } = makePair(provider);
      client.start(NOW);
      expectAlert(() => server.receive("handshake", client.pollOutput()!.data, NOW), "unexpected_message");
    });

    it("the server gets a second ClientHello -> unexpected_message", () => {
      const { client, server } = makePair(provider);
      client.start(NOW);
      const ch = client.pollOutput()!.data;
      server.receive("initial", ch, NOW);
      expectAlert(() => server.receive("initial", ch, NOW), "unexpected_message");
    });

    it("the client gets EncryptedExtensions instead of ServerHello -> unexpected_message", () => {
      const { client, flight } = started();
      const ee = parseFlight(flight[1].data)[0];
      expectAlert(() => client.receive("initial", serializeHandshake(ee), NOW), "unexpected_message");
    });

    it("the client gets the server flight out of order -> unexpected_message", () => {
      const { client, flight } = started();
      client.receive("initial", flight[0].data, NOW);
      const [ee, cert, cv, fin] = parseFlight(flight[1].data);
      const reordered = concat(...[ee, cv, cert, fin].map(serializeHandshake));
      expectAlert(() => client.receive("handshake", reordered, NOW), "unexpected_message");
    });

    it("the client gets a ServerHello at the handshake level -> unexpected_message", () => {
      const { client, flight } = started();
      expectAlert(() => client.receive("handshake", concat(flight[0].data), NOW), "unexpected_message");
    });

    it("the client gets a ClientHello -> unexpected_message", () => {
      const { client, ch } = started();
      expectAlert(() => client.receive("initial", ch, NOW), "unexpected_message");
    });

    it("the client gets a NewSessionTicket during the handshake -> unexpected_message", () => {
      const { client, flight } = started();
      client.receive("initial", flight[0].data, NOW);
      const nst = serializeHandshake({
        type: "new_session_ticket",
        lifetime: 1,
        ageAdd: 0,
        nonce: new Uint8Array(0),
        ticket: new Uint8Array(1),
        extensions: [],
      });
      expectAlert(() => client.receive("handshake", nst, NOW), "unexpected_message");
    });

    it("new data at the initial level after the ServerHello -> unexpected_message", () => {
      const { client, flight } = started();
      client.receive("initial", flight[0].data, NOW);
      expectAlert(() => client.receive("initial", new Uint8Array([1]), NOW), "unexpected_message");
    });

    it("a ServerHello followed by stray bytes at the initial level -> unexpected_message", () => {
      const { client, flight } = started();
      expectAlert(
        () => client.receive("initial", concat(flight[0].data, new Uint8Array([8, 0])), NOW),
        "unexpected_message",
      );
    });

    it("handshake data in 0-RTT -> unexpected_message", () => {
      const { server } = makePair(provider);
      expectAlert(() => server.receive("early", new Uint8Array([1, 0, 0, 0]), NOW), "unexpected_message");
    });

    it("KeyUpdate after the handshake -> unexpected_message (RFC 9001 §6)", () => {
      const { client, server } = makePair(provider);
      runHandshake(client, server);
      const ku = serializeHandshake({ type: "key_update", requestUpdate: 0 });
      expectAlert(() => client.receive("application", ku, NOW), "unexpected_message");
      const pair2 = makePair(provider);
      runHandshake(pair2.client, pair2.server);
      expectAlert(() => pair2.server.receive("application", ku, NOW), "unexpected_message");
    });

    it("a server's postHandshake() form refuses later messages exactly as the server did", () => {
      const inputs: Uint8Array[] = [
        serializeHandshake({ type: "key_update", requestUpdate: 1 }),
        serializeHandshake({ type: "end_of_early_data" }),
        new Uint8Array([4, 0, 0, 1, 0]), // a NewSessionTicket too short to parse: decode_error
        new Uint8Array([0xff, 0xff, 0xff, 0xff]), // a header over the size limit
      ];
      for (const input of inputs) {
        const a = makePair(provider);
        runHandshake(a.client, a.server);
        const b = makePair(provider);
        runHandshake(b.client, b.server);
        const light = b.server.postHandshake();
        expect(light.handshakeComplete).toBe(true);
        expect(light.cipherSuite).toBe(b.server.cipherSuite);
        // Delivered in two pieces: the part buffered before the swap must be carried over.
        const head = input.subarray(0, 2);
        const rest = input.subarray(2);
        a.server.receive("application", head, NOW);
        const c = makePair(provider);
        runHandshake(c.client, c.server);
        c.server.receive("application", head, NOW);
        const carried = c.server.postHandshake();
        const expected = alertOf(() => a.server.receive("application", rest, NOW));
        for (const got of [
          alertOf(() => light.receive("application", input, NOW)),
          alertOf(() => carried.receive("application", rest, NOW)),
        ]) {
          expect(got.description).toBe(expected.description);
          expect(got.message).toBe(expected.message);
        }
        // The alert is latched, as on the server.
        const first = alertOf(() => light.receive("application", new Uint8Array([1]), NOW));
        expect(alertOf(() => light.receive("application", new Uint8Array([1]), NOW))).toBe(first);
      }
      // Bytes at a level it has left are refused the same way too.
      const d = makePair(provider);
      runHandshake(d.client, d.server);
      const e = makePair(provider);
      runHandshake(e.client, e.server);
      const finished = new Uint8Array([20, 0, 0, 0]);
      const want = expectAlert(() => d.server.receive("handshake", finished, NOW), "unexpected_message");
      const got = alertOf(() => e.server.postHandshake().receive("handshake", finished, NOW));
      expect(got.message).toBe(want.message);
    });

    it("EndOfEarlyData -> unexpected_message (RFC 9001 §8.3)", () => {
      const { client, server } = makePair(provider);
      client.start(NOW);
      server.receive("initial", client.pollOutput()!.data, NOW);
      const eoed = serializeHandshake({ type: "end_of_early_data" });
      expectAlert(() => server.receive("handshake", eoed, NOW), "unexpected_message");
    });

    it("an unknown handshake type -> unexpected_message", () => {
      const { server } = makePair(provider);
      expectAlert(() => server.receive("initial", new Uint8Array([99, 0, 0, 0]), NOW), "unexpected_message");
    });

    it("a message announcing more than 64 KiB -> illegal_parameter before buffering it", () => {
      const { server } = makePair(provider);
      expectAlert(
        () => server.receive("initial", new Uint8Array([1, 0x01, 0x00, 0x01]), NOW),
        "illegal_parameter",
      );
    });

    it("after an alert every call throws the same alert", () => {
      const { server } = makePair(provider);
      const a = alertOf(() => server.receive("initial", new Uint8Array([99, 0, 0, 0]), NOW));
      expect(alertOf(() => server.receive("initial", new Uint8Array([1]), NOW))).toBe(a);
      expect(server.error).toBe(a);
    });
  });

  describe("garbage", () => {
    it("a truncated ClientHello body -> decode_error", () => {
      const { client, server } = makePair(provider);
      client.start(NOW);
      const ch = client.pollOutput()!.data;
      const cut = ch.slice(0, ch.length - 10);
      const len = cut.length - 4;
      cut[1] = len >>> 16;
      cut[2] = (len >>> 8) & 0xff;
      cut[3] = len & 0xff;
      expectAlert(() => server.receive("initial", cut, NOW), "decode_error");
    });

    it("a ClientHello with trailing bytes inside its length -> decode_error", () => {
      const { client, server } = makePair(provider);
      client.start(NOW);
      const ch = client.pollOutput()!.data;
      const long = concat(ch, new Uint8Array([0]));
      const len = long.length - 4;
      long[1] = len >>> 16;
      long[2] = (len >>> 8) & 0xff;
      long[3] = len & 0xff;
      expectAlert(() => server.receive("initial", long, NOW), "decode_error");
    });

    it("a ClientHello with a duplicated extension -> illegal_parameter", () => {
      const { client, server } = makePair(provider, {
        client: {
          testing: {
            clientHelloExtensions: (exts) => [
              ...exts,
              { type: "opaque", code: ExtensionType.supported_groups, data: new Uint8Array([0, 2, 0, 0x1d]) },
            ],
          },
        },
      });
      expectAlert(() => runHandshake(client, server), "illegal_parameter");
    });

    it("random bytes to a server never throw anything but TlsAlert", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (bytes, piece) => {
          const { server } = makePair(provider);
          try {
            for (let i = 0; i < bytes.length; i += piece)
              server.receive("initial", bytes.subarray(i, i + piece), NOW);
          } catch (e) {
            if (!(e instanceof TlsAlert)) throw e;
          }
        }),
        { numRuns: 300 },
      );
    });

    it("a ClientHello with random bytes changed never throws anything but TlsAlert", () => {
      const { client } = makePair(provider);
      client.start(NOW);
      const ch = client.pollOutput()!.data;
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(ch.length - 1), fc.integer({ min: 1, max: 255 })), {
            minLength: 1,
            maxLength: 4,
          }),
          (edits) => {
            const bad = ch.slice();
            for (const [at, x] of edits) bad[at] ^= x;
            const { server } = makePair(provider, { seed: 7 });
            try {
              server.receive("initial", bad, NOW);
            } catch (e) {
              if (!(e instanceof TlsAlert)) throw e;
            }
          },
        ),
        { numRuns: 200 },
      );
    });

    it("a server flight with random bytes changed never throws anything but TlsAlert, and never completes", () => {
      const { client, server } = makePair(provider);
      client.start(NOW);
      server.receive("initial", client.pollOutput()!.data, NOW);
      const sh = server.pollOutput()!.data;
      const flight = server.pollOutput()!.data;
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(sh.length + flight.length - 1), fc.integer({ min: 1, max: 255 })), {
            minLength: 1,
            maxLength: 3,
          }),
          (edits) => {
            const all = concat(sh, flight);
            for (const [at, x] of edits) all[at] ^= x;
            const c = makePair(provider).client;
            // Same ClientHello as the one the server answered: same seed.
            c.start(NOW);
            c.pollOutput();
            try {
              c.receive("initial", all.subarray(0, sh.length), NOW);
              c.receive("handshake", all.subarray(sh.length), NOW);
            } catch (e) {
              if (!(e instanceof TlsAlert)) throw e;
            }
            expect(c.handshakeComplete).toBe(false);
          },
        ),
        { numRuns: 60 },
      );
    });

    it("random bytes at any level to a client never throw anything but TlsAlert", () => {
      fc.assert(
        fc.property(
          fc.constantFrom("initial", "handshake", "application") as fc.Arbitrary<
            "initial" | "handshake" | "application"
          >,
          fc.uint8Array({ maxLength: 200 }),
          (level, bytes) => {
            const { client } = makePair(provider, { seed: 3 });
            client.start(NOW);
            try {
              client.receive(level, bytes, NOW);
            } catch (e) {
              if (!(e instanceof TlsAlert)) throw e;
            }
          },
        ),
        { numRuns: 200 },
      );
    });
  });
});
