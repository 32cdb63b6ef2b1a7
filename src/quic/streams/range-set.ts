/**
 * A set of non-negative integer offsets kept as sorted, disjoint, non-adjacent half-open ranges
 * `[start, end)`. Used for acknowledged and lost byte ranges of a send buffer (RFC 9000 §2.2,
 * §13.3: "retransmit data, not packets") and anywhere else byte ranges are tracked.
 *
 * Operations are O(log n) to find the position plus O(k) to splice the k ranges touched; with
 * in-order traffic the set holds one or two ranges.
 */
/**
 * The arrays of every empty set (frozen: a mutation that missed the replacement would throw, not
 * corrupt other sets). Send buffers hold two sets each, empty nearly all their lives; a grown
 * array keeps room for 17 numbers, and a set starts again from a one-element literal.
 */
const NONE: number[] = Object.freeze([]) as unknown as number[];

export class RangeSet {
  // Parallel arrays: range i is [starts[i], ends[i]); starts[i] < ends[i] < starts[i + 1].
  private starts: number[] = NONE;
  private ends: number[] = NONE;

  /** Number of disjoint ranges. */
  get count(): number {
    return this.starts.length;
  }

  /** True when the set holds no offset. */
  get isEmpty(): boolean {
    return this.starts.length === 0;
  }

  /** Total number of offsets covered. */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.starts.length; i++) n += this.ends[i] - this.starts[i];
    return n;
  }

  /** Lowest covered offset, or undefined when empty. */
  get min(): number | undefined {
    return this.starts[0];
  }

  /** One past the highest covered offset, or undefined when empty. */
  get max(): number | undefined {
    return this.ends.length === 0 ? undefined : this.ends[this.ends.length - 1];
  }

  /** The ranges, lowest first, as `[start, end)` pairs (a copy). */
  ranges(): Array<[number, number]> {
    return this.starts.map((s, i) => [s, this.ends[i]]);
  }

  /** The first range, or undefined when empty. */
  first(): [number, number] | undefined {
    return this.starts.length === 0 ? undefined : [this.starts[0], this.ends[0]];
  }

  /** Index of the first range whose end is >= `offset` (ranges that touch or follow it). */
  private lowerIndex(offset: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds `[start, end)`, merging with overlapping or adjacent ranges. */
  add(start: number, end: number): void {
    if (end <= start) return;
    const n = this.starts.length;
    if (n === 0) {
      this.starts = [start];
      this.ends = [end];
      return;
    }
    // Fast path: append at the end (in-order traffic).
    if (start > this.ends[n - 1]) {
      this.starts.push(start);
      this.ends.push(end);
      return;
    }
    const i = this.lowerIndex(start);
    // Ranges i..j-1 overlap or touch [start, end).
    let j = i;
    while (j < n && this.starts[j] <= end) j++;
    if (i === j) {
      this.starts.splice(i, 0, start);
      this.ends.splice(i, 0, end);
      return;
    }
    const s = Math.min(start, this.starts[i]);
    const e = Math.max(end, this.ends[j - 1]);
    this.starts.splice(i, j - i, s);
    this.ends.splice(i, j - i, e);
  }

  /** Removes `[start, end)` from the set. */
  remove(start: number, end: number): void {
    if (end <= start || this.starts.length === 0) return;
    let i = this.lowerIndex(start);
    if (i < this.ends.length && this.ends[i] === start) i++; // touching only: not affected
    const newStarts: number[] = [];
    const newEnds: number[] = [];
    let j = i;
    while (j < this.starts.length && this.starts[j] < end) {
      if (this.starts[j] < start) {
        newStarts.push(this.starts[j]);
        newEnds.push(start);
      }
      if (this.ends[j] > end) {
        newStarts.push(end);
        newEnds.push(this.ends[j]);
      }
      j++;
    }
    if (i === j) return;
    if (i === 0 && j === this.starts.length && newStarts.length === 0) {
      this.clear();
      return;
    }
    this.starts.splice(i, j - i, ...newStarts);
    this.ends.splice(i, j - i, ...newEnds);
  }

  /** Removes every offset below `offset`. */
  removeBelow(offset: number): void {
    if (this.starts.length === 0 || this.starts[0] >= offset) return;
    this.remove(this.starts[0], offset);
  }

  /** True when every offset of `[start, end)` is in the set (an empty range is always covered). */
  covers(start: number, end: number): boolean {
    if (end <= start) return true;
    const i = this.lowerIndex(start + 1);
    return i < this.starts.length && this.starts[i] <= start && this.ends[i] >= end;
  }

  /** True when `offset` is in the set. */
  has(offset: number): boolean {
    return this.covers(offset, offset + 1);
  }

  /** The parts of `[start, end)` NOT in the set, lowest first. */
  gaps(start: number, end: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    if (end <= start) return out;
    let at = start;
    for (let i = this.lowerIndex(start + 1); i < this.starts.length && at < end; i++) {
      if (this.starts[i] >= end) break;
      if (this.starts[i] > at) out.push([at, this.starts[i]]);
      at = Math.max(at, this.ends[i]);
    }
    if (at < end) out.push([at, end]);
    return out;
  }

  /** Removes everything. */
  clear(): void {
    this.starts = NONE;
    this.ends = NONE;
  }
}
