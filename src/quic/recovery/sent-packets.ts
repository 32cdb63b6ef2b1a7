/**
 * Sent packets awaiting acknowledgment in one packet number space, RFC 9002 Appendix A.1.
 *
 * Each record carries the connection's recovery tokens (`T`): what the packet carried that
 * matters if it is acknowledged or lost (a stream's byte range, a CRYPTO range, a MAX_DATA, the
 * largest number in an ACK frame...). Recovery never looks inside them; they go back to their
 * owners exactly once, with the packet that was acknowledged or declared lost (neqo's design).
 *
 * Packet numbers only grow (RFC 9000 §12.3), so records sit in an array in send order and are
 * found by binary search; removed records leave holes that are compacted lazily.
 */

/** One sent packet, RFC 9002 Appendix A.1.1, with its recovery tokens. */
export interface SentPacket<T> {
  /** packet_number. */
  readonly pn: number;
  /** time_sent (ms). */
  readonly timeSent: number;
  /** sent_bytes: the QUIC packet's size including header and AEAD tag, excluding UDP/IP. */
  readonly size: number;
  /** ack_eliciting: the packet holds a frame other than ACK, PADDING, CONNECTION_CLOSE. */
  readonly ackEliciting: boolean;
  /** in_flight: counts toward bytes_in_flight (ack-eliciting or PADDING, RFC 9002 §2). */
  readonly inFlight: boolean;
  /** What to hand back to the frames' owners when the packet is acknowledged or lost. */
  readonly tokens: T[];
}

/** The sent, not yet acknowledged or lost packets of one packet number space. */
export class SentPackets<T> {
  private pns: number[] = [];
  private entries: Array<SentPacket<T> | undefined> = [];
  private head = 0;
  private live = 0;
  private ackElicitingInFlightCount = 0;
  private bytesInFlightCount = 0;
  private largestSentPn = -1;

  /** Number of packets held. */
  get size(): number {
    return this.live;
  }

  /** Number of held packets that are ack-eliciting and in flight. */
  get ackElicitingInFlight(): number {
    return this.ackElicitingInFlightCount;
  }

  /** Sum of the sizes of held in-flight packets (this space's share of bytes_in_flight). */
  get bytesInFlight(): number {
    return this.bytesInFlightCount;
  }

  /** The largest packet number ever added (-1 before any): numbers above it were never sent. */
  get largestSent(): number {
    return this.largestSentPn;
  }

  /** Adds a packet; its number must exceed every number added before (RFC 9000 §12.3). */
  push(packet: SentPacket<T>): void {
    if (!(packet.pn > this.largestSentPn))
      throw new Error(`packet number ${packet.pn} not above the largest sent ${this.largestSentPn}`);
    this.largestSentPn = packet.pn;
    this.pns.push(packet.pn);
    this.entries.push(packet);
    this.live++;
    if (packet.inFlight) {
      this.bytesInFlightCount += packet.size;
      if (packet.ackEliciting) this.ackElicitingInFlightCount++;
    }
  }

  /** The record of `pn`, if held. */
  get(pn: number): SentPacket<T> | undefined {
    const i = this.lowerBound(pn);
    return i < this.pns.length && this.pns[i] === pn ? this.entries[i] : undefined;
  }

  /** Removes and returns the held packets numbered in `[smallest, largest]`, ascending. */
  removeRange(smallest: number, largest: number): SentPacket<T>[] {
    const out: SentPacket<T>[] = [];
    for (let i = this.lowerBound(smallest); i < this.pns.length && this.pns[i] <= largest; i++) {
      const p = this.take(i);
      if (p !== undefined) out.push(p);
    }
    this.maybeCompact();
    return out;
  }

  /**
   * Visits the held packets numbered at most `upTo`, ascending; the visitor returns true to
   * remove the packet (it is then collected in the result, ascending).
   */
  removeWhere(upTo: number, remove: (p: SentPacket<T>) => boolean): SentPacket<T>[] {
    const out: SentPacket<T>[] = [];
    for (let i = this.head; i < this.pns.length && this.pns[i] <= upTo; i++) {
      const p = this.entries[i];
      if (p !== undefined && remove(p)) {
        this.take(i);
        out.push(p);
      }
    }
    this.maybeCompact();
    return out;
  }

  /** The held packets, ascending (a snapshot). */
  packets(): SentPacket<T>[] {
    const out: SentPacket<T>[] = [];
    for (let i = this.head; i < this.entries.length; i++) {
      const p = this.entries[i];
      if (p !== undefined) out.push(p);
    }
    return out;
  }

  /** Removes and returns every held packet, ascending. `largestSent` is kept. */
  clear(): SentPacket<T>[] {
    const out = this.packets();
    this.pns = [];
    this.entries = [];
    this.head = 0;
    this.live = 0;
    this.ackElicitingInFlightCount = 0;
    this.bytesInFlightCount = 0;
    return out;
  }

  private take(i: number): SentPacket<T> | undefined {
    const p = this.entries[i];
    if (p === undefined) return undefined;
    this.entries[i] = undefined;
    this.live--;
    if (p.inFlight) {
      this.bytesInFlightCount -= p.size;
      if (p.ackEliciting) this.ackElicitingInFlightCount--;
    }
    return p;
  }

  /** First index at or after `head` whose packet number is >= pn. */
  private lowerBound(pn: number): number {
    let lo = this.head;
    let hi = this.pns.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.pns[mid] < pn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Skips leading holes; rebuilds the arrays when holes outnumber live records (amortised O(1)). */
  private maybeCompact(): void {
    while (this.head < this.entries.length && this.entries[this.head] === undefined) this.head++;
    const slots = this.entries.length - this.head;
    if (this.head === this.entries.length) {
      this.pns = [];
      this.entries = [];
      this.head = 0;
    } else if ((this.head > 64 && this.head > this.live) || (slots > 64 && slots > 2 * this.live)) {
      const pns: number[] = [];
      const entries: Array<SentPacket<T> | undefined> = [];
      for (let i = this.head; i < this.entries.length; i++) {
        const p = this.entries[i];
        if (p !== undefined) {
          pns.push(p.pn);
          entries.push(p);
        }
      }
      this.pns = pns;
      this.entries = entries;
      this.head = 0;
    }
  }
}
