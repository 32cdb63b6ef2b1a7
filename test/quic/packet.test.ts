import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { SeededRng } from "../../src/crypto/random.js";
import {
  buildRetry,
  buildVersionNegotiation,
  decodePacketNumber,
  encodePacketNumberLength,
  type LongHeaderSpec,
  longHeaderLength,
  PacketDecodeError,
  type PacketHeader,
  parsePacketHeader,
  type ShortHeaderSpec,
  setLengthField,
  shortHeaderLength,
  splitCoalesced,
  writeLongHeader,
  writeShortHeader,
} from "../../src/quic/packet.js";
import { verifyRetryIntegrity } from "../../src/quic/protection.js";
import {
  isReservedVersion,
  isSupportedVersion,
  longPacketTypeBits,
  longPacketTypeFromBits,
  QUIC_V1,
  QUIC_V2,
  SUPPORTED_VERSIONS,
  UnsupportedVersionError,
  versionParams,
} from "../../src/quic/version.js";
import { fromHex, toHex } from "../../src/util/bytes.js";

/** Runs `f` and returns what it threw (or undefined). */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("versions (RFC 9000 §15, RFC 9369 §3)", () => {
  it("knows v1 and v2", () => {
    expect(QUIC_V1).toBe(1);
    expect(QUIC_V2).toBe(0x6b3343cf);
    expect(SUPPORTED_VERSIONS).toEqual([QUIC_V1, QUIC_V2]);
    expect(isSupportedVersion(QUIC_V1)).toBe(true);
    expect(isSupportedVersion(QUIC_V2)).toBe(true);
    expect(isSupportedVersion(0)).toBe(false);
    expect(isSupportedVersion(0x709a50c4)).toBe(false); // the v2 draft codepoint
  });

  it("recognises the 0x?a?a?a?a greasing pattern", () => {
    expect(isReservedVersion(0x0a0a0a0a)).toBe(true);
    expect(isReservedVersion(0x1a2a3a4a)).toBe(true);
    expect(isReservedVersion(0xfafafafa)).toBe(true);
    expect(isReservedVersion(0x0a0a0a0b)).toBe(false);
    expect(isReservedVersion(QUIC_V1)).toBe(false);
    expect(isReservedVersion(QUIC_V2)).toBe(false);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => {
        const reserved = [0, 1, 2, 3].every((i) => ((v >>> (8 * i)) & 0x0f) === 0x0a);
        expect(isReservedVersion(v)).toBe(reserved);
      }),
    );
  });

  it("permutes the long-header type bits in v2 (RFC 9369 §3.2)", () => {
    expect(versionParams(QUIC_V1).typeBits).toEqual({ initial: 0, "0rtt": 1, handshake: 2, retry: 3 });
    expect(versionParams(QUIC_V2).typeBits).toEqual({ initial: 1, "0rtt": 2, handshake: 3, retry: 0 });
    for (const v of SUPPORTED_VERSIONS) {
      for (const t of ["initial", "0rtt", "handshake", "retry"] as const) {
        expect(longPacketTypeFromBits(v, longPacketTypeBits(v, t))).toBe(t);
      }
    }
  });

  it("has the per-version labels and constants", () => {
    expect(versionParams(QUIC_V1).labels).toEqual({
      key: "quic key",
      iv: "quic iv",
      hp: "quic hp",
      ku: "quic ku",
    });
    expect(versionParams(QUIC_V2).labels).toEqual({
      key: "quicv2 key",
      iv: "quicv2 iv",
      hp: "quicv2 hp",
      ku: "quicv2 ku",
    });
    expect(toHex(versionParams(QUIC_V1).initialSalt)).toBe("38762cf7f55934b34d179ae6a4c80cadccbb7f0a");
    expect(toHex(versionParams(QUIC_V2).initialSalt)).toBe("0dede3def700a6db819381be6e269dcbf9bd2ed9");
    expect(toHex(versionParams(QUIC_V1).retryKey)).toBe("be0c690b9f66575a1d766b54e368c84e");
    expect(toHex(versionParams(QUIC_V1).retryNonce)).toBe("461599d35d632bf2239825bb");
    expect(toHex(versionParams(QUIC_V2).retryKey)).toBe("8fb4b01b56ac48e260fbcbcead7ccc92");
    expect(toHex(versionParams(QUIC_V2).retryNonce)).toBe("d86969bc2d7c6d9990efb04a");
  });

  it("derives the Retry key and nonce from the published secrets (RFC 9001 §5.8, RFC 9369 §3.3.3)", async () => {
    const { hkdfExpandLabel } = await import("../../src/tls/hkdf.js");
    const cases = [
      [QUIC_V1, "d9c9943e6101fd200021506bcc02814c73030f25c79d71ce876eca876e6fca8e"],
      [QUIC_V2, "c4dd2484d681aefa4ff4d69c2c20299984a765a5d3c31982f38fc74162155e9f"],
    ] as const;
    for (const [v, secret] of cases) {
      const p = versionParams(v);
      const s = fromHex(secret);
      const empty = new Uint8Array(0);
      expect(toHex(hkdfExpandLabel(nobleProvider, "sha256", s, p.labels.key, empty, 16))).toBe(
        toHex(p.retryKey),
      );
      expect(toHex(hkdfExpandLabel(nobleProvider, "sha256", s, p.labels.iv, empty, 12))).toBe(
        toHex(p.retryNonce),
      );
    }
  });

  it("throws UnsupportedVersionError for other versions", () => {
    expect(thrown(() => versionParams(0x0a0a0a0a))).toBeInstanceOf(UnsupportedVersionError);
    expect(thrown(() => versionParams(0))).toBeInstanceOf(UnsupportedVersionError);
  });
});

describe("packet numbers (RFC 9000 §17.1, Appendix A.2/A.3)", () => {
  it("chooses the encoded length as in Appendix A.2", () => {
    expect(encodePacketNumberLength(0xac5c02, 0xabe8b3)).toBe(2);
    expect(encodePacketNumberLength(0xace8fe, 0xabe8b3)).toBe(3);
  });

  it("handles no acknowledgment yet and the byte boundaries", () => {
    expect(encodePacketNumberLength(0)).toBe(1);
    expect(encodePacketNumberLength(0, -1)).toBe(1);
    expect(encodePacketNumberLength(127)).toBe(1); // 128 unacked, 2n = 256
    expect(encodePacketNumberLength(128)).toBe(2);
    expect(encodePacketNumberLength(1000 + 128, 1000)).toBe(1);
    expect(encodePacketNumberLength(1000 + 129, 1000)).toBe(2);
    expect(encodePacketNumberLength(2 ** 15 - 1)).toBe(2);
    expect(encodePacketNumberLength(2 ** 15)).toBe(3);
    expect(encodePacketNumberLength(2 ** 23)).toBe(4);
    expect(encodePacketNumberLength(2 ** 40)).toBe(4); // clamped
  });

  it("decodes the Appendix A.3 example", () => {
    expect(decodePacketNumber(0xa82f30ea, 0x9b32, 16)).toBe(0xa82f9b32);
  });

  it("decodes across window edges", () => {
    expect(decodePacketNumber(-1, 0, 8)).toBe(0);
    expect(decodePacketNumber(-1, 5, 8)).toBe(5);
    expect(decodePacketNumber(0xff, 0x00, 8)).toBe(0x100); // wraps forward
    expect(decodePacketNumber(0x100, 0xff, 8)).toBe(0xff); // a late packet just below
    expect(decodePacketNumber(0x17f, 0x00, 8)).toBe(0x200);
    expect(decodePacketNumber(2 ** 40 + 5, 3, 8)).toBe(2 ** 40 + 3);
    expect(decodePacketNumber(2 ** 40 - 2, 1, 8)).toBe(2 ** 40 + 1);
    // a late packet from the previous 32-bit window
    expect(decodePacketNumber(2 ** 45, 0xffff_fffe, 32)).toBe(2 ** 45 - 2);
  });

  it("round-trips: what the sender encodes, any receiver in the window decodes (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1, max: 2 ** 48 }),
        fc.integer({ min: 1, max: 2 ** 24 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (largestAcked, ahead, where) => {
          const pn = largestAcked + ahead;
          const len = encodePacketNumberLength(pn, largestAcked);
          // The receiver has processed at least largestAcked and at most pn - 1.
          const lo = Math.max(largestAcked, -1);
          const receiverLargest = lo + Math.floor(where * (pn - 1 - lo));
          const truncated = pn % 2 ** (8 * len);
          expect(decodePacketNumber(receiverLargest, truncated, 8 * len)).toBe(pn);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("decodes any truncation within half a window of the expected number (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 50 }),
        fc.constantFrom(8, 16, 24, 32),
        fc.integer({ min: 0, max: 2 ** 32 }),
        (largest, bits, off) => {
          const win = 2 ** bits;
          const pn = largest + 1 - win / 2 + 1 + (off % win);
          if (pn < 0) return;
          expect(decodePacketNumber(largest, pn % win, bits)).toBe(pn);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

const cid = (max = 20) => fc.uint8Array({ minLength: 0, maxLength: max });
const version = fc.constantFrom(QUIC_V1, QUIC_V2);
const pnLength = fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const);
const pn = fc.integer({ min: 0, max: 2 ** 40 });

const longSpec: fc.Arbitrary<LongHeaderSpec> = fc
  .record({
    type: fc.constantFrom("initial" as const, "0rtt" as const, "handshake" as const),
    version,
    dcid: cid(),
    scid: cid(),
    token: fc.uint8Array({ maxLength: 100 }),
    packetNumber: pn,
    pnLength,
  })
  .map((s) => (s.type === "initial" ? s : { ...s, token: undefined }));

/** Writes a long-header packet with `payloadLength` bytes after the header (tag included). */
function longPacket(spec: LongHeaderSpec, payloadLength: number): Uint8Array {
  const buf = new Uint8Array(longHeaderLength(spec) + payloadLength + 16);
  const layout = writeLongHeader(buf, 0, spec);
  for (let i = layout.payloadOffset; i < buf.length; i++) buf[i] = (i * 7) & 0xff;
  setLengthField(buf, layout, buf.length - 16);
  return buf;
}

describe("long headers (RFC 9000 §17.2)", () => {
  it("round-trip through write and parse for Initial, 0-RTT and Handshake (property)", () => {
    fc.assert(
      fc.property(longSpec, fc.integer({ min: 0, max: 2000 }), (spec, payloadLength) => {
        const buf = new Uint8Array(longHeaderLength(spec) + payloadLength + 16 + 3);
        const layout = writeLongHeader(buf, 3, spec);
        expect(layout.start).toBe(3);
        expect(layout.payloadOffset).toBe(3 + longHeaderLength(spec));
        expect(layout.pnOffset + layout.pnLength).toBe(layout.payloadOffset);
        const payloadEnd = layout.payloadOffset + payloadLength;
        setLengthField(buf, layout, payloadEnd);
        const h = parsePacketHeader(buf, 8, 3);
        expect(h.type).toBe(spec.type);
        if (h.type !== "initial" && h.type !== "0rtt" && h.type !== "handshake") return;
        expect(h.version).toBe(spec.version);
        expect(h.start).toBe(3);
        expect(toHex(h.dcid)).toBe(toHex(spec.dcid));
        expect(toHex(h.scid)).toBe(toHex(spec.scid));
        expect(toHex(h.token)).toBe(toHex(spec.token ?? new Uint8Array(0)));
        expect(h.pnOffset).toBe(layout.pnOffset);
        expect(h.length).toBe(spec.pnLength + payloadLength + 16);
        expect(h.packetLength).toBe(buf.length - 3);
        // unprotected first byte: form, fixed, type, reserved 0, pn length
        expect(h.firstByte).toBe(
          0xc0 | (longPacketTypeBits(spec.version, spec.type) << 4) | (spec.pnLength - 1),
        );
        let truncated = 0;
        for (let i = 0; i < spec.pnLength; i++) truncated = truncated * 256 + buf[h.pnOffset + i];
        expect(truncated).toBe(spec.packetNumber % 2 ** (8 * spec.pnLength));
      }),
      { numRuns: 500 },
    );
  });

  it("writes the Length field as a 2-byte varint and rejects values above 16383", () => {
    const spec: LongHeaderSpec = {
      type: "handshake",
      version: QUIC_V1,
      dcid: new Uint8Array(4),
      scid: new Uint8Array(4),
      packetNumber: 0,
      pnLength: 1,
    };
    const buf = new Uint8Array(20000);
    const layout = writeLongHeader(buf, 0, spec);
    setLengthField(buf, layout, layout.payloadOffset + 100);
    expect(buf[layout.lengthOffset]).toBe(0x40);
    expect(buf[layout.lengthOffset + 1]).toBe(117);
    expect(thrown(() => setLengthField(buf, layout, layout.pnOffset + 0x3fff - 16 + 1))).toBeInstanceOf(
      RangeError,
    );
  });

  it("rejects builder misuse with RangeError", () => {
    const base: LongHeaderSpec = {
      type: "handshake",
      version: QUIC_V1,
      dcid: new Uint8Array(21),
      scid: new Uint8Array(0),
      packetNumber: 0,
      pnLength: 1,
    };
    expect(thrown(() => writeLongHeader(new Uint8Array(100), 0, base))).toBeInstanceOf(RangeError);
    const ok = { ...base, dcid: new Uint8Array(8) };
    expect(thrown(() => writeLongHeader(new Uint8Array(10), 0, ok))).toBeInstanceOf(RangeError);
    expect(
      thrown(() => writeLongHeader(new Uint8Array(100), 0, { ...ok, token: new Uint8Array(1) })),
    ).toBeInstanceOf(RangeError);
    expect(thrown(() => writeLongHeader(new Uint8Array(100), 0, { ...ok, packetNumber: -1 }))).toBeInstanceOf(
      RangeError,
    );
    expect(
      thrown(() => writeLongHeader(new Uint8Array(100), 0, { ...ok, version: 0x0a0a0a0a })),
    ).toBeInstanceOf(UnsupportedVersionError);
  });

  it("drops (PacketDecodeError) a CID longer than 20 bytes in v1 and v2", () => {
    for (const v of SUPPORTED_VERSIONS) {
      for (const which of ["dcid", "scid"] as const) {
        const p = new Uint8Array(100);
        p[0] = 0xc0 | (longPacketTypeBits(v, "handshake") << 4);
        new DataView(p.buffer).setUint32(1, v);
        if (which === "dcid") p[5] = 21;
        else p[6] = 21; // after an empty DCID
        const err = thrown(() => parsePacketHeader(p, 0));
        expect(err).toBeInstanceOf(PacketDecodeError);
        expect((err as PacketDecodeError).code).toBe("ERR_QUIC_PACKET_DECODE");
      }
    }
  });

  it("drops a packet whose Length runs past the datagram", () => {
    const p = longPacket(
      {
        type: "handshake",
        version: QUIC_V1,
        dcid: new Uint8Array(8),
        scid: new Uint8Array(8),
        packetNumber: 1,
        pnLength: 2,
      },
      30,
    );
    expect(thrown(() => parsePacketHeader(p.subarray(0, p.length - 1), 0))).toBeInstanceOf(PacketDecodeError);
  });

  it("drops every truncation of a valid packet (PacketDecodeError, never RangeError)", () => {
    fc.assert(
      fc.property(longSpec, fc.integer({ min: 0, max: 50 }), (spec, payloadLength) => {
        const p = longPacket(spec, payloadLength);
        for (let n = 0; n < p.length; n++) {
          expect(thrown(() => parsePacketHeader(p.subarray(0, n), 0))).toBeInstanceOf(PacketDecodeError);
        }
      }),
      { numRuns: 100 },
    );
  });

  it("drops a long header with the fixed bit cleared unless grease_quic_bit is in use (RFC 9287)", () => {
    const p = longPacket(
      {
        type: "initial",
        version: QUIC_V1,
        dcid: new Uint8Array(8),
        scid: new Uint8Array(0),
        packetNumber: 0,
        pnLength: 1,
      },
      20,
    );
    p[0] &= ~0x40;
    expect(thrown(() => parsePacketHeader(p, 0))).toBeInstanceOf(PacketDecodeError);
    expect(parsePacketHeader(p, 0, 0, { allowFixedBitZero: true }).type).toBe("initial");
  });

  it("parses a long header of an unknown version with CIDs up to 255 bytes (RFC 8999 §5.1)", () => {
    const dcid = new Uint8Array(255).fill(0xd);
    const scid = new Uint8Array(200).fill(0x5);
    const p = new Uint8Array(1 + 4 + 1 + 255 + 1 + 200 + 30);
    p[0] = 0x80; // no fixed bit: not ours to judge
    new DataView(p.buffer).setUint32(1, 0x1a2a3a4a);
    p[5] = 255;
    p.set(dcid, 6);
    p[261] = 200;
    p.set(scid, 262);
    const h = parsePacketHeader(p, 0);
    expect(h.type).toBe("unsupported-version");
    if (h.type !== "unsupported-version") return;
    expect(h.version).toBe(0x1a2a3a4a);
    expect(toHex(h.dcid)).toBe(toHex(dcid));
    expect(toHex(h.scid)).toBe(toHex(scid));
    expect(h.packetLength).toBe(p.length);
  });
});

describe("short headers (RFC 9000 §17.3.1)", () => {
  it("round-trip through write and parse (property)", () => {
    fc.assert(
      fc.property(
        fc.record({
          dcid: cid(),
          packetNumber: pn,
          pnLength,
          keyPhase: fc.constantFrom(0 as const, 1 as const),
          spin: fc.boolean(),
        }),
        fc.integer({ min: 0, max: 300 }),
        (spec: ShortHeaderSpec, payloadLength) => {
          const buf = new Uint8Array(shortHeaderLength(spec) + payloadLength);
          const layout = writeShortHeader(buf, 0, spec);
          expect(layout.lengthOffset).toBe(-1);
          expect(layout.payloadOffset).toBe(shortHeaderLength(spec));
          const h = parsePacketHeader(buf, spec.dcid.length);
          expect(h.type).toBe("1rtt");
          if (h.type !== "1rtt") return;
          expect(toHex(h.dcid)).toBe(toHex(spec.dcid));
          expect(h.spin).toBe(spec.spin);
          expect(h.pnOffset).toBe(1 + spec.dcid.length);
          expect(h.packetLength).toBe(buf.length);
          expect(h.firstByte).toBe(
            0x40 | (spec.spin ? 0x20 : 0) | (spec.keyPhase << 2) | (spec.pnLength - 1),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("drops a short header shorter than the local CID or with the fixed bit cleared", () => {
    expect(thrown(() => parsePacketHeader(fromHex("41aabb"), 8))).toBeInstanceOf(PacketDecodeError);
    expect(thrown(() => parsePacketHeader(fromHex("01aabbccddeeff0011223344"), 8))).toBeInstanceOf(
      PacketDecodeError,
    );
    expect(
      parsePacketHeader(fromHex("01aabbccddeeff0011223344"), 8, 0, { allowFixedBitZero: true }).type,
    ).toBe("1rtt");
    expect(thrown(() => parsePacketHeader(new Uint8Array(0), 8))).toBeInstanceOf(PacketDecodeError);
  });
});

describe("Version Negotiation (RFC 9000 §17.2.1, RFC 8999 §6)", () => {
  it("round-trips, CIDs up to 255 bytes, 0x40 set", () => {
    fc.assert(
      fc.property(
        cid(255),
        cid(255),
        fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 10 }),
        fc.integer(),
        (dcid, scid, versions, seed) => {
          const p = buildVersionNegotiation(dcid, scid, versions, new SeededRng(seed));
          expect(p[0] & 0xc0).toBe(0xc0);
          const h = parsePacketHeader(p, 0);
          expect(h.type).toBe("version-negotiation");
          if (h.type !== "version-negotiation") return;
          expect(toHex(h.dcid)).toBe(toHex(dcid));
          expect(toHex(h.scid)).toBe(toHex(scid));
          expect(h.versions).toEqual(versions);
          expect(h.packetLength).toBe(p.length);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("writes the exact bytes", () => {
    const p = buildVersionNegotiation(fromHex("0102"), fromHex("0a0b0c"), [QUIC_V1, QUIC_V2, 0x1a2a3a4a]);
    expect(toHex(p)).toBe("c000000000020102030a0b0c000000016b3343cf1a2a3a4a");
  });

  it("drops a version list that is not a multiple of 4 bytes", () => {
    const p = buildVersionNegotiation(new Uint8Array(0), new Uint8Array(0), [QUIC_V1]);
    expect(thrown(() => parsePacketHeader(p.subarray(0, p.length - 1), 0))).toBeInstanceOf(PacketDecodeError);
  });
});

describe("Retry (RFC 9000 §17.2.5)", () => {
  it("round-trips through buildRetry and parse, and verifies (property)", () => {
    fc.assert(
      fc.property(
        version,
        cid(),
        cid(),
        cid(),
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        (v, dcid, scid, odcid, token) => {
          const p = buildRetry(nobleProvider, { version: v, dcid, scid, token, originalDcid: odcid });
          const h = parsePacketHeader(p, 0);
          expect(h.type).toBe("retry");
          if (h.type !== "retry") return;
          expect(h.version).toBe(v);
          expect(toHex(h.dcid)).toBe(toHex(dcid));
          expect(toHex(h.scid)).toBe(toHex(scid));
          expect(toHex(h.token)).toBe(toHex(token));
          expect(h.integrityTag).toHaveLength(16);
          expect(h.packetLength).toBe(p.length);
          expect(verifyRetryIntegrity(nobleProvider, v, odcid, p)).toBe(true);
          const other = v === QUIC_V1 ? QUIC_V2 : QUIC_V1;
          expect(verifyRetryIntegrity(nobleProvider, other, odcid, p)).toBe(false);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("refuses an empty token and drops a Retry shorter than its tag", () => {
    const spec = {
      version: QUIC_V1,
      dcid: new Uint8Array(0),
      scid: new Uint8Array(0),
      originalDcid: new Uint8Array(8),
    };
    expect(thrown(() => buildRetry(nobleProvider, { ...spec, token: new Uint8Array(0) }))).toBeInstanceOf(
      RangeError,
    );
    const p = buildRetry(nobleProvider, { ...spec, token: new Uint8Array(1) });
    // 7 header bytes + 1 token + 16 tag: drop two bytes and the tag cannot fit
    expect(thrown(() => parsePacketHeader(p.subarray(0, p.length - 2), 0))).toBeInstanceOf(PacketDecodeError);
    const h = parsePacketHeader(p.subarray(0, p.length - 1), 0);
    expect(h.type === "retry" && h.token.length).toBe(0); // parses; empty token is the connection's check
  });
});

describe("coalesced packets (RFC 9000 §12.2)", () => {
  const dcid = fromHex("0011223344556677");
  const initial = longPacket(
    {
      type: "initial",
      version: QUIC_V1,
      dcid,
      scid: fromHex("aa"),
      token: fromHex("beef"),
      packetNumber: 0,
      pnLength: 1,
    },
    40,
  );
  const handshake = longPacket(
    { type: "handshake", version: QUIC_V1, dcid, scid: fromHex("aa"), packetNumber: 0, pnLength: 2 },
    60,
  );
  const short = new Uint8Array(50);
  writeShortHeader(short, 0, { dcid, packetNumber: 3, pnLength: 1, keyPhase: 0 });

  it("walks Initial + Handshake + 1-RTT", () => {
    const d = new Uint8Array([...initial, ...handshake, ...short]);
    const { packets, dropped } = splitCoalesced(d, 8);
    expect(dropped).toEqual([]);
    expect(packets.map((p) => [p.type, p.start, p.packetLength])).toEqual([
      ["initial", 0, initial.length],
      ["handshake", initial.length, handshake.length],
      ["1rtt", initial.length + handshake.length, short.length],
    ]);
  });

  it("skips a packet with another DCID and keeps walking", () => {
    const other = longPacket(
      {
        type: "handshake",
        version: QUIC_V1,
        dcid: fromHex("ff"),
        scid: fromHex("aa"),
        packetNumber: 0,
        pnLength: 1,
      },
      20,
    );
    const d = new Uint8Array([...initial, ...other, ...handshake]);
    const { packets, dropped } = splitCoalesced(d, 8);
    expect(packets.map((p) => p.type)).toEqual(["initial", "handshake"]);
    expect(dropped).toHaveLength(1);
    expect(dropped[0].offset).toBe(initial.length);
    expect(dropped[0].length).toBe(other.length);
    expect(dropped[0].error).toBeInstanceOf(PacketDecodeError);
  });

  it("keeps the packets before a malformed tail and reports the tail", () => {
    const d = new Uint8Array([...initial, 0x00, 0x00, 0x00]);
    const { packets, dropped } = splitCoalesced(d, 8);
    expect(packets).toHaveLength(1);
    expect(dropped).toEqual([{ offset: initial.length, length: 3, error: expect.any(PacketDecodeError) }]);
  });

  it("never throws for random bytes; parsePacketHeader throws only PacketDecodeError (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 20 }), (d, localCid) => {
        const { packets, dropped } = splitCoalesced(d, localCid);
        let covered = 0;
        for (const p of packets as PacketHeader[]) covered += p.packetLength;
        for (const x of dropped) covered += x.length;
        expect(covered).toBe(d.length);
        for (const x of dropped) expect(x.error).toBeInstanceOf(PacketDecodeError);
        const err = thrown(() => parsePacketHeader(d, localCid));
        if (err !== undefined) expect(err).toBeInstanceOf(PacketDecodeError);
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws for random bytes behind a v1/v2 long-header prefix (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        version,
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 30 }),
        (first, v, rest, lengths) => {
          // Small CID and varint lengths make it past the CID checks more often.
          const d = new Uint8Array(5 + lengths.length + rest.length);
          d[0] = first | 0x80;
          new DataView(d.buffer).setUint32(1, v);
          d.set(
            lengths.map((x) => x % 24),
            5,
          );
          d.set(rest, 5 + lengths.length);
          const { packets, dropped } = splitCoalesced(d, 4);
          let covered = 0;
          for (const p of packets) covered += p.packetLength;
          for (const x of dropped) covered += x.length;
          expect(covered).toBe(d.length);
          const err = thrown(() => parsePacketHeader(d, 4));
          if (err !== undefined) expect(err).toBeInstanceOf(PacketDecodeError);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("never throws for mutated valid datagrams (property)", () => {
    const valid = new Uint8Array([...initial, ...handshake, ...short]);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(valid.length),
        (flips, cut) => {
          const d = valid.slice(0, Math.max(cut, 1));
          for (const [i, x] of flips) if (i < d.length) d[i] ^= x;
          const { packets, dropped } = splitCoalesced(d, 8);
          let covered = 0;
          for (const p of packets) covered += p.packetLength;
          for (const x of dropped) covered += x.length;
          expect(covered).toBe(d.length);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
