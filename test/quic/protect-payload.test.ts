/**
 * `protectPayload` (sealing a payload built in a scratch buffer straight into the datagram) gives
 * the same bytes as writing the payload into the datagram and calling `protect`, for long and
 * short headers, every packet number length, payloads shorter than the header-protection sample
 * (the padding fallback), packets at an offset inside a coalesced datagram, both providers and
 * every AEAD; and it refuses a buffer without room.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { AeadAlgorithm, HashAlgorithm } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import {
  type LongHeaderSpec,
  longHeaderLength,
  type ShortHeaderSpec,
  shortHeaderLength,
  writeLongHeader,
  writeShortHeader,
} from "../../src/quic/packet.js";
import {
  AEAD_TAG_LENGTH,
  derivePacketKeys,
  minPayloadLength,
  protect,
  protectPayload,
} from "../../src/quic/protection.js";
import { QUIC_V1 } from "../../src/quic/version.js";

const SUITES: [AeadAlgorithm, HashAlgorithm][] = [
  ["aes-128-gcm", "sha256"],
  ["aes-256-gcm", "sha384"],
  ["chacha20-poly1305", "sha256"],
];

describe.each([
  ["noble", nobleProvider],
  ["node", nodeProvider],
] as const)("protectPayload (%s)", (_name, provider) => {
  describe.each(SUITES)("%s", (aead, hash) => {
    const keys = derivePacketKeys(
      provider,
      QUIC_V1,
      aead,
      hash,
      new SeededRng(9).fill(new Uint8Array(hash === "sha256" ? 32 : 48)),
    );

    it("matches protect() byte for byte (property)", () => {
      fc.assert(
        fc.property(
          fc.boolean(),
          fc.uint8Array({ minLength: 0, maxLength: 20 }),
          fc.integer({ min: 0, max: 2 ** 32 }),
          fc.constantFrom(1, 2, 3, 4),
          fc.uint8Array({ maxLength: 1300 }),
          fc.nat(100),
          (long, dcid, packetNumber, pnLength, payload, at) => {
            const spec: LongHeaderSpec | ShortHeaderSpec = long
              ? { type: "handshake", version: QUIC_V1, dcid, scid: dcid, packetNumber, pnLength }
              : { dcid, packetNumber, pnLength, keyPhase: (packetNumber & 1) as 0 | 1 };
            const headerLength = long
              ? longHeaderLength(spec as LongHeaderSpec)
              : shortHeaderLength(spec as ShortHeaderSpec);
            const size =
              at + headerLength + Math.max(payload.length, minPayloadLength(pnLength)) + AEAD_TAG_LENGTH + 5;
            const write = (buf: Uint8Array) =>
              long
                ? writeLongHeader(buf, at, spec as LongHeaderSpec)
                : writeShortHeader(buf, at, spec as ShortHeaderSpec);

            const a = new Uint8Array(size).fill(0xee);
            const la = write(a);
            a.set(payload, la.payloadOffset);
            const endA = protect(keys, a, la, la.payloadOffset + payload.length);

            const b = new Uint8Array(size).fill(0xee);
            const lb = write(b);
            const endB = protectPayload(keys, b, lb, payload.slice());
            expect(endB).toBe(endA);
            expect(b).toEqual(a);
          },
        ),
        { numRuns: 50, seed: 0x9a7 },
      );
    });

    it("throws RangeError when the tag does not fit", () => {
      const spec: ShortHeaderSpec = { dcid: new Uint8Array(8), packetNumber: 7, pnLength: 2, keyPhase: 0 };
      const payload = new Uint8Array(100).fill(1);
      const exact = new Uint8Array(shortHeaderLength(spec) + 100 + AEAD_TAG_LENGTH);
      expect(protectPayload(keys, exact, writeShortHeader(exact, 0, spec), payload)).toBe(exact.length);
      const short = new Uint8Array(exact.length - 1);
      expect(() => protectPayload(keys, short, writeShortHeader(short, 0, spec), payload)).toThrow(
        RangeError,
      );
    });
  });
});
