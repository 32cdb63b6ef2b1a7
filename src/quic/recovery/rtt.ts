/**
 * Round-trip time estimation, RFC 9002 §5 (pseudocode in Appendix A.7 `UpdateRtt`).
 *
 * Times are milliseconds as plain numbers (fractions allowed); the caller passes `now`.
 * One estimator per path: RTT is a property of the path, not of a packet number space (§6).
 */

/** kInitialRtt, RFC 9002 §6.2.2: the RTT assumed before the first sample (ms). */
export const INITIAL_RTT = 333;

/** kGranularity, RFC 9002 §6.1.2: the timer granularity (ms). */
export const GRANULARITY = 1;

/**
 * RTT estimator (RFC 9002 §5): latest_rtt, min_rtt, smoothed_rtt and rttvar.
 *
 * @example
 * const rtt = new RttEstimator();
 * rtt.update(now, now - packet.timeSent, ackDelayMs, handshakeConfirmed ? peerMaxAckDelay : undefined);
 * const pto = rtt.pto(peerMaxAckDelay, space === PnSpace.ApplicationData);
 */
export class RttEstimator {
  /** The initial RTT this estimator (re)starts from (§6.2.2). */
  initialRtt: number;
  /** latest_rtt: the most recent sample, before ack-delay adjustment (§5.1); 0 before any. */
  latestRtt = 0;
  /** min_rtt: the minimum sample, never adjusted for ack delay (§5.2); 0 before any. */
  minRtt = 0;
  /** smoothed_rtt (§5.3). */
  smoothedRtt: number;
  /** rttvar (§5.3). */
  rttvar: number;
  /** first_rtt_sample: when the first sample was taken, or undefined before (Appendix A.3). */
  firstSampleTime: number | undefined = undefined;

  /**
   * @param initialRtt kInitialRtt in ms (§6.2.2: 333 unless a resumed connection remembers better).
   */
  constructor(initialRtt: number = INITIAL_RTT) {
    this.initialRtt = initialRtt;
    this.smoothedRtt = initialRtt;
    this.rttvar = initialRtt / 2;
  }

  /** Whether at least one RTT sample has been taken. */
  get hasSample(): boolean {
    return this.firstSampleTime !== undefined;
  }

  /**
   * Feeds one RTT sample (RFC 9002 §5.3, Appendix A.7 `UpdateRtt`).
   *
   * @param now the time the ACK was received (recorded as first_rtt_sample on the first sample)
   * @param latestRtt `now - timeSent` of the largest newly acknowledged packet (§5.1)
   * @param ackDelay the peer-reported ACK Delay, decoded to ms (RFC 9000 §19.3)
   * @param ackDelayCap the peer's max_ack_delay once the handshake is confirmed, else undefined:
   *   before confirmation the ack delay is used uncapped (§5.3 "SHOULD ignore max_ack_delay").
   */
  update(now: number, latestRtt: number, ackDelay: number, ackDelayCap?: number): void {
    this.latestRtt = latestRtt;
    if (this.firstSampleTime === undefined) {
      // §5.3: the first sample resets the estimator.
      this.minRtt = latestRtt;
      this.smoothedRtt = latestRtt;
      this.rttvar = latestRtt / 2;
      this.firstSampleTime = now;
      return;
    }
    // §5.2: min_rtt ignores acknowledgment delay.
    this.minRtt = Math.min(this.minRtt, latestRtt);
    // §5.3: MUST use the lesser of ack delay and max_ack_delay after handshake confirmation.
    if (ackDelayCap !== undefined) ackDelay = Math.min(ackDelay, ackDelayCap);
    // §5.3: MUST NOT subtract the ack delay if the result would be below min_rtt.
    const adjusted = latestRtt >= this.minRtt + ackDelay ? latestRtt - ackDelay : latestRtt;
    this.rttvar = (3 / 4) * this.rttvar + (1 / 4) * Math.abs(this.smoothedRtt - adjusted);
    this.smoothedRtt = (7 / 8) * this.smoothedRtt + (1 / 8) * adjusted;
  }

  /**
   * The base PTO period without backoff, RFC 9002 §6.2.1:
   * `smoothed_rtt + max(4 * rttvar, kGranularity) + max_ack_delay`, where max_ack_delay counts
   * only for the Application Data space (0 for Initial and Handshake).
   *
   * @param maxAckDelay the peer's max_ack_delay transport parameter (ms)
   * @param includeAckDelay whether to add it (true for Application Data and §7.6.1)
   */
  pto(maxAckDelay: number, includeAckDelay: boolean): number {
    return this.smoothedRtt + Math.max(4 * this.rttvar, GRANULARITY) + (includeAckDelay ? maxAckDelay : 0);
  }

  /**
   * RFC 9002 §5.2: after persistent congestion, min_rtt SHOULD be set to the newest sample, so
   * that a path whose RTT grew does not keep declaring persistent congestion.
   */
  onPersistentCongestion(): void {
    if (this.hasSample) this.minRtt = this.latestRtt;
  }

  /** Forgets every sample (new path, RFC 9000 §9.4; Retry, RFC 9002 §6.3). */
  reset(initialRtt: number = this.initialRtt): void {
    this.initialRtt = initialRtt;
    this.latestRtt = 0;
    this.minRtt = 0;
    this.smoothedRtt = initialRtt;
    this.rttvar = initialRtt / 2;
    this.firstSampleTime = undefined;
  }
}
