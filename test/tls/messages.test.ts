/**
 * TLS 1.3 message and extension codecs: parse/serialize mirrors (fast-check), structural errors
 * with the right alert, HelloRetryRequest detection, and reassembly across any fragmentation.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AlertDescription, TlsAlert } from "../../src/tls/alert.js";
import {
  type Extension,
  type ExtensionContext,
  ExtensionType,
  extensionCode,
  parseExtensions,
  writeExtensions,
} from "../../src/tls/extensions.js";
import {
  frameHandshake,
  type HandshakeMessage,
  HandshakeReassembler,
  HELLO_RETRY_REQUEST_RANDOM,
  parseHandshake,
  serializeHandshake,
} from "../../src/tls/messages.js";
import { concat, fromHex, toHex, Writer } from "../../src/util/bytes.js";

// --- arbitraries ---------------------------------------------------------------------------------

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const latin1 = (min: number, max: number) =>
  fc
    .array(fc.integer({ min: 0, max: 255 }), { minLength: min, maxLength: max })
    .map((cs) => String.fromCharCode(...cs));
const keyShareEntry = fc.record({ group: u16, keyExchange: bytes(1, 70) });

/** Codes we model, per context; "opaque" extensions get codes outside that set. */
const MODELED = new Set<number>([0, 10, 13, 16, 41, 42, 43, 44, 45, 50, 51, 57]);
const opaque = fc
  .record({
    code: u16.filter((c) => !MODELED.has(c) && ![1, 5, 14, 15, 18, 19, 20, 21, 47, 48, 49].includes(c)),
    data: bytes(0, 20),
  })
  .map(({ code, data }): Extension => ({ type: "opaque", code, data }));

function extensionArb(ctx: ExtensionContext): fc.Arbitrary<Extension> {
  const all: Record<string, fc.Arbitrary<Extension>> = {
    server_name: fc
      .option(latin1(1, 30), { nil: undefined })
      .map((hostName) => ({ type: "server_name", hostName })),
    supported_groups: fc
      .array(u16, { minLength: 1, maxLength: 8 })
      .map((groups) => ({ type: "supported_groups", groups })),
    signature_algorithms: fc
      .array(u16, { minLength: 1, maxLength: 8 })
      .map((schemes) => ({ type: "signature_algorithms", schemes })),
    signature_algorithms_cert: fc
      .array(u16, { minLength: 1, maxLength: 8 })
      .map((schemes) => ({ type: "signature_algorithms_cert", schemes })),
    supported_versions: fc
      .array(u16, { minLength: 1, maxLength: 8 })
      .map((versions) => ({ type: "supported_versions", versions })),
    selected_version: u16.map((version) => ({ type: "selected_version", version })),
    key_share: fc.array(keyShareEntry, { maxLength: 3 }).map((shares) => ({ type: "key_share", shares })),
    key_share_server: keyShareEntry.map((share) => ({ type: "key_share_server", share })),
    key_share_hrr: u16.map((selectedGroup) => ({ type: "key_share_hrr", selectedGroup })),
    psk_key_exchange_modes: fc
      .array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 })
      .map((modes) => ({ type: "psk_key_exchange_modes", modes })),
    pre_shared_key: fc.integer({ min: 1, max: 3 }).chain((n) =>
      fc
        .record({
          identities: fc.array(fc.record({ identity: bytes(1, 40), obfuscatedTicketAge: u32 }), {
            minLength: n,
            maxLength: n,
          }),
          binders: fc.array(bytes(32, 48), { minLength: n, maxLength: n }),
        })
        .map(({ identities, binders }) => ({ type: "pre_shared_key", identities, binders })),
    ),
    pre_shared_key_selected: u16.map((selectedIdentity) => ({
      type: "pre_shared_key_selected",
      selectedIdentity,
    })),
    early_data: fc.constant({ type: "early_data" }),
    early_data_max: u32.map((maxEarlyDataSize) => ({ type: "early_data_max", maxEarlyDataSize })),
    alpn: fc
      .array(latin1(1, 20), { minLength: 1, maxLength: 4 })
      .map((protocols) => ({ type: "alpn", protocols })),
    quic_transport_parameters: bytes(0, 40).map((data) => ({ type: "quic_transport_parameters", data })),
    cookie: bytes(1, 40).map((cookie) => ({ type: "cookie", cookie })),
  } as Record<string, fc.Arbitrary<Extension>>;
  const byCtx: Record<ExtensionContext, string[]> = {
    client_hello: [
      "server_name",
      "supported_groups",
      "signature_algorithms",
      "signature_algorithms_cert",
      "supported_versions",
      "key_share",
      "psk_key_exchange_modes",
      "early_data",
      "alpn",
      "quic_transport_parameters",
      "cookie",
    ],
    server_hello: ["selected_version", "key_share_server", "pre_shared_key_selected"],
    hello_retry_request: ["selected_version", "key_share_hrr", "cookie"],
    encrypted_extensions: [
      "server_name",
      "supported_groups",
      "early_data",
      "alpn",
      "quic_transport_parameters",
    ],
    certificate: [],
    certificate_request: ["signature_algorithms", "signature_algorithms_cert"],
    new_session_ticket: ["early_data_max"],
  };
  if (ctx === "client_hello")
    all.server_name = latin1(1, 30).map((hostName) => ({ type: "server_name", hostName }));
  const names = byCtx[ctx];
  const arbs = names.map((n) => all[n]);
  if (
    ctx === "client_hello" ||
    ctx === "certificate" ||
    ctx === "new_session_ticket" ||
    ctx === "encrypted_extensions"
  ) {
    arbs.push(opaque);
  }
  if (arbs.length === 0) return opaque;
  return fc.oneof(...arbs);
}

/** An extension list without repeated codes (and, in a ClientHello, pre_shared_key last). */
function extensionsArb(ctx: ExtensionContext): fc.Arbitrary<Extension[]> {
  const list = fc.uniqueArray(extensionArb(ctx), { maxLength: 8, selector: extensionCode });
  if (ctx !== "client_hello") return list;
  return fc.tuple(list, fc.boolean()).chain(([exts, withPsk]) =>
    withPsk
      ? fc
          .record({
            identities: fc.array(fc.record({ identity: bytes(1, 20), obfuscatedTicketAge: u32 }), {
              minLength: 1,
              maxLength: 1,
            }),
            binders: fc.array(bytes(32, 32), { minLength: 1, maxLength: 1 }),
          })
          .map(({ identities, binders }) => [
            ...exts,
            { type: "pre_shared_key", identities, binders } as Extension,
          ])
      : fc.constant(exts),
  );
}

const random32 = bytes(32, 32).filter((r) => toHex(r) !== toHex(HELLO_RETRY_REQUEST_RANDOM));

const messageArb: fc.Arbitrary<HandshakeMessage> = fc.oneof(
  fc.record({
    type: fc.constant("client_hello" as const),
    legacyVersion: u16,
    random: random32,
    legacySessionId: bytes(0, 32),
    cipherSuites: fc.array(u16, { minLength: 1, maxLength: 6 }),
    legacyCompressionMethods: bytes(1, 3),
    extensions: extensionsArb("client_hello"),
  }),
  fc.record({
    type: fc.constant("server_hello" as const),
    legacyVersion: u16,
    random: random32,
    legacySessionIdEcho: bytes(0, 32),
    cipherSuite: u16,
    legacyCompressionMethod: fc.integer({ min: 0, max: 255 }),
    extensions: extensionsArb("server_hello"),
  }),
  fc.record({
    type: fc.constant("hello_retry_request" as const),
    legacyVersion: u16,
    legacySessionIdEcho: bytes(0, 32),
    cipherSuite: u16,
    legacyCompressionMethod: fc.integer({ min: 0, max: 255 }),
    extensions: extensionsArb("hello_retry_request"),
  }),
  fc.record({
    type: fc.constant("encrypted_extensions" as const),
    extensions: extensionsArb("encrypted_extensions"),
  }),
  fc.record({
    type: fc.constant("certificate_request" as const),
    requestContext: bytes(0, 10),
    extensions: extensionsArb("certificate_request"),
  }),
  fc.record({
    type: fc.constant("certificate" as const),
    requestContext: bytes(0, 10),
    entries: fc.array(fc.record({ data: bytes(1, 60), extensions: extensionsArb("certificate") }), {
      maxLength: 3,
    }),
  }),
  fc.record({ type: fc.constant("certificate_verify" as const), algorithm: u16, signature: bytes(0, 80) }),
  fc.record({ type: fc.constant("finished" as const), verifyData: bytes(0, 48) }),
  fc.record({
    type: fc.constant("new_session_ticket" as const),
    lifetime: u32,
    ageAdd: u32,
    nonce: bytes(0, 8),
    ticket: bytes(1, 60),
    extensions: extensionsArb("new_session_ticket"),
  }),
  fc.constant({ type: "end_of_early_data" as const }),
  fc.record({
    type: fc.constant("key_update" as const),
    requestUpdate: fc.constantFrom(0 as const, 1 as const),
  }),
);

function alertOf(fn: () => unknown): TlsAlert {
  try {
    fn();
  } catch (e) {
    if (e instanceof TlsAlert) return e;
    throw e;
  }
  throw new Error("nothing thrown");
}

/** Builds a handshake message from a body writer. */
function msg(type: number, body: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  body(w);
  return frameHandshake(type, w.finish());
}

/** A minimal valid ClientHello body with the given raw extension block. */
function clientHelloWith(extBlock: Uint8Array, sessionId = new Uint8Array(0)): Uint8Array {
  return msg(1, (w) => {
    w.u16(0x0303)
      .bytes(new Uint8Array(32))
      .vec(1, sessionId)
      .vec(2, fromHex("1301"))
      .vec(1, new Uint8Array([0]));
    w.bytes(extBlock);
  });
}

function rawExts(...exts: [number, Uint8Array][]): Uint8Array {
  const w = new Writer();
  w.block(2, (l) => {
    for (const [code, data] of exts) l.u16(code).vec(2, data);
  });
  return w.finish().slice();
}

// --- tests ---------------------------------------------------------------------------------------

describe("handshake message codecs", () => {
  it("serialize -> parse is the identity, and parse -> serialize gives the same bytes", () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const wire = serializeHandshake(m);
        const back = parseHandshake(wire);
        expect(back).toEqual(m);
        expect(toHex(serializeHandshake(back))).toBe(toHex(wire));
      }),
      { numRuns: 1000 },
    );
  });

  it("random bytes either fail with a TlsAlert or parse into a message that re-serializes to the same bytes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 }), fc.uint8Array({ maxLength: 200 }), (type, body) => {
        const wire = frameHandshake(type, body);
        let parsed: HandshakeMessage;
        try {
          parsed = parseHandshake(wire);
        } catch (e) {
          if (!(e instanceof TlsAlert)) throw e;
          return;
        }
        expect(toHex(serializeHandshake(parsed))).toBe(toHex(wire));
      }),
      { numRuns: 3000 },
    );
  });

  it("every truncation and extension of a valid message is a TlsAlert", () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), (m, cut) => {
        const wire = serializeHandshake(m);
        if (wire.length > 4) {
          const body = wire.subarray(4, 4 + (cut % (wire.length - 4)));
          // A shorter body fails, except where the body ends in a free-form field (Finished).
          if (m.type !== "finished")
            expect(() => parseHandshake(frameHandshake(wire[0], body))).toThrow(TlsAlert);
        }
        if (m.type !== "finished") {
          const longer = frameHandshake(wire[0], concat(wire.subarray(4), new Uint8Array([0])));
          expect(() => parseHandshake(longer)).toThrow(TlsAlert);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("a ServerHello with the special random is a HelloRetryRequest (RFC 8446 §4.1.3)", () => {
    const hrr: HandshakeMessage = {
      type: "hello_retry_request",
      legacyVersion: 0x0303,
      legacySessionIdEcho: new Uint8Array(0),
      cipherSuite: 0x1301,
      legacyCompressionMethod: 0,
      extensions: [
        { type: "selected_version", version: 0x0304 },
        { type: "key_share_hrr", selectedGroup: 0x17 },
        { type: "cookie", cookie: new Uint8Array([1, 2]) },
      ],
    };
    const wire = serializeHandshake(hrr);
    expect(wire[0]).toBe(2);
    expect(toHex(wire.subarray(6, 38))).toBe(
      "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c",
    );
    expect(toHex(wire.subarray(38))).toBe(
      "001301000014" + "002b00020304" + "003300020017" + "002c000400020102",
    );
    expect(parseHandshake(wire)).toEqual(hrr);
  });

  it("a hello without an extensions block is protocol_version (not TLS 1.3)", () => {
    const ch = msg(1, (w) => {
      w.u16(0x0303)
        .bytes(new Uint8Array(32))
        .vec(1, new Uint8Array(0))
        .vec(2, fromHex("002f"))
        .vec(1, new Uint8Array([0]));
    });
    expect(alertOf(() => parseHandshake(ch)).description).toBe(AlertDescription.protocol_version);
  });

  it("structural errors are decode_error", () => {
    const cases: [string, Uint8Array][] = [
      ["legacy_session_id longer than 32", clientHelloWith(rawExts(), new Uint8Array(33))],
      [
        "odd cipher_suites",
        msg(1, (w) =>
          w
            .u16(0x0303)
            .bytes(new Uint8Array(32))
            .u8(0)
            .vec(2, fromHex("130101"))
            .vec(1, fromHex("00"))
            .u16(0),
        ),
      ],
      [
        "empty compression methods",
        msg(1, (w) => w.u16(0x0303).bytes(new Uint8Array(32)).u8(0).vec(2, fromHex("1301")).u8(0).u16(0)),
      ],
      ["extension body longer than its block", clientHelloWith(fromHex("0004 000a 0010"))],
      ["trailing byte inside supported_groups", clientHelloWith(rawExts([10, fromHex("0002001d00")]))],
      ["empty supported_groups", clientHelloWith(rawExts([10, fromHex("0000")]))],
      ["empty ALPN protocol name", clientHelloWith(rawExts([16, fromHex("000100")]))],
      ["empty ALPN list", clientHelloWith(rawExts([16, fromHex("0000")]))],
      ["empty server_name in a ClientHello", clientHelloWith(rawExts([0, new Uint8Array(0)]))],
      ["unknown server name type", clientHelloWith(rawExts([0, fromHex("0004 01 0001 61")]))],
      ["key share with an empty key", clientHelloWith(rawExts([51, fromHex("0004 001d 0000")]))],
      ["early_data with a body in a ClientHello", clientHelloWith(rawExts([42, fromHex("00")]))],
      [
        "PSK binder shorter than 32",
        clientHelloWith(rawExts([41, concat(fromHex("0007 0001 aa 00000000"), fromHex("0002 01 bb"))])),
      ],
      ["empty Certificate entry", msg(11, (w) => w.u8(0).u24(5).u24(0).u16(0))],
      ["NewSessionTicket with an empty ticket", msg(4, (w) => w.u32(1).u32(2).u8(0).u16(0).u16(0))],
      ["truncated CertificateVerify", msg(15, (w) => w.u16(0x0403).u16(10).u8(1))],
    ];
    for (const [what, wire] of cases) {
      const a = alertOf(() => parseHandshake(wire));
      expect(a.description, what).toBe(AlertDescription.decode_error);
    }
  });

  it("a repeated extension is illegal_parameter (RFC 8446 §4.2)", () => {
    const wire = clientHelloWith(rawExts([0x1234, new Uint8Array(0)], [0x1234, new Uint8Array(0)]));
    expect(alertOf(() => parseHandshake(wire)).description).toBe(AlertDescription.illegal_parameter);
  });

  it("pre_shared_key not last in a ClientHello is illegal_parameter (RFC 8446 §4.2.11)", () => {
    const psk = concat(fromHex("0007 0001 aa 00000000"), fromHex("0021 20"), new Uint8Array(32));
    expect(parseHandshake(clientHelloWith(rawExts([57, new Uint8Array(0)], [41, psk]))).type).toBe(
      "client_hello",
    );
    const wire = clientHelloWith(rawExts([41, psk], [57, new Uint8Array(0)]));
    expect(alertOf(() => parseHandshake(wire)).description).toBe(AlertDescription.illegal_parameter);
  });

  it("a recognized extension in a message that may not carry it is illegal_parameter", () => {
    const cases: [ExtensionContext, number, Uint8Array][] = [
      ["encrypted_extensions", ExtensionType.key_share, fromHex("001d0001aa")],
      ["encrypted_extensions", ExtensionType.supported_versions, fromHex("0304")],
      ["encrypted_extensions", ExtensionType.signature_algorithms, fromHex("00020403")],
      ["server_hello", ExtensionType.quic_transport_parameters, new Uint8Array(0)],
      ["server_hello", ExtensionType.cookie, fromHex("000101")],
      ["server_hello", ExtensionType.application_layer_protocol_negotiation, fromHex("0003026832")],
      ["hello_retry_request", ExtensionType.pre_shared_key, fromHex("0000")],
      ["new_session_ticket", ExtensionType.server_name, new Uint8Array(0)],
      ["certificate", ExtensionType.key_share, fromHex("001d0001aa")],
      ["client_hello", ExtensionType.oid_filters, new Uint8Array(0)],
    ];
    for (const [ctx, code, data] of cases) {
      const a = alertOf(() => parseExtensions(rawExts([code, data]), ctx));
      expect(a.description, `${code} in ${ctx}`).toBe(AlertDescription.illegal_parameter);
    }
  });

  it("an extension list round-trips in every context", () => {
    const contexts: ExtensionContext[] = [
      "client_hello",
      "server_hello",
      "hello_retry_request",
      "encrypted_extensions",
      "certificate",
      "certificate_request",
      "new_session_ticket",
    ];
    for (const ctx of contexts) {
      fc.assert(
        fc.property(extensionsArb(ctx), (exts) => {
          const w = new Writer();
          writeExtensions(w, exts);
          expect(parseExtensions(w.finish(), ctx)).toEqual(exts);
        }),
        { numRuns: 200 },
      );
    }
  });

  it("KeyUpdate with request_update 2 is illegal_parameter", () => {
    expect(alertOf(() => parseHandshake(fromHex("1800000102"))).description).toBe(
      AlertDescription.illegal_parameter,
    );
  });

  it("unknown message types are unexpected_message", () => {
    for (const t of [0, 3, 6, 12, 14, 16, 21, 22, 23, 254, 255]) {
      expect(alertOf(() => parseHandshake(frameHandshake(t, new Uint8Array(0)))).description).toBe(
        AlertDescription.unexpected_message,
      );
    }
  });
});

describe("HandshakeReassembler", () => {
  it("returns the same messages however the stream is split", () => {
    fc.assert(
      fc.property(
        fc.array(messageArb, { minLength: 1, maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        (msgs, cuts) => {
          const stream = concat(...msgs.map(serializeHandshake));
          const r = new HandshakeReassembler();
          const got: Uint8Array[] = [];
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const n = cuts[i % cuts.length];
            r.push(stream.subarray(at, at + n));
            at += n;
            for (let m = r.next(); m; m = r.next()) got.push(m.raw);
          }
          expect(got.map(toHex)).toEqual(msgs.map((m) => toHex(serializeHandshake(m))));
          expect(r.buffered).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("keeps a partial header and a partial body until complete", () => {
    const r = new HandshakeReassembler();
    r.push(fromHex("1400"));
    expect(r.next()).toBeUndefined();
    r.push(fromHex("0003aa"));
    expect(r.next()).toBeUndefined();
    expect(r.buffered).toBe(5);
    r.push(fromHex("bbcc14"));
    const m = r.next();
    expect(m?.msgType).toBe(20);
    expect(toHex(m!.body)).toBe("aabbcc");
    expect(toHex(m!.raw)).toBe("14000003aabbcc");
    expect(r.next()).toBeUndefined();
    expect(r.buffered).toBe(1);
  });

  it("refuses a message larger than its bound as soon as the header is in", () => {
    const r = new HandshakeReassembler(1000);
    r.push(fromHex("0b0003"));
    expect(alertOf(() => r.push(fromHex("e9"))).description).toBe(AlertDescription.illegal_parameter);
    const ok = new HandshakeReassembler(1000);
    ok.push(fromHex("0b0003e8"));
    expect(ok.next()).toBeUndefined();
  });
});
