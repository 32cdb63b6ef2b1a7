import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IdSet } from "../../../src/quic/streams/id-set.js";

type Op = { kind: "add" | "delete" | "has"; id: number } | { kind: "clear" };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom("add" as const, "delete" as const, "has" as const), id: fc.nat(12) }),
  fc.constant({ kind: "clear" as const }),
);

describe("IdSet", () => {
  it("behaves like Set<number>: add, delete, has, clear, size, insertion order", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const a = new IdSet();
        const b = new Set<number>();
        for (const o of ops) {
          if (o.kind === "add") {
            a.add(o.id);
            b.add(o.id);
          } else if (o.kind === "delete") expect(a.delete(o.id)).toBe(b.delete(o.id));
          else if (o.kind === "has") expect(a.has(o.id)).toBe(b.has(o.id));
          else {
            a.clear();
            b.clear();
          }
          expect(a.size).toBe(b.size);
          expect([...a]).toEqual([...b]);
          expect(a.values().next().value).toBe(b.values().next().value);
        }
      }),
    );
  });

  it("allows deleting while iterating, as the poll loops do", () => {
    const s = new IdSet().add(4).add(8).add(12);
    const seen: number[] = [];
    for (const id of s) {
      seen.push(id);
      s.delete(id);
      if (id === 4) s.delete(12); // a later element deleted meanwhile is not visited
    }
    expect(seen).toEqual([4, 8]);
    expect(s.size).toBe(0);
    expect([...s]).toEqual([]);
    expect(s.add(16).has(16)).toBe(true);
  });
});
