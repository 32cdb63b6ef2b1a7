/**
 * Time and timers, injected. The broker core never reads the clock or arms a global timer; it
 * asks its {@link Scheduler}. Production code passes `systemScheduler` (src/net/scheduler.ts),
 * tests pass a {@link ManualScheduler} and move time by hand.
 */

/** A timer that can be cancelled. Cancelling twice, or after it fired, is harmless. */
export interface TimerHandle {
  cancel(): void;
}

/** The broker's view of time. */
export interface Scheduler {
  /** Monotonic milliseconds. Any origin works in memory; a durable store wants a wall-clock anchor. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimer(ms: number, fn: () => void): TimerHandle;
}

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A scheduler whose time only moves when told to: `advance(ms)` runs every timer that falls due,
 * in deadline order (ties in creation order), including timers armed by those timers.
 */
export class ManualScheduler implements Scheduler {
  private time: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const t: ManualTimer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(t);
    return {
      cancel: () => {
        t.cancelled = true;
      },
    };
  }

  /** Moves time forward by `ms`, firing due timers. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      let next: ManualTimer | undefined;
      for (const t of this.timers) {
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      this.time = Math.max(this.time, next.at);
      next.cancelled = true;
      next.fn();
    }
    this.time = end;
  }

  /** Number of armed timers. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
}
