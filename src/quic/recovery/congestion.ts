/**
 * Congestion control, RFC 9002 §7 and Appendix B: a small interface the connection and the loss
 * detector talk to, and NewReno behind it (CUBIC can later implement the same interface).
 *
 * Sizes are bytes of QUIC packets (header and AEAD tag included, UDP/IP excluded); times are ms.
 */

/** What congestion control needs to know about a sent packet (a subset of `SentPacket`). */
export interface CcPacket {
  /** time_sent (ms). */
  readonly timeSent: number;
  /** sent_bytes. */
  readonly size: number;
  /** Whether the packet counts toward bytes_in_flight. */
  readonly inFlight: boolean;
}

/**
 * A sender-side congestion controller (RFC 9002 §7). The loss detector calls the `on*` hooks;
 * the connection asks `canSend` before sending an in-flight packet that is not a PTO probe
 * (§7.5: probes are never blocked) and reads `window()` for the pacer.
 */
export interface CongestionController {
  /** An in-flight packet was sent (Appendix B.4). Not called for ACK-only packets. */
  onPacketSent(now: number, bytes: number): void;
  /** Newly acknowledged packets, ascending (Appendix B.5). */
  onPacketsAcked(now: number, packets: readonly CcPacket[]): void;
  /** Packets newly declared lost: leave flight, one congestion event (Appendix B.8). */
  onPacketsLost(now: number, packets: readonly CcPacket[]): void;
  /** A congestion signal (loss or ECN-CE increase) about a packet sent at `sentTime` (Appendix B.6). */
  onCongestionEvent(now: number, sentTime: number): void;
  /** Persistent congestion was established (§7.6.2): collapse to the minimum window. */
  onPersistentCongestion(now: number): void;
  /** Packets of a discarded space leave flight without any signal (§6.4, Appendix B.9). */
  onPacketsDiscarded(packets: readonly CcPacket[]): void;
  /** congestion_window in bytes. */
  window(): number;
  /** bytes_in_flight. */
  bytesInFlight(): number;
  /** Bytes that may still be sent before the window is full (never negative). */
  availableWindow(): number;
  /** Whether an in-flight packet of `bytes` may be sent now (§7: not above the window). */
  canSend(bytes: number): boolean;
  /** Whether a packet sent at `sentTime` falls in the current recovery period (Appendix B.5). */
  inRecovery(sentTime: number): boolean;
  /** The path's max_datagram_size changed (PMTU; §7.2). */
  setMaxDatagramSize(size: number): void;
  /** Back to the initial state (Retry, RFC 9002 §6.3; new path, RFC 9000 §9.4). */
  reset(): void;
}

/** The smallest max_datagram_size, RFC 9000 §14.1. */
export const MIN_MAX_DATAGRAM_SIZE = 1200;
/** kLossReductionFactor, RFC 9002 §7.3.2 / Appendix B.1. */
export const LOSS_REDUCTION_FACTOR = 0.5;
/** kPersistentCongestionThreshold, RFC 9002 §7.6.1. */
export const PERSISTENT_CONGESTION_THRESHOLD = 3;

/** kInitialWindow, RFC 9002 §7.2: min(10 * mds, max(14720, 2 * mds)). */
export function initialWindow(maxDatagramSize: number): number {
  return Math.min(10 * maxDatagramSize, Math.max(14720, 2 * maxDatagramSize));
}

/** kMinimumWindow, RFC 9002 §7.2: 2 * max_datagram_size. */
export function minimumWindow(maxDatagramSize: number): number {
  return 2 * maxDatagramSize;
}

/** The state of a NewReno sender, RFC 9002 §7.3 (Figure 1). */
export type NewRenoState = "slow-start" | "recovery" | "congestion-avoidance";

/**
 * NewReno, RFC 9002 §7.3 and Appendix B.
 *
 * - Slow start: the window grows by each acknowledged packet's size (§7.3.1).
 * - A loss or ECN-CE increase starts a recovery period keyed by `now` (the time it started):
 *   ssthresh = window / 2, window = max(ssthresh, minimum); later signals about packets sent
 *   before that time are ignored; acknowledging a packet sent after it ends recovery (§7.3.2).
 *   One packet may be sent right after entering recovery even above the window (§7.3.2).
 * - Congestion avoidance: +1 max_datagram_size per window of acknowledged bytes, counted in
 *   integers (RFC 3465 §2.1, as Appendix B.5 suggests) (§7.3.3).
 * - Persistent congestion: the window collapses to the minimum and recovery ends (§7.6.2).
 * - Underutilisation (§7.8): the window does not grow when the sender did not use it since the
 *   previous acknowledgment. "Used" follows Linux's tcp_is_cwnd_limited (also neqo's): the peak
 *   bytes in flight reached the window, or half of it in slow start (which doubles it anyway), or
 *   came within 3 datagrams of it in congestion avoidance, so that pacing gaps (§7.8 second
 *   paragraph) do not count as application-limited.
 *
 * @example
 * const cc = new NewReno(1200);
 * if (cc.canSend(size)) { send(); cc.onPacketSent(now, size); }
 */
export class NewReno implements CongestionController {
  private mds: number;
  private cwnd: number;
  private ssthreshBytes = Number.POSITIVE_INFINITY;
  private recoveryStart: number | undefined = undefined;
  private recovering = false;
  private inFlight = 0;
  /** Bytes acknowledged in congestion avoidance since the last window increase (RFC 3465). */
  private caAcked = 0;
  /** Peak bytes in flight since the previous acknowledgment (§7.8). */
  private peakInFlight = 0;
  /** One packet may be sent above the window after entering recovery (§7.3.2). */
  private recoveryAllowance = false;

  /** @param maxDatagramSize the path's max_datagram_size, at least 1200 (RFC 9000 §14.1) */
  constructor(maxDatagramSize: number = MIN_MAX_DATAGRAM_SIZE) {
    this.mds = maxDatagramSize;
    this.cwnd = initialWindow(maxDatagramSize);
  }

  /** max_datagram_size in use. */
  get maxDatagramSize(): number {
    return this.mds;
  }

  /** ssthresh (Infinity until the first congestion event). */
  get ssthresh(): number {
    return this.ssthreshBytes;
  }

  /** The current state (§7.3). */
  get state(): NewRenoState {
    if (this.recovering) return "recovery";
    return this.cwnd < this.ssthreshBytes ? "slow-start" : "congestion-avoidance";
  }

  /** @inheritdoc */
  window(): number {
    return this.cwnd;
  }

  /** @inheritdoc */
  bytesInFlight(): number {
    return this.inFlight;
  }

  /** @inheritdoc */
  availableWindow(): number {
    return Math.max(0, this.cwnd - this.inFlight);
  }

  /** @inheritdoc */
  canSend(bytes: number): boolean {
    return this.recoveryAllowance || this.inFlight + bytes <= this.cwnd;
  }

  /** Appendix B.5 `InCongestionRecovery`. */
  inRecovery(sentTime: number): boolean {
    return this.recoveryStart !== undefined && sentTime <= this.recoveryStart;
  }

  /** Appendix B.4 `OnPacketSentCC`. */
  onPacketSent(_now: number, bytes: number): void {
    this.inFlight += bytes;
    if (this.inFlight > this.peakInFlight) this.peakInFlight = this.inFlight;
    this.recoveryAllowance = false;
  }

  /** Appendix B.5 `OnPacketsAcked`. */
  onPacketsAcked(_now: number, packets: readonly CcPacket[]): void {
    const limited = this.isUnderutilised();
    for (const p of packets) {
      if (!p.inFlight) continue;
      this.inFlight -= p.size;
      // §7.3.2: no growth in recovery; a packet sent after its start ends it.
      if (this.inRecovery(p.timeSent)) continue;
      this.recovering = false;
      if (limited) continue; // §7.8
      if (this.cwnd < this.ssthreshBytes) {
        this.cwnd += p.size; // §7.3.1 slow start
      } else {
        // §7.3.3 congestion avoidance: one datagram per window acknowledged.
        this.caAcked += p.size;
        if (this.caAcked >= this.cwnd) {
          this.caAcked -= this.cwnd;
          this.cwnd += this.mds;
        }
      }
    }
    this.peakInFlight = this.inFlight;
  }

  /** Appendix B.8 `OnPacketsLost`, less persistent congestion (decided by the loss detector). */
  onPacketsLost(now: number, packets: readonly CcPacket[]): void {
    let lastLossSent: number | undefined;
    for (const p of packets) {
      if (!p.inFlight) continue;
      this.inFlight -= p.size;
      if (lastLossSent === undefined || p.timeSent > lastLossSent) lastLossSent = p.timeSent;
    }
    if (lastLossSent !== undefined) this.onCongestionEvent(now, lastLossSent);
  }

  /** Appendix B.6 `OnCongestionEvent`. */
  onCongestionEvent(now: number, sentTime: number): void {
    if (this.inRecovery(sentTime)) return;
    this.recoveryStart = now;
    this.recovering = true;
    this.ssthreshBytes = Math.floor(this.cwnd * LOSS_REDUCTION_FACTOR);
    this.cwnd = Math.max(this.ssthreshBytes, minimumWindow(this.mds));
    this.caAcked = 0;
    this.recoveryAllowance = true; // "MaybeSendOnePacket()"
  }

  /** Appendix B.8: persistent congestion resets the window to kMinimumWindow. */
  onPersistentCongestion(_now: number): void {
    this.cwnd = minimumWindow(this.mds);
    this.recoveryStart = undefined;
    this.recovering = false;
    this.caAcked = 0;
    this.recoveryAllowance = false;
  }

  /** Appendix B.9 `RemoveFromBytesInFlight`. */
  onPacketsDiscarded(packets: readonly CcPacket[]): void {
    for (const p of packets) if (p.inFlight) this.inFlight -= p.size;
  }

  /** §7.2: the minimum window follows the datagram size; the window never drops below it. */
  setMaxDatagramSize(size: number): void {
    this.mds = size;
    this.cwnd = Math.max(this.cwnd, minimumWindow(size));
  }

  /** Back to the initial window, slow start, nothing in flight. */
  reset(): void {
    this.cwnd = initialWindow(this.mds);
    this.ssthreshBytes = Number.POSITIVE_INFINITY;
    this.recoveryStart = undefined;
    this.recovering = false;
    this.inFlight = 0;
    this.caAcked = 0;
    this.peakInFlight = 0;
    this.recoveryAllowance = false;
  }

  /** §7.8: whether the window went unused since the previous acknowledgment. */
  private isUnderutilised(): boolean {
    const peak = this.peakInFlight;
    if (peak >= this.cwnd) return false;
    if (this.cwnd < this.ssthreshBytes) return 2 * peak < this.cwnd;
    return peak + 3 * this.mds < this.cwnd;
  }
}
