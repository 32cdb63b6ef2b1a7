/**
 * A small sorted set of disjoint, non-adjacent inclusive integer ranges, used for received packet
 * numbers (RFC 9000 §13.2.3). Ranges are few (the owner caps them, typically at 32), so the
 * operations are linear scans from the top end, where almost all insertions happen.
 */

/** An inclusive range `[smallest, largest]` of packet numbers. */
export type Range = [smallest: number, largest: number];

/** A sorted set of disjoint inclusive ranges, ascending, with adjacent ranges coalesced. */
export class RangeSet {
  /**
   * Ascending, disjoint, non-adjacent: `r[i][1] + 1 < r[i + 1][0]`. Emptied by being replaced,
   * and started as a one-element literal: a grown array keeps room for 17 ranges, and an idle
   * connection's sets hold one range or none for its whole life.
   */
  private r: Range[] = [];

  /** Number of ranges held. */
  get count(): number {
    return this.r.length;
  }

  /** True when the set holds no value. */
  get isEmpty(): boolean {
    return this.r.length === 0;
  }

  /** Largest value, or undefined when empty. */
  max(): number | undefined {
    return this.r.length === 0 ? undefined : this.r[this.r.length - 1][1];
  }

  /** Smallest value, or undefined when empty. */
  min(): number | undefined {
    return this.r.length === 0 ? undefined : this.r[0][0];
  }

  /** Index of the last range whose smallest is <= v, or -1. */
  private floorIndex(v: number): number {
    let i = this.r.length - 1;
    while (i >= 0 && this.r[i][0] > v) i--;
    return i;
  }

  /** Whether `v` is in the set. */
  has(v: number): boolean {
    const i = this.floorIndex(v);
    return i >= 0 && v <= this.r[i][1];
  }

  /** The range containing `v`, or undefined. */
  rangeOf(v: number): Readonly<Range> | undefined {
    const i = this.floorIndex(v);
    return i >= 0 && v <= this.r[i][1] ? this.r[i] : undefined;
  }

  /** Adds `v`; returns false when it was already present. Coalesces neighbours. */
  insert(v: number): boolean {
    if (this.r.length === 0) {
      this.r = [[v, v]];
      return true;
    }
    const r = this.r;
    const i = this.floorIndex(v);
    if (i >= 0 && v <= r[i][1]) return false;
    const joinsLower = i >= 0 && r[i][1] + 1 === v;
    const joinsUpper = i + 1 < r.length && r[i + 1][0] - 1 === v;
    if (joinsLower && joinsUpper) {
      r[i][1] = r[i + 1][1];
      r.splice(i + 1, 1);
    } else if (joinsLower) {
      r[i][1] = v;
    } else if (joinsUpper) {
      r[i + 1][0] = v;
    } else {
      r.splice(i + 1, 0, [v, v]);
    }
    return true;
  }

  /** Removes every value below `bound`. */
  removeBelow(bound: number): void {
    const r = this.r;
    let n = 0;
    while (n < r.length && r[n][1] < bound) n++;
    if (n === r.length) {
      if (n > 0) this.r = [];
      return;
    }
    if (n > 0) r.splice(0, n);
    if (r.length > 0 && r[0][0] < bound) r[0][0] = bound;
  }

  /** Removes and returns the lowest range, or undefined when empty. */
  shiftLowest(): Range | undefined {
    return this.r.shift();
  }

  /** The ranges, largest first (the order of an ACK frame, RFC 9000 §19.3.1), as fresh tuples. */
  descending(): Range[] {
    const out: Range[] = [];
    for (let i = this.r.length - 1; i >= 0; i--) out.push([this.r[i][0], this.r[i][1]]);
    return out;
  }

  /** Removes everything. */
  clear(): void {
    this.r = [];
  }
}
