import { describe, expect, it } from "vitest";
import { SeededRng } from "../../src/crypto/random.js";
import { LocalCids, PeerCids } from "../../src/quic/cid.js";
import { TransportError, TransportErrorCode } from "../../src/quic/errors.js";

const token = (n: number) => new Uint8Array(16).fill(n);
const cid = (n: number) => new Uint8Array(8).fill(n);

describe("LocalCids", () => {
  it("issues up to the peer's limit (capped), with tokens, and reports routing changes", () => {
    const local = new LocalCids(8, new SeededRng(1), (c) => token(c[0]));
    local.initial(cid(0xaa));
    expect(local.wanted(4)).toBe(3);
    const a = local.issue();
    expect(a.seq).toBe(1);
    expect(a.resetToken).toEqual(token(a.cid[0]));
    expect(local.wanted(100)).toBe(6);
    const changes = local.drainChanges();
    expect(changes.added.map((e) => e.seq)).toEqual([0, 1]);
    expect(local.drainChanges().added).toEqual([]);
  });

  it("rejects retiring an unissued sequence or the CID in use (RFC 9000 §19.16)", () => {
    const local = new LocalCids(8, new SeededRng(2), () => token(1));
    local.initial(cid(1));
    const a = local.issue();
    expect(() => local.retire(5, cid(9))).toThrow(TransportError);
    expect(() => local.retire(1, a.cid)).toThrow(/carrying it/);
    local.retire(0, a.cid);
    expect(local.has(cid(1))).toBe(false);
    expect(local.drainChanges().removed.map((e) => e.seq)).toEqual([0]);
    local.retire(0, a.cid); // idempotent
  });
});

describe("PeerCids", () => {
  it("enforces active_connection_id_limit with CONNECTION_ID_LIMIT_ERROR", () => {
    const peer = new PeerCids(cid(0), 2);
    peer.onNewConnectionId(1, cid(1), token(1), 0);
    try {
      peer.onNewConnectionId(2, cid(2), token(2), 0);
      expect.unreachable();
    } catch (e) {
      expect((e as TransportError).errorCode).toBe(TransportErrorCode.CONNECTION_ID_LIMIT_ERROR);
    }
  });

  it("retires CIDs below retire_prior_to and switches the current one", () => {
    const peer = new PeerCids(cid(0), 4);
    peer.onNewConnectionId(1, cid(1), token(1), 0);
    peer.onNewConnectionId(2, cid(2), token(2), 2);
    expect(peer.drainRetirements().sort()).toEqual([0, 1]);
    expect(peer.current.seq).toBe(2);
    peer.onNewConnectionId(1, cid(1), token(1), 0); // late, already retired: retire again
    expect(peer.drainRetirements()).toEqual([1]);
  });

  it("treats a reused sequence with another CID as PROTOCOL_VIOLATION, an exact repeat as harmless", () => {
    const peer = new PeerCids(cid(0), 4);
    peer.onNewConnectionId(1, cid(1), token(1), 0);
    peer.onNewConnectionId(1, cid(1), token(1), 0);
    expect(() => peer.onNewConnectionId(1, cid(7), token(1), 0)).toThrow(/different CID/);
  });

  it("recognises a stateless reset by its trailing token (RFC 9000 §10.3.1)", () => {
    const peer = new PeerCids(cid(0), 4);
    peer.onNewConnectionId(1, cid(1), token(0x5a), 0);
    const reset = new Uint8Array(40).fill(0x41);
    reset.set(token(0x5a), 24);
    expect(peer.isStatelessReset(reset)).toBe(true);
    reset[39] ^= 1;
    expect(peer.isStatelessReset(reset)).toBe(false);
    expect(peer.isStatelessReset(new Uint8Array(20))).toBe(false);
  });

  it("rotates to a spare CID", () => {
    const peer = new PeerCids(cid(0), 4);
    expect(peer.rotate()).toBe(false);
    peer.onNewConnectionId(1, cid(1), token(1), 0);
    expect(peer.rotate()).toBe(true);
    expect(peer.current.seq).toBe(1);
    expect(peer.drainRetirements()).toEqual([0]);
  });
});
