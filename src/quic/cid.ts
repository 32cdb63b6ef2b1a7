/**
 * Connection IDs, RFC 9000 §5.1: the IDs we issue to the peer (`LocalCids`, which route the
 * peer's packets to us) and the IDs the peer issued to us (`PeerCids`, which we put in the
 * Destination Connection ID of what we send), with sequence numbers, retirement and stateless
 * reset tokens (§10.3).
 */
import type { Rng } from "../crypto/provider.js";
import { bytesEqual, constantTimeEqual } from "../util/bytes.js";
import { TransportError, TransportErrorCode } from "./errors.js";
import { IdSet } from "./streams/id-set.js";

/** A connection ID with its sequence number and (when known) stateless reset token. */
export interface IssuedCid {
  readonly seq: number;
  readonly cid: Uint8Array;
  /** 16-byte stateless reset token (absent for the handshake CIDs, §5.1.1). */
  readonly resetToken?: Uint8Array;
}

/** Upper bound of CIDs we keep issued at once, whatever the peer allows (memory bound). */
export const MAX_ISSUED_CIDS = 8;

/**
 * A CID with its reset token right after it in the same buffer. Only the CID has a view of its
 * own (it is used for every packet); the token's view is made when asked for (rarely: a
 * NEW_CONNECTION_ID frame, a possible stateless reset), as each view costs ~100 bytes and a
 * connection keeps up to 2 x 8 of these (bench/idle-scale.ts).
 */
class CidEntry implements IssuedCid {
  constructor(
    readonly seq: number,
    /** A view at the start of a buffer of its own: the CID, then the token when `hasToken`. */
    readonly cid: Uint8Array,
    private readonly hasToken: boolean,
  ) {}

  get resetToken(): Uint8Array | undefined {
    const c = this.cid;
    return this.hasToken ? new Uint8Array(c.buffer, c.byteOffset + c.length, 16) : undefined;
  }
}

/**
 * A CID and its reset token copied into one small buffer of their own. What we are handed is
 * often a view into a whole decrypted packet (frame decoding does not copy) or an HMAC
 * output; keeping such views for the life of the connection would pin those buffers too. One
 * allocation for both also halves the ArrayBuffers a CID costs (bench/idle-scale.ts).
 */
function compact(seq: number, cid: Uint8Array, resetToken?: Uint8Array): IssuedCid {
  const slab = new Uint8Array(cid.length + (resetToken ? 16 : 0));
  slab.set(cid);
  if (resetToken) slab.set(resetToken, cid.length);
  return new CidEntry(seq, resetToken ? slab.subarray(0, cid.length) : slab, resetToken !== undefined);
}

/** Connection IDs we issued. The endpoint routes every one of them to this connection. */
export class LocalCids {
  private readonly active = new Map<number, IssuedCid>();
  private nextSeq = 0;
  /** CIDs issued or retired since the last `drainChanges()` (for the endpoint's routing table). */
  private added: IssuedCid[] = [];
  private removed: IssuedCid[] = [];

  /**
   * @param cidLength length of the CIDs we issue (0 is allowed: then we issue none after the first).
   * @param resetTokenFor stateless reset token for a CID (RFC 9000 §10.3.2: derived from a static key).
   */
  constructor(
    readonly cidLength: number,
    private readonly rng: Rng,
    private readonly resetTokenFor: (cid: Uint8Array) => Uint8Array,
  ) {}

  /** Registers the CID chosen during the handshake as sequence 0 (§5.1.1). */
  initial(cid: Uint8Array): IssuedCid {
    const entry = compact(this.nextSeq++, cid);
    this.active.set(entry.seq, entry);
    this.added.push(entry);
    return entry;
  }

  /** A new random CID, its token, and the next sequence number: to send in NEW_CONNECTION_ID. */
  issue(): IssuedCid {
    const slab = new Uint8Array(this.cidLength + 16);
    const cid = this.rng.fill(slab.subarray(0, this.cidLength));
    slab.set(this.resetTokenFor(cid), this.cidLength);
    const entry: IssuedCid = new CidEntry(this.nextSeq++, cid, true);
    this.active.set(entry.seq, entry);
    this.added.push(entry);
    return entry;
  }

  /** How many more CIDs to issue to fill the peer's active_connection_id_limit (capped). */
  wanted(peerActiveLimit: number): number {
    if (this.cidLength === 0) return 0;
    return Math.max(0, Math.min(peerActiveLimit, MAX_ISSUED_CIDS) - this.active.size);
  }

  /**
   * The peer retired `seq` (RETIRE_CONNECTION_ID, §19.16). A sequence never issued, or the CID
   * the carrying packet was sent to, is a PROTOCOL_VIOLATION.
   */
  retire(seq: number, packetDcid: Uint8Array): void {
    if (seq >= this.nextSeq) {
      throw new TransportError(
        TransportErrorCode.PROTOCOL_VIOLATION,
        `RETIRE_CONNECTION_ID for sequence ${seq}, never issued`,
        0x19,
      );
    }
    const entry = this.active.get(seq);
    if (!entry) return; // already retired: idempotent
    if (bytesEqual(entry.cid, packetDcid)) {
      throw new TransportError(
        TransportErrorCode.PROTOCOL_VIOLATION,
        "RETIRE_CONNECTION_ID retires the CID of the packet carrying it",
        0x19,
      );
    }
    this.active.delete(seq);
    this.removed.push(entry);
  }

  /** True if `cid` is one of ours and active. */
  has(cid: Uint8Array): boolean {
    for (const e of this.active.values()) if (bytesEqual(e.cid, cid)) return true;
    return false;
  }

  /** All active CIDs. */
  all(): IssuedCid[] {
    return [...this.active.values()];
  }

  /** CIDs added and removed since the last call: the endpoint updates its routing table. */
  drainChanges(): { added: IssuedCid[]; removed: IssuedCid[] } {
    const out = { added: this.added, removed: this.removed };
    this.added = [];
    this.removed = [];
    return out;
  }
}

/** Connection IDs the peer issued to us (RFC 9000 §5.1.1, §19.15). */
export class PeerCids {
  private readonly active = new Map<number, IssuedCid>();
  private currentSeq = 0;
  private retirePriorTo = 0;
  /** Sequence numbers we must announce in RETIRE_CONNECTION_ID. */
  private readonly toRetire: number[] = [];
  /**
   * Sequence numbers we retired (§5.1.2): all below `retiredBelow`, plus `retiredAbove`. A late,
   * duplicated or retransmitted NEW_CONNECTION_ID for one of them must not make it active again
   * (it would also count against our active_connection_id_limit, §5.1.1).
   */
  private retiredBelow = 0;
  private readonly retiredAbove = new IdSet();

  /** @param activeLimit the active_connection_id_limit we advertised. */
  constructor(
    initialCid: Uint8Array,
    private readonly activeLimit: number,
  ) {
    this.active.set(0, compact(0, initialCid));
  }

  /** The CID to use as Destination Connection ID now. */
  get current(): IssuedCid {
    return this.active.get(this.currentSeq)!;
  }

  /** Replaces sequence 0 (the server's SCID from its first Initial, or after Retry, §7.2). */
  replaceInitial(cid: Uint8Array): void {
    const e = this.active.get(0);
    if (e) this.active.set(0, compact(0, cid, e.resetToken));
  }

  /** Sets the stateless reset token of sequence 0 (server's transport parameter, §18.2). */
  setInitialResetToken(token: Uint8Array): void {
    const e = this.active.get(0);
    if (e) this.active.set(0, compact(0, e.cid, token));
  }

  /** Handles NEW_CONNECTION_ID (§19.15). */
  onNewConnectionId(seq: number, cid: Uint8Array, resetToken: Uint8Array, retirePriorTo: number): void {
    const existing = this.active.get(seq);
    if (existing) {
      if (
        !bytesEqual(existing.cid, cid) ||
        (existing.resetToken && !bytesEqual(existing.resetToken, resetToken))
      ) {
        throw new TransportError(
          TransportErrorCode.PROTOCOL_VIOLATION,
          `NEW_CONNECTION_ID reuses sequence ${seq} with a different CID`,
          0x18,
        );
      }
      return;
    }
    if (seq < this.retirePriorTo) {
      // §19.15: a CID already retired by retire_prior_to is retired immediately.
      this.toRetire.push(seq);
      return;
    }
    if (this.isRetired(seq)) return; // our RETIRE_CONNECTION_ID for it is already under way
    for (const e of this.active.values()) {
      if (bytesEqual(e.cid, cid)) {
        throw new TransportError(
          TransportErrorCode.PROTOCOL_VIOLATION,
          "NEW_CONNECTION_ID repeats a CID under another sequence number",
          0x18,
        );
      }
    }
    this.active.set(seq, compact(seq, cid, resetToken));
    if (retirePriorTo > this.retirePriorTo) {
      this.retirePriorTo = retirePriorTo;
      for (const s of [...this.active.keys()]) {
        if (s < retirePriorTo) {
          this.active.delete(s);
          this.toRetire.push(s);
        }
      }
      this.markRetired(retirePriorTo - 1, retirePriorTo);
      if (!this.active.has(this.currentSeq)) this.currentSeq = Math.min(...this.active.keys());
    }
    // §5.1.1: more active CIDs than we allowed is CONNECTION_ID_LIMIT_ERROR.
    if (this.active.size > this.activeLimit) {
      throw new TransportError(
        TransportErrorCode.CONNECTION_ID_LIMIT_ERROR,
        `peer issued ${this.active.size} active connection IDs, limit ${this.activeLimit}`,
        0x18,
      );
    }
  }

  /** True when a CID other than the current one is active (unused: we only ever move forward). */
  get hasSpare(): boolean {
    return this.active.size > 1;
  }

  /** Switches to an unused CID (for migration / probing), retiring the current one. False if none spare. */
  rotate(): boolean {
    const spare = [...this.active.keys()].filter((s) => s !== this.currentSeq).sort((a, b) => a - b)[0];
    if (spare === undefined) return false;
    this.active.delete(this.currentSeq);
    this.toRetire.push(this.currentSeq);
    this.markRetired(this.currentSeq);
    this.currentSeq = spare;
    return true;
  }

  private isRetired(seq: number): boolean {
    return seq < this.retiredBelow || this.retiredAbove.has(seq);
  }

  /** Records `seq` as retired; `below` also retires every smaller sequence number. */
  private markRetired(seq: number, below = 0): void {
    if (below > this.retiredBelow) this.retiredBelow = below;
    this.retiredAbove.add(seq);
    for (const s of this.retiredAbove) if (s < this.retiredBelow) this.retiredAbove.delete(s);
    while (this.retiredAbove.delete(this.retiredBelow)) this.retiredBelow++;
  }

  /** Sequence numbers to send RETIRE_CONNECTION_ID for (drained). */
  drainRetirements(): number[] {
    return this.toRetire.splice(0);
  }

  /**
   * True if the last 16 bytes of a datagram match a stateless reset token of one of the
   * peer's active CIDs (RFC 9000 §10.3.1), compared in constant time.
   */
  isStatelessReset(datagram: Uint8Array): boolean {
    if (datagram.length < 21) return false;
    const tail = datagram.subarray(datagram.length - 16);
    let hit = false;
    for (const e of this.active.values())
      if (e.resetToken && constantTimeEqual(e.resetToken, tail)) hit = true;
    return hit;
  }
}
