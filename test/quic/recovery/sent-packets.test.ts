import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type SentPacket, SentPackets } from "../../../src/quic/recovery/sent-packets.js";

const mk = (pn: number, ackEliciting = true, inFlight = true, size = 100): SentPacket<number> => ({
  pn,
  timeSent: pn,
  size,
  ackEliciting,
  inFlight,
  tokens: [pn],
});

describe("SentPackets (RFC 9002 A.1)", () => {
  it("finds, removes by range and by predicate, ascending", () => {
    const s = new SentPackets<number>();
    for (const pn of [0, 1, 2, 5, 6, 7, 10]) s.push(mk(pn));
    expect(s.largestSent).toBe(10);
    expect(s.get(5)?.pn).toBe(5);
    expect(s.get(4)).toBeUndefined();
    expect(s.removeRange(2, 6).map((p) => p.pn)).toEqual([2, 5, 6]);
    expect(s.removeRange(2, 6)).toEqual([]);
    expect(s.removeWhere(7, (p) => p.pn !== 1).map((p) => p.pn)).toEqual([0, 7]);
    expect(s.packets().map((p) => p.pn)).toEqual([1, 10]);
    expect(s.size).toBe(2);
    expect(s.bytesInFlight).toBe(200);
    expect(s.clear().map((p) => p.pn)).toEqual([1, 10]);
    expect(s.size).toBe(0);
    expect(s.largestSent).toBe(10);
    expect(() => s.push(mk(10))).toThrow();
  });

  it("counts ack-eliciting in-flight packets and bytes in flight", () => {
    const s = new SentPackets<number>();
    s.push(mk(0, true, true, 1200));
    s.push(mk(1, false, false, 50)); // ACK only
    s.push(mk(2, false, true, 1200)); // PADDING only
    expect(s.ackElicitingInFlight).toBe(1);
    expect(s.bytesInFlight).toBe(2400);
    s.removeRange(0, 1);
    expect(s.ackElicitingInFlight).toBe(0);
    expect(s.bytesInFlight).toBe(1200);
  });

  it("matches a simple model over long random histories (compaction included)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant("push" as const),
              n: fc.integer({ min: 1, max: 60 }),
              gap: fc.nat(3),
            }),
            fc.record({ op: fc.constant("range" as const), a: fc.nat(3000), len: fc.nat(80) }),
            fc.record({
              op: fc.constant("where" as const),
              upTo: fc.nat(3000),
              mod: fc.integer({ min: 1, max: 4 }),
            }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const s = new SentPackets<number>();
          const model = new Map<number, SentPacket<number>>();
          let next = 0;
          for (const o of ops) {
            if (o.op === "push") {
              next += o.gap;
              for (let i = 0; i < o.n; i++) {
                const p = mk(next++, next % 3 !== 0);
                s.push(p);
                model.set(p.pn, p);
              }
            } else if (o.op === "range") {
              const got = s.removeRange(o.a, o.a + o.len).map((p) => p.pn);
              const want = [...model.keys()]
                .filter((pn) => pn >= o.a && pn <= o.a + o.len)
                .sort((x, y) => x - y);
              for (const pn of want) model.delete(pn);
              expect(got).toEqual(want);
            } else {
              const got = s.removeWhere(o.upTo, (p) => p.pn % o.mod === 0).map((p) => p.pn);
              const want = [...model.keys()]
                .filter((pn) => pn <= o.upTo && pn % o.mod === 0)
                .sort((x, y) => x - y);
              for (const pn of want) model.delete(pn);
              expect(got).toEqual(want);
            }
            expect(s.size).toBe(model.size);
            expect(s.ackElicitingInFlight).toBe([...model.values()].filter((p) => p.ackEliciting).length);
          }
          expect(s.packets().map((p) => p.pn)).toEqual([...model.keys()].sort((x, y) => x - y));
          for (const pn of model.keys()) expect(s.get(pn)?.pn).toBe(pn);
        },
      ),
      { numRuns: 200 },
    );
  });
});
