/**
 * The real clock for the MQTT core: monotonic time anchored at the process's wall-clock start
 * (`performance.timeOrigin + performance.now()`), so deadlines a durable store keeps (message
 * expiry, disconnect times) stay meaningful across restarts; and unref'd `setTimeout`, so an idle
 * broker never keeps the process alive by its timers alone.
 */
import { performance } from "node:perf_hooks";
import type { Scheduler, TimerHandle } from "../mqtt/broker/scheduler.js";

/** The system scheduler (monotonic clock, Node timers). */
export const systemScheduler: Scheduler = {
  now: () => performance.timeOrigin + performance.now(),
  setTimer(ms: number, fn: () => void): TimerHandle {
    // Node caps delays at 2^31-1 ms; longer timers re-arm.
    const MAX = 0x7fffffff;
    let handle: ReturnType<typeof setTimeout>;
    let remaining = ms;
    const arm = (): void => {
      const step = Math.min(remaining, MAX);
      handle = setTimeout(() => {
        remaining -= step;
        if (remaining > 0) arm();
        else fn();
      }, step);
      handle.unref();
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  },
};
