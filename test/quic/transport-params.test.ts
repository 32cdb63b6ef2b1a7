import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SeededRng } from "../../src/crypto/random.js";
import { TransportError, TransportErrorCode } from "../../src/quic/errors.js";
import {
  decodeTransportParameters,
  defaultTransportParameters,
  encodeTransportParameters,
  TransportParameterId as Id,
  isReservedTransportParameterId,
  type TransportParameters,
} from "../../src/quic/transport-params.js";
import { concat, fromHex, Reader, toHex, Writer } from "../../src/util/bytes.js";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** One encoded parameter: id, length, value. */
function tp(id: number | bigint, value: Uint8Array | string = new Uint8Array(0)): Uint8Array {
  const v = typeof value === "string" ? fromHex(value) : value;
  return new Writer().varint(id).varint(v.length).bytes(v).finish().slice();
}
const vi = (n: number | bigint): Uint8Array => new Writer().varint(n).finish().slice();

function expectParamError(bytes: Uint8Array, sender: "client" | "server", reason: RegExp): void {
  let err: unknown;
  try {
    decodeTransportParameters(bytes, sender);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TransportError);
  expect((err as TransportError).errorCode).toBe(TransportErrorCode.TRANSPORT_PARAMETER_ERROR);
  expect((err as TransportError).reason).toMatch(reason);
}

/** Parameter ids in an encoding, in order. */
function ids(bytes: Uint8Array): bigint[] {
  const r = new Reader(bytes);
  const out: bigint[] = [];
  while (!r.done) {
    out.push(r.varintBig());
    r.bytes(r.varint());
  }
  return out;
}

describe("transport parameter fixtures", () => {
  it("decodes an annotated parameter list", () => {
    const bytes = fromHex(
      `
      01 04 80007530                         # max_idle_timeout = 30000 ms (4-byte varint)
      04 04 80100000                         # initial_max_data = 1 MiB
      08 01 10                               # initial_max_streams_bidi = 16
      0a 01 02                               # ack_delay_exponent = 2
      0c 00                                  # disable_active_migration
      0f 04 c0ffee01                         # initial_source_connection_id
      20 02 44b0                             # max_datagram_frame_size = 1200
      40 1b 00                               # reserved id 27 (31*0+27), 2-byte id form: ignored
      11 08 00000001 00000001                # version_information: chosen v1, available [v1]
      80 00 2a b2 00                         # grease_quic_bit (id 0x2ab2 in a non-minimal 4-byte varint)
    `.replace(/#.*$/gm, ""),
    );
    expect(decodeTransportParameters(bytes, "client")).toEqual({
      ...defaultTransportParameters,
      maxIdleTimeout: 30000,
      initialMaxData: 1 << 20,
      initialMaxStreamsBidi: 16,
      ackDelayExponent: 2,
      disableActiveMigration: true,
      initialSourceConnectionId: fromHex("c0ffee01"),
      maxDatagramFrameSize: 1200,
      versionInformation: { chosenVersion: 1, availableVersions: [1] },
      greaseQuicBit: true,
    });
  });

  it("decodes a server preferred_address", () => {
    const pa = fromHex(
      `
      c0000201 0050                          # 192.0.2.1:80
      20010db8000000000000000000000001 01bb  # [2001:db8::1]:443
      04 01020304                            # connection ID
      00112233445566778899aabbccddeeff       # stateless reset token
    `.replace(/#.*$/gm, ""),
    );
    const got = decodeTransportParameters(concat(tp(Id.PREFERRED_ADDRESS, pa), tp(0x00, "0102")), "server");
    expect(got.preferredAddress).toEqual({
      ipv4: fromHex("c0000201"),
      ipv4Port: 80,
      ipv6: fromHex("20010db8000000000000000000000001"),
      ipv6Port: 443,
      connectionId: fromHex("01020304"),
      statelessResetToken: fromHex("00112233445566778899aabbccddeeff"),
    });
    expect(got.originalDestinationConnectionId).toEqual(fromHex("0102"));
  });

  it("an empty list means all defaults", () => {
    expect(decodeTransportParameters(new Uint8Array(0), "server")).toEqual(defaultTransportParameters);
    expect(defaultTransportParameters).toMatchObject({
      maxUdpPayloadSize: 65527,
      ackDelayExponent: 3,
      maxAckDelay: 25,
      activeConnectionIdLimit: 2,
      maxIdleTimeout: 0,
      initialMaxData: 0,
    });
  });

  it("encodes in id order and leaves out defaults", () => {
    const enc = encodeTransportParameters({
      ...defaultTransportParameters,
      initialSourceConnectionId: fromHex("aabb"),
      initialMaxData: 100,
      maxAckDelay: 25, // the default: not sent
      greaseQuicBit: true,
    });
    // initial_max_data 100 | initial_source_connection_id aabb | grease_quic_bit (id 0x2ab2 as a 2-byte varint), empty
    expect(toHex(enc)).toBe(["04 02 4064", "0f 02 aabb", "6ab2 00"].join("").replace(/\s+/g, ""));
  });

  it("clamps integers above 2^53-1 and byte fields are copies", () => {
    const bytes = concat(
      tp(Id.INITIAL_MAX_DATA, "ffffffffffffffff"),
      tp(Id.INITIAL_SOURCE_CONNECTION_ID, "01"),
    );
    const got = decodeTransportParameters(bytes, "client");
    expect(got.initialMaxData).toBe(MAX_SAFE);
    bytes[bytes.length - 1] = 0x02;
    expect(got.initialSourceConnectionId).toEqual(fromHex("01"));
    // exactly 2^60 streams is allowed
    expect(
      decodeTransportParameters(tp(Id.INITIAL_MAX_STREAMS_UNI, "d000000000000000"), "client"),
    ).toMatchObject({
      initialMaxStreamsUni: MAX_SAFE,
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

const u62 = fc.oneof(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 2 ** 30 }), fc.maxSafeNat());
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const version = fc.integer({ min: 1, max: 0xffffffff });

function paramsArb(sender: "client" | "server"): fc.Arbitrary<TransportParameters> {
  const server = sender === "server";
  const versionInformation = server
    ? fc.record({ chosenVersion: version, availableVersions: fc.array(version, { maxLength: 5 }) })
    : fc.tuple(fc.array(version, { minLength: 1, maxLength: 5 }), fc.nat()).map(([availableVersions, i]) => ({
        chosenVersion: availableVersions[i % availableVersions.length],
        availableVersions,
      }));
  return fc.record({
    originalDestinationConnectionId: server ? opt(bytes(0, 20)) : fc.constant(undefined),
    maxIdleTimeout: u62,
    statelessResetToken: server ? opt(bytes(16, 16)) : fc.constant(undefined),
    maxUdpPayloadSize: fc.oneof(
      fc.integer({ min: 1200, max: 65527 }),
      fc.integer({ min: 1200, max: MAX_SAFE }),
    ),
    initialMaxData: u62,
    initialMaxStreamDataBidiLocal: u62,
    initialMaxStreamDataBidiRemote: u62,
    initialMaxStreamDataUni: u62,
    initialMaxStreamsBidi: u62,
    initialMaxStreamsUni: u62,
    ackDelayExponent: fc.integer({ min: 0, max: 20 }),
    maxAckDelay: fc.integer({ min: 0, max: 2 ** 14 - 1 }),
    disableActiveMigration: fc.boolean(),
    preferredAddress: server
      ? opt(
          fc.record({
            ipv4: bytes(4, 4),
            ipv4Port: fc.integer({ min: 0, max: 0xffff }),
            ipv6: bytes(16, 16),
            ipv6Port: fc.integer({ min: 0, max: 0xffff }),
            connectionId: bytes(1, 20),
            statelessResetToken: bytes(16, 16),
          }),
        )
      : fc.constant(undefined),
    activeConnectionIdLimit: fc.integer({ min: 2, max: MAX_SAFE }),
    initialSourceConnectionId: opt(bytes(0, 20)),
    retrySourceConnectionId: server ? opt(bytes(0, 20)) : fc.constant(undefined),
    maxDatagramFrameSize: u62,
    greaseQuicBit: fc.boolean(),
    versionInformation: opt(versionInformation),
  });
}

describe("transport parameter round trips (fast-check)", () => {
  for (const sender of ["client", "server"] as const) {
    it(`encode -> decode gives back the ${sender}'s parameters`, () => {
      fc.assert(
        fc.property(paramsArb(sender), fc.boolean(), fc.integer(), (p, grease, seed) => {
          const enc = encodeTransportParameters(p, { grease, rng: new SeededRng(seed) });
          expect(decodeTransportParameters(enc, sender)).toEqual(p);
        }),
        { numRuns: 500 },
      );
    });
  }

  it("a partial parameter set encodes as the full set with defaults", () => {
    const enc = encodeTransportParameters({ initialMaxStreamsBidi: 100 });
    expect(decodeTransportParameters(enc, "client")).toEqual({
      ...defaultTransportParameters,
      initialMaxStreamsBidi: 100,
    });
  });

  it("greasing adds exactly one reserved parameter (31 * N + 27), seeded and reproducible", () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const p = { initialMaxData: 1000, initialSourceConnectionId: fromHex("0102"), greaseQuicBit: true };
        const plain = ids(encodeTransportParameters(p));
        const greased = ids(encodeTransportParameters(p, { grease: true, rng: new SeededRng(seed) }));
        const reserved = greased.filter((id) => isReservedTransportParameterId(id));
        expect(reserved).toHaveLength(1);
        expect(greased.filter((id) => !isReservedTransportParameterId(id))).toEqual(plain);
        const again = encodeTransportParameters(p, { grease: true, rng: new SeededRng(seed) });
        expect(toHex(again)).toBe(
          toHex(encodeTransportParameters(p, { grease: true, rng: new SeededRng(seed) })),
        );
      }),
      { numRuns: 200 },
    );
    // without an injected rng the system CSPRNG is used
    const enc = encodeTransportParameters({}, { grease: true });
    expect(ids(enc).filter((id) => isReservedTransportParameterId(id))).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

describe("transport parameter validation (TRANSPORT_PARAMETER_ERROR)", () => {
  it("rejects a duplicate id", () => {
    expectParamError(
      concat(tp(Id.INITIAL_MAX_DATA, "01"), tp(Id.INITIAL_MAX_DATA, "01")),
      "client",
      /duplicate.*initial_max_data/,
    );
    expectParamError(concat(tp(27, "aa"), tp(27, "bb")), "client", /duplicate/);
    // the same id in two encodings is still a duplicate
    expectParamError(concat(tp(Id.MAX_IDLE_TIMEOUT, "01"), fromHex("4001 01 02")), "client", /duplicate/);
  });

  it("rejects max_udp_payload_size below 1200", () => {
    expectParamError(
      tp(Id.MAX_UDP_PAYLOAD_SIZE, vi(1199)),
      "client",
      /max_udp_payload_size 1199 is below 1200/,
    );
    expect(decodeTransportParameters(tp(Id.MAX_UDP_PAYLOAD_SIZE, vi(1200)), "client").maxUdpPayloadSize).toBe(
      1200,
    );
  });

  it("rejects ack_delay_exponent above 20", () => {
    expectParamError(tp(Id.ACK_DELAY_EXPONENT, vi(21)), "client", /ack_delay_exponent 21 is above 20/);
    expect(decodeTransportParameters(tp(Id.ACK_DELAY_EXPONENT, vi(20)), "client").ackDelayExponent).toBe(20);
  });

  it("rejects max_ack_delay of 2^14 or more", () => {
    expectParamError(tp(Id.MAX_ACK_DELAY, vi(2 ** 14)), "client", /max_ack_delay 16384 is not below 2\^14/);
    expectParamError(tp(Id.MAX_ACK_DELAY, "ffffffffffffffff"), "client", /max_ack_delay/);
    expect(decodeTransportParameters(tp(Id.MAX_ACK_DELAY, vi(2 ** 14 - 1)), "client").maxAckDelay).toBe(
      16383,
    );
  });

  it("rejects active_connection_id_limit below 2", () => {
    expectParamError(
      tp(Id.ACTIVE_CONNECTION_ID_LIMIT, vi(1)),
      "client",
      /active_connection_id_limit 1 is below 2/,
    );
    expectParamError(tp(Id.ACTIVE_CONNECTION_ID_LIMIT, vi(0)), "server", /active_connection_id_limit/);
  });

  it("rejects initial_max_streams_* above 2^60", () => {
    expectParamError(
      tp(Id.INITIAL_MAX_STREAMS_BIDI, "d000000000000001"),
      "client",
      /initial_max_streams_bidi .* exceeds 2\^60/,
    );
    expectParamError(tp(Id.INITIAL_MAX_STREAMS_UNI, "ffffffffffffffff"), "server", /initial_max_streams_uni/);
  });

  it("rejects a stateless_reset_token that is not 16 bytes", () => {
    expectParamError(
      tp(Id.STATELESS_RESET_TOKEN, new Uint8Array(15)),
      "server",
      /stateless_reset_token has 15 bytes/,
    );
    expectParamError(tp(Id.STATELESS_RESET_TOKEN, new Uint8Array(17)), "server", /stateless_reset_token/);
  });

  it("rejects a malformed preferred_address or one with a zero-length connection ID", () => {
    const head = "c0000201 0050 20010db8000000000000000000000001 01bb";
    const token = "00".repeat(16);
    expectParamError(tp(Id.PREFERRED_ADDRESS, `${head} 00 ${token}`), "server", /zero-length connection ID/);
    expectParamError(
      tp(Id.PREFERRED_ADDRESS, `${head} 15 ${"ab".repeat(21)} ${token}`),
      "server",
      /21 bytes/,
    );
    expectParamError(
      tp(Id.PREFERRED_ADDRESS, `${head} 04 01020304 ${"00".repeat(15)}`),
      "server",
      /malformed preferred_address/,
    );
    expectParamError(tp(Id.PREFERRED_ADDRESS, `${head} 04 01020304 ${token} 00`), "server", /trailing/);
    expectParamError(tp(Id.PREFERRED_ADDRESS, "c0000201"), "server", /preferred_address/);
  });

  it("rejects connection IDs longer than 20 bytes", () => {
    for (const id of [
      Id.ORIGINAL_DESTINATION_CONNECTION_ID,
      Id.INITIAL_SOURCE_CONNECTION_ID,
      Id.RETRY_SOURCE_CONNECTION_ID,
    ]) {
      expectParamError(tp(id, new Uint8Array(21)), "server", /longer than 20/);
      expect(() => decodeTransportParameters(tp(id, new Uint8Array(20)), "server")).not.toThrow();
    }
  });

  it("rejects server-only parameters sent by a client", () => {
    const token = "00".repeat(16);
    const pa = `c0000201 0050 20010db8000000000000000000000001 01bb 04 01020304 ${token}`;
    for (const [id, value, name] of [
      [Id.ORIGINAL_DESTINATION_CONNECTION_ID, "0102", "original_destination_connection_id"],
      [Id.STATELESS_RESET_TOKEN, token, "stateless_reset_token"],
      [Id.PREFERRED_ADDRESS, pa, "preferred_address"],
      [Id.RETRY_SOURCE_CONNECTION_ID, "0102", "retry_source_connection_id"],
    ] as const) {
      expectParamError(
        tp(id, value),
        "client",
        new RegExp(`client sent server-only transport parameter ${name}`),
      );
      expect(() => decodeTransportParameters(tp(id, value), "server")).not.toThrow();
    }
  });

  it("rejects grease_quic_bit and disable_active_migration with a value (RFC 9287 §3)", () => {
    expectParamError(tp(Id.GREASE_QUIC_BIT, "00"), "client", /grease_quic_bit must be empty/);
    expectParamError(
      tp(Id.DISABLE_ACTIVE_MIGRATION, "01"),
      "server",
      /disable_active_migration must be empty/,
    );
  });

  it("rejects malformed version_information (RFC 9368 §4)", () => {
    expectParamError(tp(Id.VERSION_INFORMATION, ""), "server", /multiple of 4/);
    expectParamError(tp(Id.VERSION_INFORMATION, "000000010000"), "server", /multiple of 4/);
    expectParamError(tp(Id.VERSION_INFORMATION, "00000000 00000001"), "server", /chosen version is 0/);
    expectParamError(tp(Id.VERSION_INFORMATION, "00000001 00000000"), "server", /lists version 0/);
    // a client's chosen version must be among its available versions
    expectParamError(tp(Id.VERSION_INFORMATION, "00000001 6b3343cf"), "client", /not among/);
    // a server's need not be, and its list may be empty
    expect(
      decodeTransportParameters(tp(Id.VERSION_INFORMATION, "00000001"), "server").versionInformation,
    ).toEqual({
      chosenVersion: 1,
      availableVersions: [],
    });
  });

  it("rejects malformed lengths", () => {
    expectParamError(fromHex("04 05 01"), "client", /malformed transport parameters: truncated/); // value cut short
    expectParamError(fromHex("04"), "client", /truncated/); // no length
    expectParamError(fromHex("40"), "client", /truncated/); // id cut short
    expectParamError(
      tp(Id.INITIAL_MAX_DATA, "0101"),
      "client",
      /malformed initial_max_data: 1 trailing byte/,
    );
    // a non-minimal varint value is still well formed
    expect(decodeTransportParameters(tp(Id.INITIAL_MAX_DATA, "4001"), "client").initialMaxData).toBe(1);
    expectParamError(tp(Id.INITIAL_MAX_DATA, "40"), "client", /malformed initial_max_data: truncated/);
    expectParamError(tp(Id.INITIAL_MAX_DATA, ""), "client", /malformed initial_max_data/);
  });

  it("the encoder refuses values the RFC forbids", () => {
    expect(() => encodeTransportParameters({ maxUdpPayloadSize: 1000 })).toThrow(RangeError);
    expect(() => encodeTransportParameters({ ackDelayExponent: 21 })).toThrow(RangeError);
    expect(() => encodeTransportParameters({ maxAckDelay: 2 ** 14 })).toThrow(RangeError);
    expect(() => encodeTransportParameters({ activeConnectionIdLimit: 1 })).toThrow(RangeError);
    expect(() => encodeTransportParameters({ initialMaxData: -1 })).toThrow(RangeError);
    expect(() => encodeTransportParameters({ initialSourceConnectionId: new Uint8Array(21) })).toThrow(
      RangeError,
    );
    expect(() => encodeTransportParameters({ statelessResetToken: new Uint8Array(8) })).toThrow(RangeError);
    expect(() =>
      encodeTransportParameters({
        preferredAddress: {
          ipv4: new Uint8Array(4),
          ipv4Port: 0,
          ipv6: new Uint8Array(16),
          ipv6Port: 0,
          connectionId: new Uint8Array(0),
          statelessResetToken: new Uint8Array(16),
        },
      }),
    ).toThrow(RangeError);
    expect(() =>
      encodeTransportParameters({ versionInformation: { chosenVersion: 0, availableVersions: [] } }),
    ).toThrow(RangeError);
  });
});

describe("unknown and reserved parameters", () => {
  it("skips unknown ids, GREASE ids and 8-byte ids", () => {
    const bytes = concat(
      tp(27, "deadbeef"), // 31*0+27
      tp(31 * 1000 + 27, new Uint8Array(300)), // a 2-byte length
      tp(0x7fff, ""),
      tp(0x21, "00"),
      tp((1n << 62n) - 1n, "01"), // the largest id
      tp(Id.INITIAL_MAX_DATA, vi(5)),
      tp(0xff02de1a, "00"), // an unregistered 4-byte id
    );
    expect(decodeTransportParameters(bytes, "client")).toEqual({
      ...defaultTransportParameters,
      initialMaxData: 5,
    });
  });

  it("identifies reserved ids", () => {
    expect([27, 58, 89, 31 * 1000 + 27].map(isReservedTransportParameterId)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect([0, 26, 28, 0x2ab2].map(isReservedTransportParameterId)).toEqual([false, false, false, false]);
  });

  const onlyTransportParameterErrors = (input: Uint8Array, sender: "client" | "server"): void => {
    try {
      decodeTransportParameters(input, sender);
    } catch (e) {
      expect(e).toBeInstanceOf(TransportError);
      expect((e as TransportError).errorCode).toBe(TransportErrorCode.TRANSPORT_PARAMETER_ERROR);
    }
  };

  it("random bytes only ever throw a TRANSPORT_PARAMETER_ERROR", () => {
    fc.assert(
      fc.property(
        bytes(0, 80),
        fc.constantFrom("client" as const, "server" as const),
        onlyTransportParameterErrors,
      ),
      { numRuns: 3000 },
    );
  });

  it("random values behind every known id only throw TRANSPORT_PARAMETER_ERROR", () => {
    const known = Object.values(Id);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...known), bytes(0, 48)), { maxLength: 6 }),
        fc.constantFrom("client" as const, "server" as const),
        (params, sender) =>
          onlyTransportParameterErrors(concat(...params.map(([id, v]) => tp(id, v))), sender),
      ),
      { numRuns: 3000 },
    );
  });
});
