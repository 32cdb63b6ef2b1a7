import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TransportError, TransportErrorCode } from "../../src/quic/errors.js";
import {
  cryptoDataCapacity,
  cryptoFrameOverhead,
  decodeFrames,
  encodeFrame,
  FRAME_TYPES,
  type Frame,
  FrameIterator,
  frameAllowedIn,
  frameSize,
  frameTypeCode,
  frameTypeInfo,
  isAckEliciting,
  type PacketType,
  streamDataCapacity,
  streamFrameOverhead,
} from "../../src/quic/frames.js";
import { fromHex, toHex, Writer } from "../../src/util/bytes.js";

const { FRAME_ENCODING_ERROR, PROTOCOL_VIOLATION } = TransportErrorCode;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function encode(f: Frame, lastInPacket = false): Uint8Array {
  const w = new Writer(16);
  encodeFrame(w, f, { lastInPacket });
  return w.finish().slice();
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Asserts that decoding `hex` throws a TransportError with this code and frame type. */
function expectError(hex: string, code: number, frameType: number, reason?: RegExp): void {
  let err: unknown;
  try {
    decodeFrames(fromHex(hex));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TransportError);
  const te = err as TransportError;
  expect({ code: te.errorCode, frameType: te.frameType }).toEqual({ code, frameType });
  if (reason) expect(te.reason).toMatch(reason);
}

// ---------------------------------------------------------------------------------------------
// Hand-written fixtures
// ---------------------------------------------------------------------------------------------

describe("frame fixtures (annotated bytes)", () => {
  const fixtures: Array<[string, string, Frame[]]> = [
    ["PING", "01", [{ type: "ping" }]],
    [
      "PADDING runs merge into one frame",
      "00 00 00 | 01 | 00",
      [{ type: "padding", length: 3 }, { type: "ping" }, { type: "padding", length: 1 }],
    ],
    [
      "ACK with two ranges",
      // type 02, largest 100 (2-byte varint), delay 25, 1 extra range, first range 2 -> [98,100],
      // gap 3 -> largest 98-3-2 = 93, length 4 -> [89,93]
      "02 4064 19 01 02 03 04",
      [
        {
          type: "ack",
          largest: 100,
          ackDelay: 25,
          ranges: [
            [98, 100],
            [89, 93],
          ],
        },
      ],
    ],
    [
      "ACK_ECN",
      // type 03, largest 5, delay 0, 0 extra ranges, first range 0, ECT0 1, ECT1 2, CE 3
      "03 05 00 00 00 01 02 03",
      [{ type: "ack", largest: 5, ackDelay: 0, ranges: [[5, 5]], ecn: { ect0: 1, ect1: 2, ce: 3 } }],
    ],
    [
      "RESET_STREAM",
      // type 04, stream 4, error 0x0101 (2-byte), final size 1000 (2-byte)
      "04 04 4101 43e8",
      [{ type: "reset_stream", streamId: 4, errorCode: 0x101, finalSize: 1000 }],
    ],
    ["STOP_SENDING", "05 08 00", [{ type: "stop_sending", streamId: 8, errorCode: 0 }]],
    [
      "CRYPTO",
      // type 06, offset 0, length 4, data
      "06 00 04 01020304",
      [{ type: "crypto", offset: 0, data: fromHex("01020304") }],
    ],
    ["NEW_TOKEN", "07 02 abcd", [{ type: "new_token", token: fromHex("abcd") }]],
    [
      "STREAM with OFF and LEN",
      // type 0e (OFF|LEN), stream 4, offset 256 (2-byte), length 3, "abc"
      "0e 04 4100 03 616263",
      [{ type: "stream", streamId: 4, offset: 256, data: ascii("abc"), fin: false }],
    ],
    [
      "STREAM with FIN and no LEN runs to the end of the packet",
      // type 09 (FIN), stream 0, "hi"
      "09 00 6869",
      [{ type: "stream", streamId: 0, offset: 0, data: ascii("hi"), fin: true }],
    ],
    ["MAX_DATA", "10 8000 4000", [{ type: "max_data", limit: 0x4000 }]],
    [
      "MAX_DATA of 2^62-1 is clamped to 2^53-1",
      "10 ffffffffffffffff",
      [{ type: "max_data", limit: MAX_SAFE }],
    ],
    ["MAX_STREAM_DATA", "11 01 3f", [{ type: "max_stream_data", streamId: 1, limit: 63 }]],
    ["MAX_STREAMS bidi", "12 0a", [{ type: "max_streams", bidi: true, limit: 10 }]],
    [
      "MAX_STREAMS uni of exactly 2^60 (clamped)",
      "13 d000000000000000",
      [{ type: "max_streams", bidi: false, limit: MAX_SAFE }],
    ],
    ["DATA_BLOCKED", "14 00", [{ type: "data_blocked", limit: 0 }]],
    ["STREAM_DATA_BLOCKED", "15 02 05", [{ type: "stream_data_blocked", streamId: 2, limit: 5 }]],
    ["STREAMS_BLOCKED uni", "17 03", [{ type: "streams_blocked", bidi: false, limit: 3 }]],
    [
      "NEW_CONNECTION_ID",
      // type 18, sequence 2, retire prior to 1, length 4, CID, 16-byte reset token
      "18 02 01 04 c0ffee00 000102030405060708090a0b0c0d0e0f",
      [
        {
          type: "new_connection_id",
          sequence: 2,
          retirePriorTo: 1,
          connectionId: fromHex("c0ffee00"),
          statelessResetToken: fromHex("000102030405060708090a0b0c0d0e0f"),
        },
      ],
    ],
    ["RETIRE_CONNECTION_ID", "19 07", [{ type: "retire_connection_id", sequence: 7 }]],
    [
      "PATH_CHALLENGE + PATH_RESPONSE",
      "1a 0102030405060708 1b 0102030405060708",
      [
        { type: "path_challenge", data: fromHex("0102030405060708") },
        { type: "path_response", data: fromHex("0102030405060708") },
      ],
    ],
    [
      "CONNECTION_CLOSE (transport)",
      // type 1c, PROTOCOL_VIOLATION, caused by frame type 0x08, reason "hello"
      "1c 0a 08 05 68656c6c6f",
      [{ type: "connection_close", application: false, errorCode: 0x0a, frameType: 8, reason: "hello" }],
    ],
    [
      "CONNECTION_CLOSE (application)",
      // type 1d, error 100, empty reason
      "1d 4064 00",
      [{ type: "connection_close", application: true, errorCode: 100, frameType: 0, reason: "" }],
    ],
    [
      "CONNECTION_CLOSE with an invalid UTF-8 reason decodes leniently",
      "1c 00 00 03 ff 41 fe",
      [{ type: "connection_close", application: false, errorCode: 0, frameType: 0, reason: "\ufffdA\ufffd" }],
    ],
    ["HANDSHAKE_DONE", "1e", [{ type: "handshake_done" }]],
    [
      "DATAGRAM with length",
      "31 03 aabbcc | 01",
      [{ type: "datagram", data: fromHex("aabbcc") }, { type: "ping" }],
    ],
    ["DATAGRAM to the end of the packet", "30 aabbcc", [{ type: "datagram", data: fromHex("aabbcc") }]],
    ["empty DATAGRAM", "31 00", [{ type: "datagram", data: new Uint8Array(0) }]],
  ];
  for (const [name, hex, frames] of fixtures) {
    it(name, () => {
      expect(decodeFrames(fromHex(hex.replace(/\|/g, "")))).toEqual(frames);
    });
  }

  it("re-encodes the canonical fixtures byte for byte", () => {
    const canonical = [
      "ACK with two ranges",
      "ACK_ECN",
      "RESET_STREAM",
      "CRYPTO",
      "STREAM with OFF and LEN",
      "NEW_CONNECTION_ID",
      "CONNECTION_CLOSE (transport)",
      "CONNECTION_CLOSE (application)",
      "PATH_CHALLENGE + PATH_RESPONSE",
      "DATAGRAM with length",
    ];
    for (const name of canonical) {
      const [, hex, frames] = fixtures.find(([n]) => n === name)!;
      const w = new Writer();
      for (const f of frames) encodeFrame(w, f);
      expect(toHex(w.finish()), name).toBe(hex.replace(/[\s|]+/g, ""));
    }
    expect(toHex(encode({ type: "datagram", data: fromHex("aabbcc") }, true))).toBe("30aabbcc");
    expect(
      toHex(encode({ type: "stream", streamId: 0, offset: 0, data: ascii("hi"), fin: true }, true)),
    ).toBe("09006869");
  });

  it("decodes the RFC 9001 §A.3 server Initial payload (ACK + CRYPTO)", () => {
    // RFC 9001 Appendix A.3: "an ACK frame, a CRYPTO frame, and no PADDING frames".
    const payload = fromHex(`
      02000000000600405a020000560303ee fce7f7b37ba1d1632e96677825ddf739
      88cfc79825df566dc5430b9a045a1200 130100002e00330024001d00209d3c94
      0d89690b84d08a60993c144eca684d10 81287c834d5311bcf32bb9da1a002b00
      020304`);
    const frames = decodeFrames(payload);
    expect(frames).toHaveLength(2);
    expect(frames[0]).toEqual({ type: "ack", largest: 0, ackDelay: 0, ranges: [[0, 0]] });
    const crypto = frames[1];
    expect(crypto.type).toBe("crypto");
    if (crypto.type !== "crypto") return;
    expect(crypto.offset).toBe(0);
    expect(crypto.data.length).toBe(90);
    expect(crypto.data[0]).toBe(0x02); // TLS ServerHello
    // A view into the payload, not a copy.
    expect(crypto.data.buffer).toBe(payload.buffer);
    expect(frames.map((f) => frameSize(f)).reduce((a, b) => a + b)).toBe(payload.length);
  });

  it("STREAM data is a view into the payload", () => {
    const payload = fromHex("0a 04 03 616263");
    const [f] = decodeFrames(payload);
    if (f.type !== "stream") throw new Error("not a stream frame");
    expect(f.data.buffer).toBe(payload.buffer);
    expect(f.data.byteOffset).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

/** Integers biased toward each varint size boundary. */
const u62 = fc.oneof(
  fc.integer({ min: 0, max: 63 }),
  fc.integer({ min: 0, max: 16383 }),
  fc.integer({ min: 0, max: 2 ** 30 - 1 }),
  fc.integer({ min: 2 ** 30 - 2, max: 2 ** 30 + 2 }),
  fc.maxSafeNat(),
);
const smallU62 = fc.oneof(fc.integer({ min: 0, max: 16383 }), fc.integer({ min: 0, max: 2 ** 40 }));
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });

const ackArb: fc.Arbitrary<Frame> = fc
  .record({
    base: smallU62,
    // [length, gap-before-next] pairs, built from the bottom up
    steps: fc.array(fc.tuple(smallU62, smallU62), { minLength: 1, maxLength: 12 }),
    ackDelay: u62,
    ecn: fc.option(fc.record({ ect0: u62, ect1: u62, ce: u62 }), { nil: undefined }),
  })
  .map(({ base, steps, ackDelay, ecn }) => {
    const ranges: Array<[number, number]> = [];
    let lo = base;
    for (const [len, gap] of steps) {
      ranges.push([lo, lo + len]);
      lo = lo + len + gap + 2;
    }
    ranges.reverse();
    const f: Frame = { type: "ack", largest: ranges[0][1], ackDelay, ranges };
    if (ecn) f.ecn = ecn;
    return f;
  });

const reason = fc.string({ unit: "grapheme", maxLength: 40 });

/** Every frame type except PADDING (whose runs merge). */
const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.constant<Frame>({ type: "ping" }),
  ackArb,
  fc
    .record({ streamId: u62, errorCode: u62, finalSize: u62 })
    .map((r): Frame => ({ type: "reset_stream", ...r })),
  fc.record({ streamId: u62, errorCode: u62 }).map((r): Frame => ({ type: "stop_sending", ...r })),
  fc.record({ offset: smallU62, data: bytes(0, 64) }).map((r): Frame => ({ type: "crypto", ...r })),
  bytes(1, 64).map((token): Frame => ({ type: "new_token", token })),
  fc
    .record({ streamId: u62, offset: smallU62, data: bytes(0, 64), fin: fc.boolean() })
    .map((r): Frame => ({ type: "stream", ...r })),
  u62.map((limit): Frame => ({ type: "max_data", limit })),
  fc.record({ streamId: u62, limit: u62 }).map((r): Frame => ({ type: "max_stream_data", ...r })),
  fc.record({ bidi: fc.boolean(), limit: u62 }).map((r): Frame => ({ type: "max_streams", ...r })),
  u62.map((limit): Frame => ({ type: "data_blocked", limit })),
  fc.record({ streamId: u62, limit: u62 }).map((r): Frame => ({ type: "stream_data_blocked", ...r })),
  fc.record({ bidi: fc.boolean(), limit: u62 }).map((r): Frame => ({ type: "streams_blocked", ...r })),
  fc
    .record({
      sequence: u62,
      retire: fc.double({ min: 0, max: 1, noNaN: true }),
      cid: bytes(1, 20),
      token: bytes(16, 16),
    })
    .map(
      ({ sequence, retire, cid, token }): Frame => ({
        type: "new_connection_id",
        sequence,
        retirePriorTo: Math.floor(sequence * retire),
        connectionId: cid,
        statelessResetToken: token,
      }),
    ),
  u62.map((sequence): Frame => ({ type: "retire_connection_id", sequence })),
  bytes(8, 8).map((data): Frame => ({ type: "path_challenge", data })),
  bytes(8, 8).map((data): Frame => ({ type: "path_response", data })),
  fc
    .record({ application: fc.boolean(), errorCode: u62, frameType: u62, reason })
    .map((r): Frame => ({ type: "connection_close", ...r, frameType: r.application ? 0 : r.frameType })),
  fc.constant<Frame>({ type: "handshake_done" }),
  bytes(0, 64).map((data): Frame => ({ type: "datagram", data })),
);

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

describe("frame round trips (fast-check)", () => {
  it("encode -> decode gives back the frame, and the size matches frameSize", () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const enc = encode(f);
        expect(enc.length).toBe(frameSize(f));
        expect(decodeFrames(enc)).toEqual([f]);
        expect(enc[0]).toBe(frameTypeCode(f));
      }),
      { numRuns: 2000 },
    );
  });

  it("the last-in-packet forms of STREAM and DATAGRAM round-trip and match frameSize", () => {
    const lastArb = frameArb.filter((f) => f.type === "stream" || f.type === "datagram");
    fc.assert(
      fc.property(frameArb, lastArb, (first, last) => {
        const w = new Writer();
        encodeFrame(w, first);
        encodeFrame(w, last, { lastInPacket: true });
        expect(w.pos).toBe(frameSize(first) + frameSize(last, { lastInPacket: true }));
        expect(decodeFrames(w.finish())).toEqual([first, last]);
      }),
    );
  });

  it("a sequence of frames round-trips through one payload", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 10 }), (frames) => {
        const w = new Writer();
        for (const f of frames) encodeFrame(w, f);
        expect(decodeFrames(w.finish())).toEqual(frames);
        // The iterator yields the same, one frame at a time.
        expect([...new FrameIterator(w.finish())]).toEqual(frames);
      }),
    );
  });

  it("PADDING of any length round-trips as one frame", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), (length) => {
        const enc = encode({ type: "padding", length });
        expect(enc.length).toBe(length);
        expect(enc.every((b) => b === 0)).toBe(true);
        expect(decodeFrames(enc)).toEqual([{ type: "padding", length }]);
      }),
      { numRuns: 50 },
    );
  });

  it("frameSize counts UTF-8 exactly, lone surrogates included", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 30 }), (s) => {
        const f: Frame = {
          type: "connection_close",
          application: true,
          errorCode: 1,
          frameType: 0,
          reason: s,
        };
        expect(encode(f).length).toBe(frameSize(f));
      }),
    );
  });

  it("truncating an encoded frame by one byte gives FRAME_ENCODING_ERROR naming the frame type", () => {
    const withBody = frameArb.filter((f) => f.type !== "ping" && f.type !== "handshake_done");
    fc.assert(
      fc.property(withBody, (f) => {
        const enc = encode(f);
        try {
          decodeFrames(enc.subarray(0, enc.length - 1));
          expect.unreachable("decoded a truncated frame");
        } catch (e) {
          expect(e).toBeInstanceOf(TransportError);
          expect((e as TransportError).errorCode).toBe(FRAME_ENCODING_ERROR);
          expect((e as TransportError).frameType).toBe(frameTypeCode(f));
        }
      }),
      { numRuns: 1000 },
    );
  });

  const onlyTransportErrors = (input: Uint8Array): void => {
    try {
      new FrameIterator(input); // construction never throws
      decodeFrames(input);
    } catch (e) {
      expect(e).toBeInstanceOf(TransportError);
      expect([FRAME_ENCODING_ERROR, PROTOCOL_VIOLATION]).toContain((e as TransportError).errorCode);
    }
  };

  it("random bytes never throw anything but a FRAME_ENCODING_ERROR/PROTOCOL_VIOLATION TransportError", () => {
    fc.assert(fc.property(bytes(0, 64), onlyTransportErrors), { numRuns: 5000 });
  });

  it("random bodies behind every known type byte only throw TransportError", () => {
    const codes = [...Array(0x1f).keys(), 0x30, 0x31, 0x40, 0x80, 0xc0];
    fc.assert(
      fc.property(fc.constantFrom(...codes), bytes(0, 48), (code, body) => {
        onlyTransportErrors(Uint8Array.of(code, ...body));
      }),
      { numRuns: 5000 },
    );
  });

  it("mutated valid payloads only throw TransportError", () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.nat(255),
        (frames, at, b) => {
          const w = new Writer();
          for (const f of frames) encodeFrame(w, f);
          const buf = w.finish().slice();
          buf[at % buf.length] = b;
          onlyTransportErrors(buf);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Validation rules
// ---------------------------------------------------------------------------------------------

describe("frame validation errors", () => {
  it("unknown frame types are FRAME_ENCODING_ERROR", () => {
    for (const t of [0x1f, 0x20, 0x2f, 0x32, 0x3f]) {
      expectError(t.toString(16).padStart(2, "0"), FRAME_ENCODING_ERROR, t, /unknown frame type/);
    }
    // 0x40 in two bytes is its minimal encoding, and unknown
    expectError("4040", FRAME_ENCODING_ERROR, 0x40, /unknown/);
    expectError("80 01 00 00", FRAME_ENCODING_ERROR, 0x10000, /unknown/);
    // 2^62-1: clamped in the error's frame type
    expectError("ffffffffffffffff", FRAME_ENCODING_ERROR, MAX_SAFE, /unknown/);
    // an unknown frame after a valid one
    expectError("01 01 21", FRAME_ENCODING_ERROR, 0x21);
  });

  it("frame types that are not minimally encoded are PROTOCOL_VIOLATION (RFC 9000 §12.4)", () => {
    expectError("4001", PROTOCOL_VIOLATION, 0x01, /not minimally encoded/); // PING in 2 bytes
    expectError("4000", PROTOCOL_VIOLATION, 0x00); // PADDING in 2 bytes
    expectError("80000006 00 00", PROTOCOL_VIOLATION, 0x06); // CRYPTO in 4 bytes
    expectError("c000000000000030 00", PROTOCOL_VIOLATION, 0x30); // DATAGRAM in 8 bytes
    expectError("4020", PROTOCOL_VIOLATION, 0x20); // unknown and non-minimal
  });

  it("truncated fields are FRAME_ENCODING_ERROR with the frame's type", () => {
    expectError("02 05 00", FRAME_ENCODING_ERROR, 0x02, /truncated/); // ACK without range count
    expectError("03 05 00 00 00 01 02", FRAME_ENCODING_ERROR, 0x03, /ECN-CE/); // ACK_ECN without CE
    expectError("02 05 00 05 00", FRAME_ENCODING_ERROR, 0x02); // 5 ranges announced, none there
    expectError("06 00 05 0102", FRAME_ENCODING_ERROR, 0x06, /CRYPTO data/);
    expectError("0a 04 05 6869", FRAME_ENCODING_ERROR, 0x0a, /STREAM data/);
    expectError("0e 04 80", FRAME_ENCODING_ERROR, 0x0e, /STREAM offset/);
    expectError("18 01 00 04 01020304 0001", FRAME_ENCODING_ERROR, 0x18, /reset token/);
    expectError("1a 01020304", FRAME_ENCODING_ERROR, 0x1a);
    expectError("1c 01 00 05 6869", FRAME_ENCODING_ERROR, 0x1c, /reason/);
    expectError("1d 40", FRAME_ENCODING_ERROR, 0x1d);
    expectError("31 05 01", FRAME_ENCODING_ERROR, 0x31);
    expectError("07", FRAME_ENCODING_ERROR, 0x07);
    expectError("10", FRAME_ENCODING_ERROR, 0x10);
  });

  it("ACK range arithmetic below zero is FRAME_ENCODING_ERROR (RFC 9000 §19.3.1)", () => {
    expectError("02 05 00 00 06", FRAME_ENCODING_ERROR, 0x02, /below/); // first range 6 > largest 5
    expectError("02 05 00 01 00 04 00", FRAME_ENCODING_ERROR, 0x02, /below/); // gap: 5 - 4 - 2 = -1
    expectError("03 0a 00 01 00 00 09 00 00 00", FRAME_ENCODING_ERROR, 0x03, /below/); // 8 - 9 = -1
    // A gap that needs a bigint can only go below zero when largest is a safe integer.
    expectError("02 05 00 01 00 ffffffffffffffff 00", FRAME_ENCODING_ERROR, 0x02, /below/);
    // A non-minimal 8-byte largest is still a safe integer: 16 - 17 < 0.
    expectError("02 c000000000000010 00 00 c000000000000011", FRAME_ENCODING_ERROR, 0x02, /below/);
    // Largest beyond 2^53-1: exact bigint arithmetic still catches it (2^62-1 - (2^62-1) - 2 < 0).
    expectError("02 ffffffffffffffff 00 01 00 ffffffffffffffff 00", FRAME_ENCODING_ERROR, 0x02, /below/);
  });

  it("ACK packet numbers beyond 2^53-1 are clamped after exact arithmetic", () => {
    // largest 2^62-1, first range 2^62-1 -> smallest 0
    expect(decodeFrames(fromHex("02 ffffffffffffffff 00 00 ffffffffffffffff"))).toEqual([
      { type: "ack", largest: MAX_SAFE, ackDelay: 0, ranges: [[0, MAX_SAFE]] },
    ]);
    // largest 2^62-1, first range 0, gap 2^62-1-2^20-2 -> [.., 2^20]
    const gap = (1n << 62n) - 1n - (1n << 20n) - 2n;
    const hex = `02 ffffffffffffffff 00 01 00 ${toHex(new Writer().varint(gap).finish())} 05`;
    expect(decodeFrames(fromHex(hex))).toEqual([
      {
        type: "ack",
        largest: MAX_SAFE,
        ackDelay: 0,
        ranges: [
          [MAX_SAFE, MAX_SAFE],
          [2 ** 20 - 5, 2 ** 20],
        ],
      },
    ]);
  });

  it("STREAM and CRYPTO data ending beyond 2^62-1 is FRAME_ENCODING_ERROR (§19.6, §19.8)", () => {
    // offset 2^62-1 with one byte of data
    expectError("0e 00 ffffffffffffffff 01 aa", FRAME_ENCODING_ERROR, 0x0e, /2\^62-1/);
    expectError("0c 00 ffffffffffffffff aa", FRAME_ENCODING_ERROR, 0x0c, /2\^62-1/);
    expectError("06 ffffffffffffffff 01 aa", FRAME_ENCODING_ERROR, 0x06, /2\^62-1/);
    // offset 2^62-2 with one byte ends exactly at 2^62-1: allowed, offset clamped
    expect(decodeFrames(fromHex("0e 00 fffffffffffffffe 01 aa"))).toEqual([
      { type: "stream", streamId: 0, offset: MAX_SAFE, data: fromHex("aa"), fin: false },
    ]);
    // offset 2^62-1 with no data is allowed too
    expect(decodeFrames(fromHex("06 ffffffffffffffff 00"))).toEqual([
      { type: "crypto", offset: MAX_SAFE, data: new Uint8Array(0) },
    ]);
  });

  it("MAX_STREAMS / STREAMS_BLOCKED above 2^60 are FRAME_ENCODING_ERROR (§19.11, §19.14)", () => {
    for (const t of [0x12, 0x13, 0x16, 0x17]) {
      expectError(`${t.toString(16)} d000000000000001`, FRAME_ENCODING_ERROR, t, /2\^60/);
      expect(decodeFrames(fromHex(`${t.toString(16)} d000000000000000`))[0]).toMatchObject({
        limit: MAX_SAFE,
      });
    }
  });

  it("NEW_CONNECTION_ID: length outside 1..20 or retire_prior_to > sequence (§19.15)", () => {
    const token = "00".repeat(16);
    expectError(`18 01 00 00 ${token}`, FRAME_ENCODING_ERROR, 0x18, /length 0/);
    expectError(`18 01 00 15 ${"ab".repeat(21)} ${token}`, FRAME_ENCODING_ERROR, 0x18, /length 21/);
    expectError(`18 01 02 04 01020304 ${token}`, FRAME_ENCODING_ERROR, 0x18, /retire_prior_to/);
    // bigint comparison: retire prior to 2^62-1 > sequence 2^62-2
    expectError(`18 fffffffffffffffe ffffffffffffffff 01 aa ${token}`, FRAME_ENCODING_ERROR, 0x18, /retire/);
    expect(decodeFrames(fromHex(`18 01 01 14 ${"ab".repeat(20)} ${token}`))[0]).toMatchObject({
      sequence: 1,
      retirePriorTo: 1,
    });
  });

  it("NEW_TOKEN with an empty token is FRAME_ENCODING_ERROR (§19.7)", () => {
    expectError("07 00", FRAME_ENCODING_ERROR, 0x07, /empty/);
  });

  it("a reason phrase that is not UTF-8 never throws", () => {
    fc.assert(
      fc.property(bytes(0, 40), (raw) => {
        const w = new Writer().u8(0x1d).varint(0).varint(raw.length).bytes(raw);
        const [f] = decodeFrames(w.finish());
        expect(f.type).toBe("connection_close");
      }),
    );
  });

  it("values above 2^53-1 are clamped", () => {
    expect(decodeFrames(fromHex("1d ffffffffffffffff 00"))[0]).toMatchObject({ errorCode: MAX_SAFE });
    expect(decodeFrames(fromHex("19 c000000000000000"))[0]).toMatchObject({ sequence: 0 });
    expect(decodeFrames(fromHex("19 e000000000000000"))[0]).toMatchObject({ sequence: MAX_SAFE });
    expect(decodeFrames(fromHex("04 ffffffffffffffff ffffffffffffffff ffffffffffffffff"))).toEqual([
      { type: "reset_stream", streamId: MAX_SAFE, errorCode: MAX_SAFE, finalSize: MAX_SAFE },
    ]);
  });

  it("the iterator names the type of the frame being decoded", () => {
    const it = new FrameIterator(fromHex("01 10 05 06 00"));
    expect(it.nextFrame()).toEqual({ type: "ping" });
    expect(it.frameType).toBe(0x01);
    expect(it.nextFrame()).toEqual({ type: "max_data", limit: 5 });
    expect(it.frameType).toBe(0x10);
    expect(() => it.nextFrame()).toThrow(TransportError);
    expect(it.frameType).toBe(0x06);
  });

  it("the encoder rejects frames that cannot be sent", () => {
    const token = new Uint8Array(16);
    expect(() =>
      encode({
        type: "new_connection_id",
        sequence: 1,
        retirePriorTo: 0,
        connectionId: new Uint8Array(21),
        statelessResetToken: token,
      }),
    ).toThrow(RangeError);
    expect(() =>
      encode({
        type: "new_connection_id",
        sequence: 0,
        retirePriorTo: 1,
        connectionId: new Uint8Array(4),
        statelessResetToken: token,
      }),
    ).toThrow(RangeError);
    expect(() => encode({ type: "new_token", token: new Uint8Array(0) })).toThrow(RangeError);
    expect(() => encode({ type: "path_challenge", data: new Uint8Array(7) })).toThrow(RangeError);
    expect(() => encode({ type: "padding", length: 0 })).toThrow(RangeError);
    expect(() =>
      encode({
        type: "ack",
        largest: 10,
        ackDelay: 0,
        ranges: [
          [5, 10],
          [3, 4], // adjacent to the first range: should have been merged
        ],
      }),
    ).toThrow(RangeError);
    expect(() => encode({ type: "ack", largest: 10, ackDelay: 0, ranges: [[5, 9]] })).toThrow(RangeError);
    expect(() => encode({ type: "max_data", limit: -1 })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Frame table
// ---------------------------------------------------------------------------------------------

describe("frame table (RFC 9000 §12.4 Table 3)", () => {
  const all: PacketType[] = ["initial", "zero_rtt", "handshake", "one_rtt"];
  const allowed = (code: number): string => all.filter((p) => frameAllowedIn(code, p)).join(",");

  it("covers every known type code and nothing else", () => {
    const known = [...Array(0x1f).keys(), 0x30, 0x31];
    for (let code = 0; code < 0x100; code++) {
      expect(frameTypeInfo(code) !== undefined, `0x${code.toString(16)}`).toBe(known.includes(code));
    }
    expect(
      FRAME_TYPES.flatMap((r) => Array.from({ length: r.last - r.first + 1 }, (_, i) => r.first + i)),
    ).toEqual(known);
  });

  it("places frames in the packet types Table 3 allows", () => {
    expect(allowed(0x00)).toBe("initial,zero_rtt,handshake,one_rtt"); // PADDING
    expect(allowed(0x01)).toBe("initial,zero_rtt,handshake,one_rtt"); // PING
    expect(allowed(0x02)).toBe("initial,handshake,one_rtt"); // ACK
    expect(allowed(0x03)).toBe("initial,handshake,one_rtt"); // ACK_ECN
    expect(allowed(0x06)).toBe("initial,handshake,one_rtt"); // CRYPTO
    expect(allowed(0x07)).toBe("one_rtt"); // NEW_TOKEN
    for (let t = 0x08; t <= 0x0f; t++) expect(allowed(t)).toBe("zero_rtt,one_rtt"); // STREAM
    expect(allowed(0x18)).toBe("zero_rtt,one_rtt"); // NEW_CONNECTION_ID
    expect(allowed(0x19)).toBe("one_rtt"); // RETIRE_CONNECTION_ID (§12.5)
    expect(allowed(0x1b)).toBe("one_rtt"); // PATH_RESPONSE
    expect(allowed(0x1c)).toBe("initial,zero_rtt,handshake,one_rtt"); // CONNECTION_CLOSE (transport)
    expect(allowed(0x1d)).toBe("zero_rtt,one_rtt"); // CONNECTION_CLOSE (application)
    expect(allowed(0x1e)).toBe("one_rtt"); // HANDSHAKE_DONE
    expect(allowed(0x30)).toBe("zero_rtt,one_rtt"); // DATAGRAM
    expect(allowed(0x1f)).toBe(""); // unknown
    expect(allowed(-1)).toBe("");
    expect(allowed(1000)).toBe("");
  });

  it("accepts decoded frames as well as codes", () => {
    expect(
      frameAllowedIn(
        { type: "connection_close", application: true, errorCode: 0, frameType: 0, reason: "" },
        "initial",
      ),
    ).toBe(false);
    expect(
      frameAllowedIn(
        { type: "connection_close", application: false, errorCode: 0, frameType: 0, reason: "" },
        "handshake",
      ),
    ).toBe(true);
    expect(
      frameAllowedIn(
        { type: "stream", streamId: 0, offset: 0, data: new Uint8Array(), fin: false },
        "handshake",
      ),
    ).toBe(false);
  });

  it("knows which frames are ack-eliciting and in flight (RFC 9002 §2)", () => {
    const notEliciting = FRAME_TYPES.filter((r) => !r.ackEliciting).map((r) => r.name);
    expect(notEliciting).toEqual(["padding", "ack", "connection_close", "connection_close"]);
    expect(FRAME_TYPES.filter((r) => !r.inFlight).map((r) => r.name)).toEqual(["ack"]);
    expect(FRAME_TYPES.filter((r) => r.probing).map((r) => r.name)).toEqual([
      "padding",
      "new_connection_id",
      "path_challenge",
      "path_response",
    ]);
    expect(FRAME_TYPES.filter((r) => r.flowControlled).map((r) => r.name)).toEqual(["stream"]);
    fc.assert(
      fc.property(frameArb, (f) => {
        expect(isAckEliciting(f)).toBe(frameTypeInfo(frameTypeCode(f))!.ackEliciting);
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Packet-builder helpers
// ---------------------------------------------------------------------------------------------

describe("frame overhead and capacity", () => {
  it("overheads match the encoded sizes", () => {
    expect(streamFrameOverhead(0, 0, 10)).toBe(3); // type, id, length
    expect(streamFrameOverhead(4, 100, 10)).toBe(5); // + 2-byte offset
    expect(streamFrameOverhead(4, 100, 10, true)).toBe(4); // no length
    expect(cryptoFrameOverhead(0, 64)).toBe(4); // type, offset, 2-byte length
    fc.assert(
      fc.property(
        u62,
        smallU62,
        fc.integer({ min: 0, max: 300 }),
        fc.boolean(),
        (streamId, offset, n, last) => {
          const f: Frame = { type: "stream", streamId, offset, data: new Uint8Array(n), fin: false };
          expect(encode(f, last).length).toBe(streamFrameOverhead(streamId, offset, n, last) + n);
          const c: Frame = { type: "crypto", offset, data: new Uint8Array(n) };
          expect(encode(c).length).toBe(cryptoFrameOverhead(offset, n) + n);
        },
      ),
    );
  });

  it("capacity is the most data that fits exactly in the space left", () => {
    fc.assert(
      fc.property(
        u62,
        smallU62,
        fc.integer({ min: 0, max: 20000 }),
        fc.boolean(),
        (streamId, offset, space, last) => {
          const n = streamDataCapacity(streamId, offset, space, last);
          if (n < 0) {
            expect(streamFrameOverhead(streamId, offset, 0, last)).toBeGreaterThan(space);
          } else {
            expect(streamFrameOverhead(streamId, offset, n, last) + n).toBeLessThanOrEqual(space);
            expect(streamFrameOverhead(streamId, offset, n + 1, last) + n + 1).toBeGreaterThan(space);
          }
          const c = cryptoDataCapacity(offset, space);
          if (c < 0) {
            expect(cryptoFrameOverhead(offset, 0)).toBeGreaterThan(space);
          } else {
            expect(cryptoFrameOverhead(offset, c) + c).toBeLessThanOrEqual(space);
            expect(cryptoFrameOverhead(offset, c + 1) + c + 1).toBeGreaterThan(space);
          }
        },
      ),
      { numRuns: 2000 },
    );
    // The 63 -> 64 boundary: 66 bytes left hold 64 data bytes with a 2-byte length, not 65.
    expect(streamDataCapacity(0, 0, 68)).toBe(64);
    expect(streamDataCapacity(0, 0, 66)).toBe(63);
    expect(streamDataCapacity(0, 0, 65)).toBe(62);
    expect(streamDataCapacity(0, 0, 2)).toBe(-1);
    expect(streamDataCapacity(0, 0, 3)).toBe(0);
  });
});
