/**
 * Connection IDs after the handshake (RFC 9000 §5.1): each side issues NEW_CONNECTION_ID up to
 * the peer's active_connection_id_limit (capped by us), a rotating peer retires the old one
 * with RETIRE_CONNECTION_ID and gets a replacement, and packets keep being routed.
 */
import { describe, expect, it } from "vitest";
import { SeededRng } from "../../../src/crypto/random.js";
import { MAX_ISSUED_CIDS } from "../../../src/quic/cid.js";
import { withSeed } from "../../sim/network.js";
import { Pair } from "../harness.js";
import { closedInfo, drive, makeData, provider, restartServer, sha256, Transfer } from "./helpers.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("connection IDs", () => {
  it("issues NEW_CONNECTION_ID up to the peer's active_connection_id_limit", () =>
    withSeed(121, (seed) => {
      const p = new Pair(provider, {
        seed,
        link: { latency: 10 },
        clientTransport: { activeConnectionIdLimit: 4 },
        serverTransport: { activeConnectionIdLimit: 2 },
      });
      expect(p.handshake(10_000)).toBe(true);
      p.run(() => false, 500);
      const s = p.serverConn!;
      const c = p.clientConn;
      // The server fills the client's limit (4: its handshake CID and 3 more), the client the
      // server's (2).
      expect(s.localCids.all().map((e) => e.seq)).toEqual([0, 1, 2, 3]);
      expect(c.localCids.all().map((e) => e.seq)).toEqual([0, 1]);
      // Every issued CID but the handshake ones carries a stateless reset token (§10.3).
      for (const e of s.localCids.all().slice(1)) expect(e.resetToken?.length).toBe(16);
      // The client holds them: it can switch three times before running out (with the link cut,
      // no replacements arrive).
      p.net.filter = () => true;
      const used = new Set([hex(c.destinationCid)]);
      for (let i = 0; i < 3; i++) {
        expect(c.rotateDestinationCid()).toBe(true);
        used.add(hex(c.destinationCid));
      }
      expect(c.rotateDestinationCid()).toBe(false);
      expect(used).toEqual(new Set(s.localCids.all().map((e) => hex(e.cid))));
      expect(s.rotateDestinationCid()).toBe(true);
      expect(s.rotateDestinationCid()).toBe(false);
    }));

  it("caps what it issues when the peer allows more", () =>
    withSeed(122, (seed) => {
      const p = new Pair(provider, {
        seed,
        link: { latency: 10 },
        transport: { activeConnectionIdLimit: 50 },
      });
      expect(p.handshake(10_000)).toBe(true);
      p.run(() => false, 500);
      expect(p.serverConn!.localCids.all()).toHaveLength(MAX_ISSUED_CIDS);
      expect(p.clientConn.localCids.all()).toHaveLength(MAX_ISSUED_CIDS);
    }));

  it("retires and replaces CIDs as both sides rotate during a lossy transfer", () =>
    withSeed(123, (seed) => {
      const p = new Pair(provider, { seed, link: { latency: 10, loss: 0.03 } });
      expect(p.handshake(10_000)).toBe(true);
      const data = makeData(2 << 20, seed);
      const t = new Transfer(p, data);
      const rotations = { client: 0, server: 0 };
      const dcids = new Set<string>();
      let next = p.net.now + 50;
      const ok = drive(
        p,
        () => {
          let n = t.step();
          if (p.net.now >= next) {
            next = p.net.now + 50;
            if (p.clientConn.rotateDestinationCid()) {
              rotations.client++;
              dcids.add(hex(p.clientConn.destinationCid));
              n++;
            }
            if (p.serverConn!.rotateDestinationCid()) {
              rotations.server++;
              n++;
            }
          }
          return n;
        },
        () => t.fin,
        120_000,
      );
      expect(ok).toBe(true);
      expect(t.receivedHash()).toBe(sha256(data));
      expect(rotations.client).toBeGreaterThan(10);
      expect(rotations.server).toBeGreaterThan(10);
      expect(dcids.size).toBe(rotations.client);
      p.run(() => false, 1_000);
      // The retired ones were replaced: each side again holds the peer's limit (4), with fresh
      // sequence numbers, and the client's current DCID is one of them.
      const s = p.serverConn!;
      const seqs = s.localCids.all().map((e) => e.seq);
      expect(seqs).toHaveLength(4);
      expect(Math.min(...seqs)).toBeGreaterThanOrEqual(rotations.client);
      expect(s.localCids.has(p.clientConn.destinationCid)).toBe(true);
      expect(p.clientConn.localCids.all()).toHaveLength(4);
      expect(p.clientConn.localCids.has(s.destinationCid)).toBe(true);
      expect(closedInfo(p.clientEvents)).toBeUndefined();
      expect(closedInfo(p.serverEvents)).toBeUndefined();
    }));

  for (const seed0 of [4, 7, 39]) {
    it(`ignores a late NEW_CONNECTION_ID for a CID it retired (duplication and reordering, seed ${seed0})`, () =>
      withSeed(seed0, (seed) => {
        // Duplicated and delayed NEW_CONNECTION_ID frames (and retransmissions of ones whose
        // RETIRE_CONNECTION_ID is still on its way) arrive after the CID was rotated away from.
        const p = new Pair(provider, {
          seed,
          link: { latency: 10, jitter: 6, loss: 0.05, reorder: 0.1, reorderDelay: 20, duplicate: 0.05 },
        });
        expect(p.handshake(30_000)).toBe(true);
        const data = makeData(300_000, seed);
        const t = new Transfer(p, data);
        let next = p.net.now + 30;
        let rotations = 0;
        const ok = drive(
          p,
          () => {
            let n = t.step();
            if (p.net.now >= next) {
              next = p.net.now + 30;
              for (const conn of [p.clientConn, p.serverConn!]) {
                if (conn.rotateDestinationCid()) {
                  rotations++;
                  n++;
                }
              }
            }
            return n;
          },
          () => t.fin,
          120_000,
        );
        expect(closedInfo(p.clientEvents)).toBeUndefined();
        expect(closedInfo(p.serverEvents)).toBeUndefined();
        expect(ok).toBe(true);
        expect(t.receivedHash()).toBe(sha256(data));
        expect(rotations).toBeGreaterThan(20);
      }));
  }

  it("a stateless reset for a CID from NEW_CONNECTION_ID carries that CID's token", () =>
    withSeed(124, (seed) => {
      const staticKey = new SeededRng(seed).fill(new Uint8Array(32));
      const p = new Pair(provider, { seed, staticKey, link: { latency: 10 } });
      expect(p.handshake(10_000)).toBe(true);
      p.run(() => false, 500);
      const c = p.clientConn;
      expect(c.rotateDestinationCid()).toBe(true);
      p.touch(c);
      p.run(() => false, 500);
      restartServer(p, seed, staticKey);
      c.write(c.openStream(true)!, makeData(2_000, seed));
      p.touch(c);
      p.run(() => closedInfo(p.clientEvents) !== undefined, 2_000);
      expect(closedInfo(p.clientEvents)?.initiator).toBe("stateless-reset");
    }));
});
