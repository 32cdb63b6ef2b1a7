import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DeadlineHeap } from "../../src/quic/deadline-heap.js";

describe("DeadlineHeap", () => {
  it("pops due items in deadline order and only their latest deadline counts", () => {
    const h = new DeadlineHeap<string>();
    h.schedule("a", 30);
    h.schedule("b", 10);
    h.schedule("c", 20);
    h.schedule("b", 40); // moved later: the entry at 10 is stale
    expect(h.peek()).toBe(20);
    expect(h.popDue(25)).toBe("c");
    expect(h.popDue(25)).toBeUndefined();
    h.schedule("a", undefined);
    expect(h.peek()).toBe(40);
    expect(h.popDue(100)).toBe("b");
    expect(h.peek()).toBeUndefined();
    expect(h.size).toBe(0);
  });

  it("matches a naive model under random schedules, removals and pops (property)", () => {
    const op = fc.oneof(
      fc.record({
        k: fc.constant("s" as const),
        item: fc.integer({ min: 0, max: 9 }),
        at: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined }),
      }),
      fc.record({ k: fc.constant("r" as const), item: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ k: fc.constant("p" as const), now: fc.integer({ min: 0, max: 1000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const h = new DeadlineHeap<number>();
        const model = new Map<number, number>();
        for (const o of ops) {
          if (o.k === "s") {
            h.schedule(o.item, o.at);
            if (o.at === undefined) model.delete(o.item);
            else model.set(o.item, o.at);
          } else if (o.k === "r") {
            h.remove(o.item);
            model.delete(o.item);
          } else {
            const item = h.popDue(o.now);
            const min = Math.min(...model.values());
            if (model.size === 0 || min > o.now) expect(item).toBeUndefined();
            else {
              expect(item).toBeDefined();
              expect(model.get(item as number)).toBe(min);
              model.delete(item as number);
            }
          }
          expect(h.peek()).toBe(model.size === 0 ? undefined : Math.min(...model.values()));
          expect(h.size).toBe(model.size);
        }
      }),
    );
  });
});
