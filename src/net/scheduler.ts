/**
 * The real clock for the MQTT core: monotonic time anchored at the process's wall-clock start
 * (`performance.timeOrigin + performance.now()`), so deadlines a durable store keeps (message
 * expiry, disconnect times) stay meaningful across restarts; and unref'd `setTimeout`, so an idle
 * broker never keeps the process alive by its timers alone.
 */
import { performance } from "node:perf_hooks";
import type { Scheduler, TimerHandle } from "../mqtt/broker/scheduler.js";

/** Node caps delays at 2^31-1 ms; longer timers re-arm. */
const MAX_DELAY = 0x7fffffff;

/**
 * One armed timer: a plain object and Node's Timeout, without closures of its own (the broker
 * keeps one per connection for keepalive; closures made it ~350 bytes more each).
 */
class SystemTimer implements TimerHandle {
  private handle: ReturnType<typeof setTimeout> | undefined;
  constructor(
    private remaining: number,
    private readonly fn: () => void,
  ) {
    this.arm();
  }

  private arm(): void {
    const step = Math.min(this.remaining, MAX_DELAY);
    this.handle = setTimeout(fire, step, this, step);
    this.handle.unref();
  }

  /** @internal Called by Node when a step elapsed. */
  elapsed(step: number): void {
    this.remaining -= step;
    if (this.remaining > 0) this.arm();
    else this.fn();
  }

  cancel(): void {
    clearTimeout(this.handle);
  }
}

function fire(timer: SystemTimer, step: number): void {
  timer.elapsed(step);
}

/** The system scheduler (monotonic clock, Node timers). */
export const systemScheduler: Scheduler = {
  now: () => performance.timeOrigin + performance.now(),
  setTimer(ms: number, fn: () => void): TimerHandle {
    return new SystemTimer(ms, fn);
  },
};
