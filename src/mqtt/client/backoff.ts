/**
 * Reconnect delays: exponential backoff with "equal jitter" (half the delay fixed, half random),
 * so a broker restart is not met by every client reconnecting in the same millisecond, while no
 * client retries sooner than half its base delay.
 */

/** Reconnect policy. */
export interface ReconnectOptions {
  /** Delay before the first retry, in ms (default 1000). */
  minDelay?: number;
  /** Upper bound of the delay, in ms (default 30 000). */
  maxDelay?: number;
}

/** The delay before reconnect attempt `attempt` (0 = first retry), in ms. */
export function backoffDelay(
  attempt: number,
  opts: Required<ReconnectOptions>,
  random: () => number,
): number {
  const base = Math.min(opts.maxDelay, opts.minDelay * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + (random() * base) / 2);
}
