/**
 * Pacing, RFC 9002 §7.7: a token bucket that fills at `N * congestion_window / smoothed_rtt`
 * (N = 1.25) and holds at most one burst (the initial window — 10 datagrams of up to 1472 bytes,
 * fewer of larger ones — or the congestion window if smaller, never less than one datagram).
 * Deterministic: time only comes in as `now`.
 *
 * Pace in-flight packets only: packets carrying only ACK frames SHOULD NOT be paced (§7.7), and
 * PTO probes are not held back. The connection asks `timeUntilSend(now, size, cwnd, srtt)`;
 * 0 means send now, otherwise it arms a timer for that many ms; after sending, `onSend(...)`.
 */

import { initialWindow } from "./congestion.js";

/** The pacing gain N of RFC 9002 §7.7 ("small, but at least 1 (for example, 1.25)"). */
export const PACING_GAIN = 1.25;
/** Largest burst in datagrams, however fast the path (quinn's MAX_BURST_SIZE). */
export const MAX_BURST_PACKETS = 256;
/**
 * Timer granularity the bucket must cover (ms). A runtime's timers (Node's setTimeout) cannot
 * wake up more often than about once per millisecond, so a bucket smaller than what the rate adds
 * in that time would cap the rate at one bucket per timer tick: on a 1 ms RTT path, 10 packets
 * per ms is 14 MB/s whatever the window. The burst grows to cover it (as quinn does), capped.
 */
export const TIMER_GRANULARITY_MS = 2;
/** Shortfalls below this many bytes are floating-point noise, not a reason to wait. */
const EPSILON_BYTES = 1e-6;

/**
 * A token-bucket pacer (RFC 9002 §7.7).
 *
 * @example
 * const wait = pacer.timeUntilSend(now, size, cc.window(), rtt.smoothedRtt);
 * if (wait === 0) { send(); pacer.onSend(now, size, cc.window(), rtt.smoothedRtt); } else armTimer(now + wait);
 */
export class Pacer {
  private mds: number;
  private tokens: number;
  private last: number | undefined = undefined;

  /** @param maxDatagramSize the path's max_datagram_size (bytes) */
  constructor(maxDatagramSize: number) {
    this.mds = maxDatagramSize;
    this.tokens = initialWindow(maxDatagramSize);
  }

  /** Pacing rate in bytes per ms: N * window / smoothed_rtt (§7.7). */
  static rate(window: number, smoothedRtt: number): number {
    return (PACING_GAIN * window) / Math.max(smoothedRtt, Number.EPSILON);
  }

  /**
   * Bucket capacity in bytes for a congestion window (§7.7: bursts up to the initial window of
   * the current datagram size, §7.2), or more when the rate fills that faster than the timer
   * granularity (see TIMER_GRANULARITY_MS).
   */
  capacity(window: number, smoothedRtt = Number.POSITIVE_INFINITY): number {
    const perTick = Pacer.rate(window, smoothedRtt) * TIMER_GRANULARITY_MS;
    const burst = Math.min(Math.max(initialWindow(this.mds), perTick), MAX_BURST_PACKETS * this.mds);
    return Math.max(this.mds, Math.min(window, burst));
  }

  /** The path's max_datagram_size changed. */
  setMaxDatagramSize(size: number): void {
    this.mds = size;
  }

  /**
   * How long (ms) to wait before a packet of `bytes` may be sent; 0 means now. A packet larger
   * than the bucket waits for a full bucket, then goes.
   */
  timeUntilSend(now: number, bytes: number, window: number, smoothedRtt: number): number {
    const cap = this.capacity(window, smoothedRtt);
    const available = this.level(now, window, smoothedRtt, cap);
    const need = Math.min(bytes, cap);
    if (available + EPSILON_BYTES >= need) return 0;
    return (need - available) / Pacer.rate(window, smoothedRtt);
  }

  /** Records that `bytes` were sent at `now` (the bucket may go below zero; later sends wait). */
  onSend(now: number, bytes: number, window: number, smoothedRtt: number): void {
    const cap = this.capacity(window, smoothedRtt);
    this.tokens = this.level(now, window, smoothedRtt, cap) - bytes;
    this.last = now;
  }

  /** Tokens at `now`: the stored level plus what the rate added since the last send, capped. */
  private level(now: number, window: number, smoothedRtt: number, cap: number): number {
    const elapsed = this.last === undefined ? 0 : Math.max(0, now - this.last);
    return Math.min(cap, this.tokens + elapsed * Pacer.rate(window, smoothedRtt));
  }
}
