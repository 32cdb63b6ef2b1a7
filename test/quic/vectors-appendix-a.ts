/**
 * The shared body of the "Sample Packet Protection" vector suites: RFC 9001 Appendix A (QUIC v1)
 * and RFC 9369 Appendix A (QUIC v2) have the same shape, so each suite file supplies the data
 * and this module checks every published value byte for byte, under every crypto provider.
 */
import { describe, expect, it } from "vitest";
import { nobleProvider } from "../../src/crypto/noble.js";
import { nodeProvider } from "../../src/crypto/node.js";
import type { CryptoProvider } from "../../src/crypto/provider.js";
import {
  buildRetry,
  type LongHeader,
  parsePacketHeader,
  type ShortHeader,
  setLengthField,
  splitCoalesced,
  writeLongHeader,
  writeShortHeader,
} from "../../src/quic/packet.js";
import {
  derivePacketKeyMaterial,
  derivePacketKeys,
  initialKeys,
  initialSecrets,
  nextGenerationSecret,
  type PacketKeys,
  protect,
  unprotect,
  verifyRetryIntegrity,
} from "../../src/quic/protection.js";
import { versionParams } from "../../src/quic/version.js";
import { fromHex, toHex } from "../../src/util/bytes.js";

/** Every crypto provider the vectors must pass under. */
export const PROVIDERS: readonly CryptoProvider[] = [nobleProvider, nodeProvider];

/** Key material as published: hex strings. */
export interface HexKeys {
  readonly secret: string;
  readonly key: string;
  readonly iv: string;
  readonly hp: string;
}

/** One Appendix A, as hex strings copied from the RFC text (whitespace is ignored). */
export interface AppendixA {
  /** "RFC 9001 Appendix A" etc., for test names. */
  readonly source: string;
  readonly version: number;
  /** A.1: HkdfLabel info values for "client in", "server in", key, iv, hp labels. */
  readonly infos: Readonly<Record<"client in" | "server in" | "key" | "iv" | "hp", string>>;
  /** A.1: initial_secret. */
  readonly initialSecret: string;
  readonly client: HexKeys;
  readonly server: HexKeys;
  /** A.2 */
  readonly clientInitial: {
    readonly cryptoFrame: string;
    readonly unprotectedHeader: string;
    readonly sample: string;
    readonly mask: string;
    readonly protectedHeader: string;
    readonly packet: string;
  };
  /** A.3 */
  readonly serverInitial: {
    readonly payload: string;
    readonly unprotectedHeader: string;
    readonly sample: string;
    readonly mask: string;
    readonly protectedHeader: string;
    readonly packet: string;
  };
  /** A.4 */
  readonly retry: string;
  /** A.5 */
  readonly chacha: HexKeys & {
    readonly ku: string;
    readonly nonce: string;
    readonly unprotectedHeader: string;
    readonly ciphertext: string;
    readonly sample: string;
    readonly mask: string;
    readonly protectedHeader: string;
    readonly packet: string;
  };
}

/** The 8-byte client-chosen DCID of every Appendix A example. */
const CLIENT_DCID = fromHex("8394c8f03e515708");
/** The server's connection ID in A.3 and A.4. */
const SERVER_CID = fromHex("f067a5502a4262b5");
/** A.5 packet number. */
const CHACHA_PN = 654360564;

/** A provider that records the `info` of every HKDF-Expand call. */
function recordingProvider(inner: CryptoProvider, infos: string[]): CryptoProvider {
  return {
    ...inner,
    hkdfExpand(alg, prk, info, length) {
      infos.push(toHex(info));
      return inner.hkdfExpand(alg, prk, info, length);
    },
  };
}

/** Flips one bit of each byte in turn and checks the packet never unprotects. */
function expectEveryFlipDropped(
  packet: Uint8Array,
  localCidLength: number,
  keys: PacketKeys,
  largestPn: number,
  bits: readonly number[],
): void {
  for (let i = 0; i < packet.length; i++) {
    for (const bit of bits) {
      const copy = packet.slice();
      copy[i] ^= bit;
      const { packets } = splitCoalesced(copy, localCidLength);
      for (const h of packets) {
        if (h.type !== "initial" && h.type !== "0rtt" && h.type !== "handshake" && h.type !== "1rtt")
          continue;
        const result = unprotect(keys, copy, h, largestPn);
        if (result.status !== "drop") throw new Error(`flipping bit ${bit} of byte ${i} was not detected`);
      }
    }
  }
}

/** Registers the whole suite for one Appendix A. */
export function describeAppendixA(v: AppendixA): void {
  describe.each(PROVIDERS.map((p) => [p.name, p] as const))(
    `${v.source} with the %s provider`,
    (_, provider) => {
      describe("A.1 keys", () => {
        it("derives initial_secret from the version's salt", () => {
          const initial = provider.hkdfExtract("sha256", versionParams(v.version).initialSalt, CLIENT_DCID);
          expect(toHex(initial)).toBe(toHex(fromHex(v.initialSecret)));
        });

        it("derives the client and server initial secrets", () => {
          const s = initialSecrets(v.version, CLIENT_DCID, provider);
          expect(toHex(s.client)).toBe(toHex(fromHex(v.client.secret)));
          expect(toHex(s.server)).toBe(toHex(fromHex(v.server.secret)));
        });

        for (const side of ["client", "server"] as const) {
          it(`derives the ${side} key, iv and hp`, () => {
            const m = derivePacketKeyMaterial(
              provider,
              v.version,
              "aes-128-gcm",
              "sha256",
              fromHex(v[side].secret),
            );
            expect(toHex(m.key)).toBe(toHex(fromHex(v[side].key)));
            expect(toHex(m.iv)).toBe(toHex(fromHex(v[side].iv)));
            expect(toHex(m.hp)).toBe(toHex(fromHex(v[side].hp)));
            const keys = initialKeys(provider, v.version, CLIENT_DCID)[side];
            expect(toHex(keys.material.key)).toBe(toHex(m.key));
            expect(toHex(keys.material.iv)).toBe(toHex(m.iv));
            expect(toHex(keys.material.hp)).toBe(toHex(m.hp));
          });
        }

        it("uses the published HkdfLabel values", () => {
          const infos: string[] = [];
          initialKeys(recordingProvider(provider, infos), v.version, CLIENT_DCID);
          // client in, server in, then key, iv, hp for the client and again for the server
          expect(infos).toEqual([
            v.infos["client in"],
            v.infos["server in"],
            v.infos.key,
            v.infos.iv,
            v.infos.hp,
            v.infos.key,
            v.infos.iv,
            v.infos.hp,
          ]);
        });
      });

      describe("A.2 client Initial", () => {
        const ci = v.clientInitial;
        const payload = new Uint8Array(1162);
        payload.set(fromHex(ci.cryptoFrame));

        it("builds the unprotected header", () => {
          const buf = new Uint8Array(1200);
          const layout = writeLongHeader(buf, 0, {
            type: "initial",
            version: v.version,
            dcid: CLIENT_DCID,
            scid: new Uint8Array(0),
            packetNumber: 2,
            pnLength: 4,
          });
          setLengthField(buf, layout, layout.payloadOffset + payload.length);
          expect(toHex(buf.subarray(0, layout.payloadOffset))).toBe(toHex(fromHex(ci.unprotectedHeader)));
        });

        it("computes the published header protection mask", () => {
          const keys = initialKeys(provider, v.version, CLIENT_DCID).client;
          expect(toHex(keys.hp.mask(fromHex(ci.sample)).subarray(0, 5))).toBe(ci.mask);
        });

        it("protects the padded CRYPTO frame into the published packet, byte for byte", () => {
          const keys = initialKeys(provider, v.version, CLIENT_DCID).client;
          const buf = new Uint8Array(1200);
          const layout = writeLongHeader(buf, 0, {
            type: "initial",
            version: v.version,
            dcid: CLIENT_DCID,
            scid: new Uint8Array(0),
            packetNumber: 2,
            pnLength: 4,
          });
          buf.set(payload, layout.payloadOffset);
          const end = protect(keys, buf, layout, layout.payloadOffset + payload.length);
          expect(end).toBe(1200);
          expect(toHex(buf.subarray(0, layout.payloadOffset))).toBe(toHex(fromHex(ci.protectedHeader)));
          expect(toHex(buf)).toBe(toHex(fromHex(ci.packet)));
        });

        it("unprotects the published packet into the payload", () => {
          const keys = initialKeys(provider, v.version, CLIENT_DCID).client;
          const packet = fromHex(ci.packet);
          const { packets, dropped } = splitCoalesced(packet, 8);
          expect(dropped).toEqual([]);
          expect(packets).toHaveLength(1);
          const h = packets[0] as LongHeader;
          expect(h.type).toBe("initial");
          expect(h.version).toBe(v.version);
          expect(toHex(h.dcid)).toBe(toHex(CLIENT_DCID));
          expect(h.scid).toHaveLength(0);
          expect(h.token).toHaveLength(0);
          expect(h.length).toBe(1182);
          expect(h.pnOffset).toBe(18);
          expect(h.packetLength).toBe(1200);
          const r = unprotect(keys, packet, h, -1);
          expect(r.status).toBe("ok");
          if (r.status !== "ok") return;
          expect(r.packetNumber).toBe(2);
          expect(r.pnLength).toBe(4);
          expect(toHex(r.payload)).toBe(toHex(payload));
          expect(toHex(packet.subarray(0, 22))).toBe(toHex(fromHex(ci.unprotectedHeader)));
        });

        it("drops the packet when any byte is flipped", () => {
          const keys = initialKeys(provider, v.version, CLIENT_DCID).client;
          expectEveryFlipDropped(fromHex(ci.packet), 8, keys, -1, [0x01, 0x80]);
        });
      });

      describe("A.3 server Initial", () => {
        const si = v.serverInitial;
        const spec = {
          type: "initial",
          version: v.version,
          dcid: new Uint8Array(0),
          scid: SERVER_CID,
          packetNumber: 1,
          pnLength: 2,
        } as const;

        it("builds the unprotected header", () => {
          const payload = fromHex(si.payload);
          const buf = new Uint8Array(200);
          const layout = writeLongHeader(buf, 0, spec);
          setLengthField(buf, layout, layout.payloadOffset + payload.length);
          expect(toHex(buf.subarray(0, layout.payloadOffset))).toBe(toHex(fromHex(si.unprotectedHeader)));
        });

        it("computes the published header protection mask", () => {
          const keys = initialKeys(provider, v.version, CLIENT_DCID).server;
          expect(toHex(keys.hp.mask(fromHex(si.sample)).subarray(0, 5))).toBe(si.mask);
        });

        it("protects the payload into the published packet, byte for byte", () => {
          const keys = initialKeys(provider, v.version, CLIENT_DCID).server;
          const payload = fromHex(si.payload);
          const buf = new Uint8Array(135);
          const layout = writeLongHeader(buf, 0, spec);
          buf.set(payload, layout.payloadOffset);
          const end = protect(keys, buf, layout, layout.payloadOffset + payload.length);
          expect(end).toBe(135);
          expect(toHex(buf.subarray(0, layout.payloadOffset))).toBe(toHex(fromHex(si.protectedHeader)));
          expect(toHex(buf)).toBe(toHex(fromHex(si.packet)));
        });

        it("unprotects the published packet into the payload", () => {
          const keys = initialKeys(provider, v.version, CLIENT_DCID).server;
          const packet = fromHex(si.packet);
          const h = parsePacketHeader(packet, 8) as LongHeader;
          expect(h.type).toBe("initial");
          expect(toHex(h.scid)).toBe(toHex(SERVER_CID));
          expect(h.packetLength).toBe(135);
          // The client has received nothing from the server yet: largest = -1.
          const r = unprotect(keys, packet, h, -1);
          expect(r.status).toBe("ok");
          if (r.status !== "ok") return;
          expect(r.packetNumber).toBe(1);
          expect(r.pnLength).toBe(2);
          expect(toHex(r.payload)).toBe(toHex(fromHex(si.payload)));
        });

        it("drops the packet when any bit is flipped", () => {
          const keys = initialKeys(provider, v.version, CLIENT_DCID).server;
          expectEveryFlipDropped(fromHex(si.packet), 0, keys, -1, [1, 2, 4, 8, 16, 32, 64, 128]);
        });
      });

      describe("A.4 Retry", () => {
        const retry = fromHex(v.retry);
        const spec = {
          version: v.version,
          dcid: new Uint8Array(0),
          scid: SERVER_CID,
          token: new TextEncoder().encode("token"),
          originalDcid: CLIENT_DCID,
          unusedBits: 0x0f,
        };

        it("builds the published Retry packet with its integrity tag", () => {
          expect(toHex(buildRetry(provider, spec))).toBe(toHex(retry));
        });

        it("parses it", () => {
          const h = parsePacketHeader(retry, 8);
          expect(h.type).toBe("retry");
          if (h.type !== "retry") return;
          expect(h.version).toBe(v.version);
          expect(h.dcid).toHaveLength(0);
          expect(toHex(h.scid)).toBe(toHex(SERVER_CID));
          expect(new TextDecoder().decode(h.token)).toBe("token");
          expect(toHex(h.integrityTag)).toBe(toHex(retry.subarray(retry.length - 16)));
        });

        it("verifies its tag against the original DCID", () => {
          expect(verifyRetryIntegrity(provider, v.version, CLIENT_DCID, retry)).toBe(true);
        });

        it("rejects it with a different original DCID", () => {
          const other = CLIENT_DCID.slice();
          other[7] ^= 1;
          expect(verifyRetryIntegrity(provider, v.version, other, retry)).toBe(false);
          expect(verifyRetryIntegrity(provider, v.version, CLIENT_DCID.subarray(0, 7), retry)).toBe(false);
        });

        it("rejects it when any byte is tampered with", () => {
          for (let i = 0; i < retry.length; i++) {
            const copy = retry.slice();
            copy[i] ^= 0x01;
            expect(verifyRetryIntegrity(provider, v.version, CLIENT_DCID, copy), `byte ${i}`).toBe(false);
          }
          expect(verifyRetryIntegrity(provider, v.version, CLIENT_DCID, retry.subarray(0, 15))).toBe(false);
        });
      });

      describe("A.5 ChaCha20-Poly1305 short header", () => {
        const c = v.chacha;
        const secret = fromHex(c.secret);
        const keys = derivePacketKeys(provider, v.version, "chacha20-poly1305", "sha256", secret);

        it("derives key, iv, hp and ku", () => {
          expect(toHex(keys.material.key)).toBe(toHex(fromHex(c.key)));
          expect(toHex(keys.material.iv)).toBe(toHex(fromHex(c.iv)));
          expect(toHex(keys.material.hp)).toBe(toHex(fromHex(c.hp)));
          expect(toHex(nextGenerationSecret(provider, v.version, "sha256", secret))).toBe(
            toHex(fromHex(c.ku)),
          );
          const next = keys.nextGeneration();
          expect(toHex(next.secret)).toBe(toHex(fromHex(c.ku)));
          expect(next.hp).toBe(keys.hp);
          expect(toHex(next.material.hp)).toBe(toHex(keys.material.hp));
        });

        it("computes the nonce and the mask", () => {
          expect(toHex(keys.nonceFor(CHACHA_PN))).toBe(c.nonce);
          expect(toHex(keys.hp.mask(fromHex(c.sample)).subarray(0, 5))).toBe(c.mask);
        });

        it("protects a PING into the published 21-byte packet", () => {
          const buf = new Uint8Array(21);
          const layout = writeShortHeader(buf, 0, {
            dcid: new Uint8Array(0),
            packetNumber: CHACHA_PN,
            pnLength: 3,
            keyPhase: 0,
          });
          expect(toHex(buf.subarray(0, 4))).toBe(c.unprotectedHeader);
          buf[layout.payloadOffset] = 0x01;
          const end = protect(keys, buf, layout, layout.payloadOffset + 1);
          expect(end).toBe(21);
          expect(toHex(buf.subarray(4))).toBe(c.ciphertext);
          expect(toHex(buf.subarray(0, 4))).toBe(c.protectedHeader);
          expect(toHex(buf)).toBe(c.packet);
        });

        it("unprotects the published packet: key phase 0, pn 654360564, PING", () => {
          const packet = fromHex(c.packet);
          const h = parsePacketHeader(packet, 0) as ShortHeader;
          expect(h.type).toBe("1rtt");
          expect(h.pnOffset).toBe(1);
          expect(h.spin).toBe(false);
          const r = unprotect(keys, packet, h, CHACHA_PN - 1);
          expect(r.status).toBe("ok");
          if (r.status !== "ok") return;
          expect(r.packetNumber).toBe(CHACHA_PN);
          expect(r.pnLength).toBe(3);
          expect(r.keyPhase).toBe(0);
          expect(toHex(r.payload)).toBe("01");
          expect(toHex(packet.subarray(0, 4))).toBe(c.unprotectedHeader);
        });

        it("drops the packet when any bit is flipped", () => {
          expectEveryFlipDropped(fromHex(c.packet), 0, keys, CHACHA_PN - 1, [1, 2, 4, 8, 16, 32, 64, 128]);
        });
      });
    },
  );
}
