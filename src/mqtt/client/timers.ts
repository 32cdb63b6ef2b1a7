/**
 * Time as the client sees it: a clock and one-shot timers, injectable so tests can run
 * keepalive, connect timeouts and reconnect backoff on virtual time. The shape is the broker's
 * `Scheduler` (src/mqtt/broker/scheduler.ts), so one manual scheduler can drive both in a test.
 * The default is the real clock (`performance.now()`) and Node's `setTimeout`.
 */
import { performance } from "node:perf_hooks";

/** A timer that can be cancelled. Cancelling twice, or after it fired, is harmless. */
export interface ClientTimerHandle {
  cancel(): void;
}

/** Clock and scheduler used by the client for every timer it arms. */
export interface ClientScheduler {
  /** Monotonic milliseconds (any origin). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimer(ms: number, fn: () => void): ClientTimerHandle;
}

/** The real clock and Node's timers. */
export const realScheduler: ClientScheduler = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  },
};

/** One re-armable timer on a `ClientScheduler`. */
export class Timer {
  private handle: ClientTimerHandle | undefined;

  constructor(
    private readonly scheduler: ClientScheduler,
    private readonly fn: () => void,
  ) {}

  /** (Re)arms the timer to fire after `ms`. */
  start(ms: number): void {
    this.stop();
    const h = this.scheduler.setTimer(ms, () => {
      if (this.handle !== h) return;
      this.handle = undefined;
      this.fn();
    });
    this.handle = h;
  }

  /** Disarms the timer. */
  stop(): void {
    this.handle?.cancel();
    this.handle = undefined;
  }

  /** Whether the timer will fire. */
  get isArmed(): boolean {
    return this.handle !== undefined;
  }
}

/** A promise that resolves after `ms` on `scheduler`, or early on `cancel()`. */
export function sleep(
  scheduler: ClientScheduler,
  ms: number,
): { promise: Promise<void>; cancel: () => void } {
  let done!: () => void;
  const promise = new Promise<void>((resolve) => {
    done = resolve;
  });
  const h = scheduler.setTimer(ms, done);
  return {
    promise,
    cancel: () => {
      h.cancel();
      done();
    },
  };
}
