import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { AeadAlgorithm, CryptoProvider, HashAlgorithm } from "../../src/crypto/provider.js";
import { SeededRng } from "../../src/crypto/random.js";
import { TransportError, TransportErrorCode } from "../../src/quic/errors.js";
import {
  encodePacketNumberLength,
  type LongHeaderSpec,
  longHeaderLength,
  type PacketLayout,
  type ProtectedHeader,
  parsePacketHeader,
  type ShortHeaderSpec,
  shortHeaderLength,
  splitCoalesced,
  writeLongHeader,
  writeShortHeader,
} from "../../src/quic/packet.js";
import {
  AEAD_TAG_LENGTH,
  decryptPayload,
  derivePacketKeyMaterial,
  derivePacketKeys,
  initialKeys,
  minPayloadLength,
  type PacketKeys,
  protect,
  removeHeaderProtection,
  retryIntegrityTag,
  unprotect,
  verifyRetryIntegrity,
} from "../../src/quic/protection.js";
import { QUIC_V1, QUIC_V2 } from "../../src/quic/version.js";
import { toHex } from "../../src/util/bytes.js";

const PROVIDERS: readonly CryptoProvider[] = [nobleProvider, nodeProvider];
const SUITES: readonly [AeadAlgorithm, HashAlgorithm][] = [
  ["aes-128-gcm", "sha256"],
  ["aes-256-gcm", "sha384"],
  ["chacha20-poly1305", "sha256"],
];

function secretFor(hash: HashAlgorithm, seed: number): Uint8Array {
  return new SeededRng(seed).fill(new Uint8Array(hash === "sha256" ? 32 : 48));
}

/** Writes a header and `payload`; returns the buffer (with room for padding and tag) and layout. */
function writePacket(
  header: { long: LongHeaderSpec } | { short: ShortHeaderSpec },
  payload: Uint8Array,
): { buf: Uint8Array; layout: PacketLayout } {
  const headerLength = "long" in header ? longHeaderLength(header.long) : shortHeaderLength(header.short);
  const buf = new Uint8Array(headerLength + Math.max(payload.length, 3) + AEAD_TAG_LENGTH);
  const layout =
    "long" in header ? writeLongHeader(buf, 0, header.long) : writeShortHeader(buf, 0, header.short);
  buf.set(payload, layout.payloadOffset);
  return { buf, layout };
}

function padded(payload: Uint8Array, pnLength: number): Uint8Array {
  const out = new Uint8Array(Math.max(payload.length, minPayloadLength(pnLength)));
  out.set(payload);
  return out;
}

describe("minPayloadLength (RFC 9001 §5.4.2)", () => {
  it("needs 4 bytes of packet number + payload before the 16-byte sample", () => {
    expect([1, 2, 3, 4].map(minPayloadLength)).toEqual([3, 2, 1, 0]);
  });
});

describe.each(PROVIDERS.map((p) => [p.name, p] as const))(
  "packet protection with the %s provider",
  (_, provider) => {
    describe.each(SUITES.map(([a, h]) => [a, h] as const))("%s / %s", (aead, hash) => {
      const version = aead === "aes-256-gcm" ? QUIC_V2 : QUIC_V1;
      const keys = derivePacketKeys(provider, version, aead, hash, secretFor(hash, 1));

      it("derives keys of the right sizes", () => {
        const m = derivePacketKeyMaterial(provider, version, aead, hash, secretFor(hash, 1));
        const keyLength = aead === "aes-128-gcm" ? 16 : 32;
        expect(m.key).toHaveLength(keyLength);
        expect(m.iv).toHaveLength(12);
        expect(m.hp).toHaveLength(keyLength);
        expect(toHex(keys.material.key)).toBe(toHex(m.key));
      });

      it("round-trips long-header packets of every type (property)", () => {
        fc.assert(
          fc.property(
            fc.constantFrom("initial" as const, "0rtt" as const, "handshake" as const),
            fc.uint8Array({ maxLength: 20 }),
            fc.uint8Array({ maxLength: 20 }),
            fc.integer({ min: 0, max: 2 ** 40 }),
            fc.integer({ min: 0, max: 2 ** 16 }),
            fc.uint8Array({ maxLength: 1200 }),
            (type, dcid, scid, largest, ahead, payload) => {
              const packetNumber = largest + ahead;
              const spec: LongHeaderSpec = {
                type,
                version,
                dcid,
                scid,
                token: type === "initial" ? scid : undefined,
                packetNumber,
                pnLength: 4,
              };
              const { buf, layout } = writePacket({ long: spec }, payload);
              const end = protect(keys, buf, layout, layout.payloadOffset + payload.length);
              const packet = buf.subarray(0, end);
              const h = parsePacketHeader(packet, 0) as ProtectedHeader;
              expect(h.type).toBe(type);
              expect(h.packetLength).toBe(end);
              const r = unprotect(keys, packet, h, largest);
              expect(r.status).toBe("ok");
              if (r.status !== "ok") return;
              expect(r.packetNumber).toBe(packetNumber);
              expect(toHex(r.payload)).toBe(toHex(padded(payload, 4)));
            },
          ),
          { numRuns: 60 },
        );
      });

      it("round-trips short-header packets with every packet number length and key phase (property)", () => {
        fc.assert(
          fc.property(
            fc.uint8Array({ maxLength: 20 }),
            fc.integer({ min: -1, max: 2 ** 40 }),
            fc.integer({ min: 1, max: 2 ** 20 }),
            fc.constantFrom(0 as const, 1 as const),
            fc.boolean(),
            fc.uint8Array({ maxLength: 300 }),
            fc.double({ min: 0, max: 1, noNaN: true }),
            (dcid, largestAcked, ahead, keyPhase, spin, payload, where) => {
              const packetNumber = largestAcked + ahead;
              const pnLength = encodePacketNumberLength(packetNumber, largestAcked);
              const spec: ShortHeaderSpec = { dcid, packetNumber, pnLength, keyPhase, spin };
              const { buf, layout } = writePacket({ short: spec }, payload);
              const end = protect(keys, buf, layout, layout.payloadOffset + payload.length);
              const packet = buf.subarray(0, end);
              const h = parsePacketHeader(packet, dcid.length) as ProtectedHeader;
              expect(h.type).toBe("1rtt");
              // The receiver's largest is anywhere between the peer's largest acked and pn - 1.
              const receiverLargest = largestAcked + Math.floor(where * (ahead - 1));
              const r = unprotect(keys, packet, h, receiverLargest);
              expect(r.status).toBe("ok");
              if (r.status !== "ok") return;
              expect(r.packetNumber).toBe(packetNumber);
              expect(r.pnLength).toBe(pnLength);
              expect(r.keyPhase).toBe(keyPhase);
              expect(r.reservedBitsSet).toBe(false);
              expect(toHex(r.payload)).toBe(toHex(padded(payload, pnLength)));
            },
          ),
          { numRuns: 60 },
        );
      });

      it("pads a too-short payload with PADDING so the sample exists", () => {
        for (const pnLength of [1, 2, 3, 4] as const) {
          const { buf, layout } = writePacket(
            { short: { dcid: new Uint8Array(0), packetNumber: 7, pnLength, keyPhase: 0 } },
            new Uint8Array(0),
          );
          buf.fill(0xee, layout.payloadOffset); // garbage that protect must overwrite with PADDING
          const end = protect(keys, buf, layout, layout.payloadOffset);
          expect(end - layout.pnOffset).toBe(4 + 16);
          const packet = buf.subarray(0, end);
          const r = unprotect(keys, packet, parsePacketHeader(packet, 0) as ProtectedHeader, 6);
          expect(r.status).toBe("ok");
          if (r.status === "ok") expect(toHex(r.payload)).toBe("00".repeat(minPayloadLength(pnLength)));
        }
      });

      it("drops a packet too short for the sample", () => {
        const { buf, layout } = writePacket(
          { short: { dcid: new Uint8Array(0), packetNumber: 7, pnLength: 1, keyPhase: 0 } },
          new Uint8Array(3),
        );
        const end = protect(keys, buf, layout, layout.payloadOffset + 3);
        const packet = buf.subarray(0, end - 1);
        expect(unprotect(keys, packet, parsePacketHeader(packet, 0) as ProtectedHeader, 6)).toEqual({
          status: "drop",
          reason: "too-short",
        });
      });

      it("drops any single-bit flip of a protected packet", () => {
        const { buf, layout } = writePacket(
          {
            long: {
              type: "handshake",
              version,
              dcid: new Uint8Array([1, 2, 3, 4]),
              scid: new Uint8Array([5, 6]),
              packetNumber: 300,
              pnLength: 2,
            },
          },
          new Uint8Array(40).fill(1),
        );
        const end = protect(keys, buf, layout, layout.payloadOffset + 40);
        const packet = buf.subarray(0, end);
        for (let i = 0; i < packet.length; i++) {
          for (let bit = 1; bit < 256; bit <<= 1) {
            const copy = packet.slice();
            copy[i] ^= bit;
            for (const h of splitCoalesced(copy, 0).packets) {
              if (h.type !== "handshake" && h.type !== "initial" && h.type !== "0rtt" && h.type !== "1rtt")
                continue;
              expect(unprotect(keys, copy, h, 299).status, `byte ${i} bit ${bit}`).toBe("drop");
            }
          }
        }
      });

      it("reports set reserved bits as PROTOCOL_VIOLATION only after authentication", () => {
        for (const form of ["long", "short"] as const) {
          for (const reserved of form === "long" ? [0x04, 0x08] : [0x08, 0x10]) {
            const header =
              form === "long"
                ? {
                    long: {
                      type: "handshake" as const,
                      version,
                      dcid: new Uint8Array(2),
                      scid: new Uint8Array(0),
                      packetNumber: 9,
                      pnLength: 1 as const,
                    },
                  }
                : {
                    short: {
                      dcid: new Uint8Array(2),
                      packetNumber: 9,
                      pnLength: 1 as const,
                      keyPhase: 0 as const,
                    },
                  };
            const { buf, layout } = writePacket(header, new Uint8Array([1, 0, 0]));
            buf[0] |= reserved;
            const end = protect(keys, buf, layout, layout.payloadOffset + 3);
            const packet = buf.subarray(0, end);
            const tampered = packet.slice();
            tampered[end - 1] ^= 1;
            const r = unprotect(keys, packet, parsePacketHeader(packet, 2) as ProtectedHeader, 8);
            expect(r.status).toBe("violation");
            if (r.status !== "violation") continue;
            expect(r.error).toBeInstanceOf(TransportError);
            expect(r.error.errorCode).toBe(TransportErrorCode.PROTOCOL_VIOLATION);
            expect(r.packetNumber).toBe(9);
            // A forged packet with reserved bits set is just dropped.
            expect(
              unprotect(keys, tampered, parsePacketHeader(tampered, 2) as ProtectedHeader, 8).status,
            ).toBe("drop");
          }
        }
      });

      it("updates keys (RFC 9001 §6): new AEAD key and IV, same header protection", () => {
        const next = keys.nextGeneration();
        expect(toHex(next.material.key)).not.toBe(toHex(keys.material.key));
        expect(toHex(next.material.iv)).not.toBe(toHex(keys.material.iv));
        expect(toHex(next.material.hp)).toBe(toHex(keys.material.hp));
        expect(next.hp).toBe(keys.hp);
        expect(toHex(next.nextGeneration().secret)).not.toBe(toHex(next.secret));

        const { buf, layout } = writePacket(
          { short: { dcid: new Uint8Array(4), packetNumber: 1000, pnLength: 2, keyPhase: 1 } },
          new Uint8Array([1, 2, 3, 4, 5]),
        );
        const end = protect(next, buf, layout, layout.payloadOffset + 5);
        const packet = buf.subarray(0, end);
        const h = parsePacketHeader(packet, 4) as ProtectedHeader;
        // The two-step path: header protection is the same in both phases, then keys by phase.
        const unmasked = removeHeaderProtection(keys.hp, packet, h, 999);
        expect(unmasked?.keyPhase).toBe(1);
        expect(unmasked?.packetNumber).toBe(1000);
        if (unmasked === undefined) return;
        expect(decryptPayload(keys, packet, h, unmasked)).toBeNull();
        expect(toHex(decryptPayload(next, packet, h, unmasked) ?? new Uint8Array(0))).toBe("0102030405");
      });
    });

    it("computes nonces for packet numbers above 2^32", () => {
      const keys = derivePacketKeys(provider, QUIC_V1, "aes-128-gcm", "sha256", secretFor("sha256", 2));
      for (const pn of [0, 1, 0xffffffff, 2 ** 32, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER]) {
        const expected = new Uint8Array(12);
        let x = BigInt(pn);
        for (let i = 11; i >= 0; i--) {
          expected[i] = keys.material.iv[i] ^ Number(x & 0xffn);
          x >>= 8n;
        }
        expect(toHex(keys.nonceFor(pn)), `pn ${pn}`).toBe(toHex(expected));
      }
    });

    it("interoperates with the other provider", () => {
      const other = provider === nobleProvider ? nodeProvider : nobleProvider;
      for (const [aead, hash] of SUITES) {
        const secret = secretFor(hash, 3);
        const mine = derivePacketKeys(provider, QUIC_V2, aead, hash, secret);
        const theirs = derivePacketKeys(other, QUIC_V2, aead, hash, secret);
        const { buf, layout } = writePacket(
          { short: { dcid: new Uint8Array(8), packetNumber: 42, pnLength: 1, keyPhase: 0 } },
          new Uint8Array(100).fill(7),
        );
        const end = protect(mine, buf, layout, layout.payloadOffset + 100);
        const packet = buf.subarray(0, end);
        const r = unprotect(theirs, packet, parsePacketHeader(packet, 8) as ProtectedHeader, 41);
        expect(r.status, aead).toBe("ok");
      }
    });

    it("never throws on random datagrams; every packet is dropped (property)", () => {
      const { client } = initialKeys(provider, QUIC_V1, new Uint8Array(8));
      const oneRtt = derivePacketKeys(
        provider,
        QUIC_V1,
        "chacha20-poly1305",
        "sha256",
        secretFor("sha256", 4),
      );
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (d, longPrefix) => {
          if (longPrefix && d.length >= 5) {
            d[0] |= 0xc0;
            new DataView(d.buffer, d.byteOffset).setUint32(1, QUIC_V1);
            if (d.length > 5) d[5] %= 21;
          }
          for (const h of splitCoalesced(d, 0).packets) {
            if (h.type === "1rtt") expect(unprotect(oneRtt, d, h, 100).status).toBe("drop");
            else if (h.type === "initial" || h.type === "0rtt" || h.type === "handshake")
              expect(unprotect(client, d, h, -1).status).toBe("drop");
          }
        }),
        { numRuns: 1000 },
      );
    });

    it("Retry integrity tags depend on the version, the ODCID and every byte", () => {
      const retry = new Uint8Array([0xf0, 0, 0, 0, 1, 0, 0, 1, 2, 3]);
      const odcid = new Uint8Array([9, 9, 9, 9]);
      const t1 = retryIntegrityTag(provider, QUIC_V1, odcid, retry);
      const t2 = retryIntegrityTag(provider, QUIC_V2, odcid, retry);
      expect(t1).toHaveLength(16);
      expect(toHex(t1)).not.toBe(toHex(t2));
      expect(verifyRetryIntegrity(provider, QUIC_V1, odcid, new Uint8Array([...retry, ...t1]))).toBe(true);
      expect(verifyRetryIntegrity(provider, QUIC_V1, odcid, new Uint8Array([...retry, ...t2]))).toBe(false);
      expect(
        verifyRetryIntegrity(provider, QUIC_V1, new Uint8Array(0), new Uint8Array([...retry, ...t1])),
      ).toBe(false);
      expect(verifyRetryIntegrity(provider, QUIC_V1, odcid, new Uint8Array(3))).toBe(false);
    });
  },
);

describe("protect misuse", () => {
  it("throws RangeError when the buffer has no room for the tag", () => {
    const keys: PacketKeys = derivePacketKeys(
      nobleProvider,
      QUIC_V1,
      "aes-128-gcm",
      "sha256",
      secretFor("sha256", 5),
    );
    const buf = new Uint8Array(10);
    const layout = writeShortHeader(buf, 0, {
      dcid: new Uint8Array(0),
      packetNumber: 0,
      pnLength: 1,
      keyPhase: 0,
    });
    expect(() => protect(keys, buf, layout, layout.payloadOffset + 3)).toThrow(RangeError);
  });
});
