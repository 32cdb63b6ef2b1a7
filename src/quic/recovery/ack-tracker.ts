/**
 * Receive-side acknowledgment state for one packet number space, RFC 9000 §13.2.
 *
 * It remembers which packet numbers arrived (duplicate detection, §12.3, and the ranges to
 * report, §13.2.3), decides when an ACK frame is due (§13.2.1, §13.2.2) and builds it (§19.3).
 * Sans-IO: `now` (ms) is always passed in; the connection arms a timer at `ackDeadline()`.
 *
 * Calling order, per received packet: `isDuplicate(pn)` (drop it if true) -> process the frames
 * -> `onPacketReceived(pn, now, ackEliciting, ecn)`. When sending: if `ackDeadline() <= now`, an
 * ACK must go out (alone if nothing else is sendable); otherwise, if `ackPending()`, piggyback
 * one on a packet being sent anyway. `buildAck(now, ourAckDelayExponent)` -> put the frame in a
 * packet -> `onAckSent()`, and record `frame.largest` in that packet's recovery token; when that
 * packet is acknowledged, call `onAckOfAckReceived(frame.largest)` (§13.2.4).
 */
import { RangeSet } from "./range-set.js";
import { PnSpace } from "./space.js";

/** Cumulative ECN counts of one packet number space, RFC 9000 §19.3.2. */
export interface EcnCounts {
  /** Packets received with ECT(0). */
  ect0: number;
  /** Packets received with ECT(1). */
  ect1: number;
  /** Packets received with ECN-CE. */
  ce: number;
}

/** The ECN codepoint a packet arrived with (IP header, RFC 3168), as reported by the socket layer. */
export type EcnCodepoint = "not-ect" | "ect0" | "ect1" | "ce";

/**
 * An ACK frame, structurally the same as frames.ts's ACK frame (RFC 9000 §19.3): `ackDelay` is
 * the raw encoded field (microseconds divided by 2^ack_delay_exponent), `ranges` descending and
 * non-overlapping, the first one ending at `largest`.
 */
export interface AckFrame {
  /** Frame discriminator; the codec picks type 0x02 or 0x03 from the presence of `ecn`. */
  type: "ack";
  /** Largest Acknowledged. */
  largest: number;
  /** ACK Delay, encoded: floor(delay_us / 2^ack_delay_exponent). */
  ackDelay: number;
  /** Acknowledged ranges `[smallest, largest]`, inclusive, largest first. */
  ranges: Array<[smallest: number, largest: number]>;
  /** ECN counts (frame type 0x03), when any ECN-marked packet was received in this space. */
  ecn?: EcnCounts;
}

/** Default max_ack_delay (ms), RFC 9000 §18.2. */
export const DEFAULT_MAX_ACK_DELAY = 25;
/** Ack-eliciting packets after which an ACK is sent at once, RFC 9000 §13.2.2 ("at least two"). */
export const DEFAULT_ACK_ELICITING_THRESHOLD = 2;
/** Default bound on remembered ranges (both for duplicate detection and for ACK frames). */
export const DEFAULT_MAX_ACK_RANGES = 32;

/** Options of an {@link AckTracker}. */
export interface AckTrackerOptions {
  /** The packet number space; Initial and Handshake packets are acknowledged immediately (§13.2.1). */
  space: PnSpace;
  /** Our own max_ack_delay (the value we advertise), in ms; default 25 (§18.2). */
  maxAckDelay?: number;
  /** Send an ACK once this many ack-eliciting packets are unacknowledged; default 2 (§13.2.2). */
  ackElicitingThreshold?: number;
  /** Maximum ranges remembered; older (lower) ranges are dropped beyond it (§13.2.3). Default 32. */
  maxRanges?: number;
}

/**
 * Received packet numbers and ACK scheduling for one packet number space (RFC 9000 §13.2).
 *
 * Two range sets are kept: `received`, for duplicate detection, and `toAck`, the ranges still
 * worth reporting. §13.2.4 prunes only the latter, so a reordered packet that arrives after its
 * neighbours' ACK was acknowledged is still accepted and acknowledged. When `received` exceeds
 * its bound, its lowest range is dropped and everything below it becomes a duplicate (§13.2.3:
 * "a minimum packet number that increases as ranges are discarded").
 *
 * @example
 * const acks = new AckTracker({ space: PnSpace.ApplicationData, maxAckDelay: 25 });
 * if (!acks.isDuplicate(pn)) { processFrames(); acks.onPacketReceived(pn, now, ackEliciting); }
 * if ((acks.ackDeadline() ?? Infinity) <= now) { const ack = acks.buildAck(now, 3); send(ack); acks.onAckSent(); }
 */
export class AckTracker {
  /** The packet number space tracked. */
  readonly space: PnSpace;
  private readonly maxAckDelay: number;
  private readonly threshold: number;
  private readonly maxRanges: number;
  private readonly received = new RangeSet();
  /** Every packet number below this is treated as a duplicate. */
  private floor = 0;
  private readonly toAck = new RangeSet();
  private largest: number | undefined = undefined;
  private largestTime = 0;
  private largestAckEliciting: number | undefined = undefined;
  private unackedEliciting = 0;
  private pending = false;
  private deadline: number | undefined = undefined;
  private readonly ecn: EcnCounts = { ect0: 0, ect1: 0, ce: 0 };
  private ecnSeen = false;

  constructor(options: AckTrackerOptions) {
    this.space = options.space;
    this.maxAckDelay = options.maxAckDelay ?? DEFAULT_MAX_ACK_DELAY;
    this.threshold = Math.max(1, options.ackElicitingThreshold ?? DEFAULT_ACK_ELICITING_THRESHOLD);
    this.maxRanges = Math.max(1, options.maxRanges ?? DEFAULT_MAX_ACK_RANGES);
  }

  /**
   * Whether `pn` was already received, or is below the floor of forgotten ranges
   * (RFC 9000 §12.3: duplicates MUST be discarded; §13.2.3).
   */
  isDuplicate(pn: number): boolean {
    return pn < this.floor || this.received.has(pn);
  }

  /** The largest packet number received, needed to decode packet numbers (RFC 9000 §17.1, A.3). */
  largestReceived(): number | undefined {
    return this.largest;
  }

  /**
   * Records a packet that was decrypted and fully processed (RFC 9000 §13.1: only then may it be
   * acknowledged). Returns false, changing nothing, for a duplicate.
   *
   * An ACK becomes due immediately (RFC 9000 §13.2.1, §13.2.2) when the packet is ack-eliciting
   * and: it is in the Initial or Handshake space; it is the threshold-th unacknowledged
   * ack-eliciting packet; its number is below the largest ack-eliciting one received (it fills a
   * gap or is reordered); there are missing packets between that one and it; or it is ECN-CE.
   * Otherwise an ack-eliciting packet makes an ACK due within max_ack_delay.
   */
  onPacketReceived(pn: number, now: number, ackEliciting: boolean, ecn: EcnCodepoint = "not-ect"): boolean {
    if (this.isDuplicate(pn)) return false;
    let immediate = this.space !== PnSpace.ApplicationData;
    if (ackEliciting) {
      const lae = this.largestAckEliciting;
      if (lae !== undefined) {
        if (pn < lae) {
          immediate = true; // §13.2.1: below another ack-eliciting packet already received
        } else if (pn > lae + 1) {
          // §13.2.1: missing packets between the largest ack-eliciting packet and this one.
          const below = this.received.rangeOf(pn - 1);
          if (below === undefined || below[0] > lae + 1) immediate = true;
        }
      }
      if (ecn === "ce") immediate = true; // §13.2.1: CE-marked packets SHOULD be acked immediately
    }

    this.received.insert(pn);
    while (this.received.count > this.maxRanges) {
      const dropped = this.received.shiftLowest()!;
      this.floor = Math.max(this.floor, dropped[1] + 1);
    }
    this.toAck.insert(pn);
    while (this.toAck.count > this.maxRanges) this.toAck.shiftLowest();

    if (this.largest === undefined || pn > this.largest) {
      this.largest = pn;
      this.largestTime = now;
    }
    if (ecn !== "not-ect") {
      this.ecn[ecn]++;
      this.ecnSeen = true;
    }
    this.pending = true;

    if (ackEliciting) {
      if (this.largestAckEliciting === undefined || pn > this.largestAckEliciting)
        this.largestAckEliciting = pn;
      this.unackedEliciting++;
      if (this.unackedEliciting >= this.threshold) immediate = true; // §13.2.2
      const due = immediate ? now : now + this.maxAckDelay;
      this.deadline = this.deadline === undefined ? due : Math.min(this.deadline, due);
    }
    return true;
  }

  /**
   * When an ACK frame must be sent (ms), or undefined if no ack-eliciting packet awaits one.
   * A value <= now means "send now". Only ack-eliciting packets set it, so an ACK is never sent
   * alone in response to non-ack-eliciting packets (RFC 9000 §13.2.1).
   */
  ackDeadline(): number | undefined {
    return this.deadline;
  }

  /**
   * Whether packets (ack-eliciting or not) arrived since the last ACK was sent, so an ACK is
   * worth piggybacking on a packet sent for another reason (RFC 9000 §13.2).
   */
  ackPending(): boolean {
    return this.pending;
  }

  /**
   * Builds the ACK frame to send now (RFC 9000 §19.3), or undefined when there is nothing to
   * acknowledge. Does not change state: call {@link onAckSent} once the frame is really sent.
   *
   * The ACK Delay is the time since the largest packet was received (§13.2.5), in microseconds,
   * divided by 2^ackDelayExponent (our ack_delay_exponent transport parameter, §18.2) and floored.
   * ECN counts are included once any ECN-marked packet was received in this space (§19.3.2).
   * Callers short of room may drop ranges from the end (the oldest), never the first (§13.2.3).
   */
  buildAck(now: number, ackDelayExponent: number): AckFrame | undefined {
    const ranges = this.toAck.descending();
    if (ranges.length === 0) return undefined;
    const largest = ranges[0][1];
    const delayMs = largest === this.largest ? Math.max(0, now - this.largestTime) : 0;
    const frame: AckFrame = {
      type: "ack",
      largest,
      ackDelay: Math.floor((delayMs * 1000) / 2 ** ackDelayExponent),
      ranges,
    };
    if (this.ecnSeen) frame.ecn = { ...this.ecn };
    return frame;
  }

  /** Records that an ACK frame from {@link buildAck} was sent: nothing is due or pending any more. */
  onAckSent(): void {
    this.pending = false;
    this.unackedEliciting = 0;
    this.deadline = undefined;
  }

  /**
   * RFC 9000 §13.2.4: a packet carrying one of our ACK frames was acknowledged, so the peer knows
   * everything up to that frame's Largest Acknowledged; stop reporting those ranges. The largest
   * received packet number stays reported in every ACK frame (§13.2.3, for ECN validation).
   */
  onAckOfAckReceived(largestAckedInThatAck: number): void {
    this.toAck.removeBelow(largestAckedInThatAck + 1);
    if (this.largest !== undefined && this.largest <= largestAckedInThatAck) this.toAck.insert(this.largest);
  }
}
