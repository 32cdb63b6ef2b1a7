/**
 * The connection's timers as a fixed array indexed by kind; `next()` is the earliest deadline.
 * Nothing here reads a clock: deadlines are absolute virtual/real milliseconds set by the caller.
 */

/** Timer kinds of a connection. */
export enum Timer {
  /** Loss detection / PTO (RFC 9002 §6.2). */
  LossDetection = 0,
  /** Delayed ACK (max_ack_delay, RFC 9000 §13.2.1). */
  Ack = 1,
  /** Idle timeout (RFC 9000 §10.1). */
  Idle = 2,
  /** Keep-alive PING before the idle timeout. */
  KeepAlive = 3,
  /** Closing/draining period end (RFC 9000 §10.2). */
  Close = 4,
  /** Pacing: the next time the pacer lets a packet out. */
  Pacing = 5,
  /** Key discard after a key update (RFC 9001 §6.5) / generic housekeeping. */
  KeyDiscard = 6,
  /** Path validation timeout (RFC 9000 §8.2.4). */
  PathValidation = 7,
}

const COUNT = 8;

/** Deadlines by kind; `undefined` = not armed. */
export class TimerTable {
  private readonly deadlines: (number | undefined)[] = new Array(COUNT).fill(undefined);

  set(kind: Timer, at: number | undefined): void {
    this.deadlines[kind] = at;
  }

  get(kind: Timer): number | undefined {
    return this.deadlines[kind];
  }

  stop(kind: Timer): void {
    this.deadlines[kind] = undefined;
  }

  /** True if `kind` is armed and due at `now`. */
  expired(kind: Timer, now: number): boolean {
    const d = this.deadlines[kind];
    return d !== undefined && d <= now;
  }

  /** The earliest armed deadline. */
  next(): number | undefined {
    let min: number | undefined;
    for (const d of this.deadlines) if (d !== undefined && (min === undefined || d < min)) min = d;
    return min;
  }

  stopAll(): void {
    this.deadlines.fill(undefined);
  }
}
