import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RangeSet } from "../../../src/quic/streams/range-set.js";

type Op = { add: boolean; start: number; len: number };

describe("RangeSet", () => {
  it("merges overlapping and adjacent ranges", () => {
    const r = new RangeSet();
    r.add(10, 20);
    r.add(30, 40);
    r.add(20, 25); // adjacent to the first
    expect(r.ranges()).toEqual([
      [10, 25],
      [30, 40],
    ]);
    r.add(5, 35);
    expect(r.ranges()).toEqual([[5, 40]]);
  });

  it("removes from the middle, splitting a range", () => {
    const r = new RangeSet();
    r.add(0, 100);
    r.remove(40, 60);
    expect(r.ranges()).toEqual([
      [0, 40],
      [60, 100],
    ]);
    expect(r.gaps(30, 70)).toEqual([[40, 60]]);
    expect(r.covers(0, 40)).toBe(true);
    expect(r.covers(39, 41)).toBe(false);
    r.removeBelow(70);
    expect(r.ranges()).toEqual([[70, 100]]);
  });

  it("matches a naive set under random adds and removes (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ add: fc.boolean(), start: fc.nat(200), len: fc.nat(40) }), { maxLength: 60 }),
        (ops: Op[]) => {
          const r = new RangeSet();
          const naive = new Set<number>();
          for (const op of ops) {
            if (op.add) {
              r.add(op.start, op.start + op.len);
              for (let i = op.start; i < op.start + op.len; i++) naive.add(i);
            } else {
              r.remove(op.start, op.start + op.len);
              for (let i = op.start; i < op.start + op.len; i++) naive.delete(i);
            }
          }
          expect(r.size).toBe(naive.size);
          for (let i = 0; i < 250; i++) expect(r.has(i)).toBe(naive.has(i));
          // Disjoint, sorted, non-adjacent.
          const rs = r.ranges();
          for (let i = 1; i < rs.length; i++) expect(rs[i][0]).toBeGreaterThan(rs[i - 1][1]);
          const gaps = r.gaps(0, 250);
          let gapSize = 0;
          for (const [s, e] of gaps) gapSize += e - s;
          expect(gapSize + r.size).toBe(250);
        },
      ),
    );
  });
});
