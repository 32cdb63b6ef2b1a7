/**
 * Version Negotiation (RFC 9000 §6, §17.2.1): a server answers a first datagram of an unknown
 * version with the versions it speaks; a client gives up, with a reason naming the versions,
 * when the server does not speak its version, and ignores Version Negotiation otherwise.
 */
import { describe, expect, it } from "vitest";
import { SeededRng } from "../../../src/crypto/random.js";
import { TransportErrorCode } from "../../../src/quic/errors.js";
import { buildVersionNegotiation, parsePacketHeader } from "../../../src/quic/packet.js";
import { QUIC_V1, QUIC_V2 } from "../../../src/quic/version.js";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, provider } from "./helpers.js";

/** The client's first Initial, captured (and kept from the server). */
function firstInitial(p: Pair): Uint8Array {
  let captured: Uint8Array | undefined;
  p.net.filter = (d) => {
    if (d.from === "client" && d.index === 0) captured = d.data.slice();
    return d.from === "client" && d.index === 0;
  };
  p.run(() => captured !== undefined, 100);
  p.net.filter = undefined;
  return captured!;
}

function cids(datagram: Uint8Array) {
  const h = parsePacketHeader(datagram, 8);
  if (h.type !== "initial") throw new Error(`not an Initial: ${h.type}`);
  return { dcid: h.dcid.slice(), scid: h.scid.slice() };
}

describe("Version Negotiation", () => {
  it("server answers an unknown version with the versions it speaks, echoing the CIDs", () =>
    withSeed(101, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      const initial = firstInitial(p);
      const { dcid, scid } = cids(initial);
      const unknown = initial.slice();
      unknown.set([0x1a, 0x2a, 0x3a, 0x4a], 1); // a reserved (greasing) version, §15
      const t = p.net.now;
      p.server.receive(t, "client", unknown);
      const vn = p.server.pollTransmit(t);
      expect(vn?.to).toBe("client");
      const h = parsePacketHeader(vn!.data, 8);
      expect(h.type).toBe("version-negotiation");
      if (h.type !== "version-negotiation") return;
      expect(Buffer.from(h.dcid)).toEqual(Buffer.from(scid));
      expect(Buffer.from(h.scid)).toEqual(Buffer.from(dcid));
      expect(h.versions).toEqual([QUIC_V1, QUIC_V2]);
      expect(p.server.connections.size).toBe(0);
      // No answer to a datagram too small to be a first Initial (§6.1, §14.1).
      p.server.receive(t, "client", unknown.subarray(0, 1000));
      expect(p.server.pollTransmit(t)).toBeUndefined();

      // The client speaks v1, which the packet lists: it ignores it (§6.2) and carries on.
      p.client.receive(t, "server", vn!.data);
      expect(p.clientConn.isClosing).toBe(false);
      expect(p.handshake(p.net.now + 5_000)).toBe(true);
    }));

  it("client closes with a clear reason when the server offers only other versions", () =>
    withSeed(102, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      const { dcid, scid } = cids(firstInitial(p));
      const rng = new SeededRng(seed);
      // A server that speaks only v2 (and a greasing version).
      const vn = buildVersionNegotiation(scid, dcid, [0x0a0a0a0a, QUIC_V2], rng);
      p.client.receive(p.net.now, "server", vn);
      for (let e = p.clientConn.pollEvent(); e; e = p.clientConn.pollEvent()) p.clientEvents.push(e);
      expect(closedInfo(p.clientEvents)).toEqual({
        errorCode: TransportErrorCode.VERSION_NEGOTIATION_ERROR,
        application: false,
        reason: "server does not speak version 0x1; it offers 0x6b3343cf",
        initiator: "version-negotiation",
      });
      expect(p.clientEvents.at(-1)?.type).toBe("drained");
      expect(p.clientConn.isDrained).toBe(true);
      // Nothing more is sent: no CONNECTION_CLOSE in answer to Version Negotiation.
      expect(p.client.pollTransmit(p.net.now)).toBeUndefined();
    }));

  it("client reports when no version is in common, and ignores a VN with the wrong CIDs", () =>
    withSeed(103, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10 } });
      const { dcid, scid } = cids(firstInitial(p));
      // CIDs that do not echo ours: not an answer to our Initial (§6.2).
      const wrong = buildVersionNegotiation(scid, new Uint8Array(8).fill(7), [0xff00001d]);
      p.client.receive(p.net.now, "server", wrong);
      expect(p.clientConn.isClosing).toBe(false);
      const vn = buildVersionNegotiation(scid, dcid, [0xff00001d, 0x0a1a2a3a]);
      p.client.receive(p.net.now, "server", vn);
      expect(p.clientConn.closeReason).toEqual({
        errorCode: TransportErrorCode.VERSION_NEGOTIATION_ERROR,
        application: false,
        reason: "no QUIC version in common (server offers 0xff00001d, 0xa1a2a3a; we speak 0x1, 0x6b3343cf)",
        initiator: "version-negotiation",
      });
      expect(p.clientConn.isDrained).toBe(true);
    }));
});
