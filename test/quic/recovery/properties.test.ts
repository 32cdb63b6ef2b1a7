import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TransportError } from "../../../src/quic/errors.js";
import { AckTracker } from "../../../src/quic/recovery/ack-tracker.js";
import type { AckInput } from "../../../src/quic/recovery/loss.js";
import { LossDetector } from "../../../src/quic/recovery/loss.js";
import type { SentPacket } from "../../../src/quic/recovery/sent-packets.js";
import { PnSpace } from "../../../src/quic/recovery/space.js";

type Tok = { space: PnSpace; pn: number };

const spaceArb = fc.constantFrom<PnSpace>(PnSpace.Initial, PnSpace.Handshake, PnSpace.ApplicationData);

const commandArb = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("send" as const),
      space: spaceArb,
      count: fc.integer({ min: 1, max: 6 }),
      ackEliciting: fc.boolean(),
      size: fc.integer({ min: 40, max: 1500 }),
      skip: fc.boolean(),
      dt: fc.integer({ min: 0, max: 40 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("ack" as const),
      space: spaceArb,
      picks: fc.array(fc.nat(), { minLength: 1, maxLength: 12 }),
      bogus: fc.integer({ min: 0, max: 19 }),
      ackDelay: fc.integer({ min: 0, max: 5000 }),
      ce: fc.integer({ min: 0, max: 3 }),
      dt: fc.integer({ min: 0, max: 200 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("timeout" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("discard" as const), space: spaceArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("confirm" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("keys" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("amp" as const), limited: fc.boolean() }) },
);

function rangesOf(pns: number[]): Array<[number, number]> {
  const sorted = [...new Set(pns)].sort((a, b) => b - a);
  const ranges: Array<[number, number]> = [];
  for (const pn of sorted) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last[0] === pn + 1) last[0] = pn;
    else ranges.push([pn, pn]);
  }
  return ranges;
}

describe("LossDetector properties", () => {
  it("returns every packet's tokens exactly once (acked, lost or discarded) and keeps bytes in flight exact", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(commandArb, { maxLength: 120 }), (isServer, commands) => {
        const ld = new LossDetector<Tok>({ isServer });
        const nextPn = [0, 0, 0];
        const discarded = [false, false, false];
        const all = new Map<string, { packet: SentPacket<Tok>; returned?: string }>();
        const key = (t: Tok) => `${t.space}:${t.pn}`;
        let now = 0;

        const giveBack = (packets: SentPacket<Tok>[], how: string) => {
          for (const p of packets) {
            expect(p.tokens).toHaveLength(1);
            const entry = all.get(key(p.tokens[0]));
            expect(entry).toBeDefined();
            expect(entry!.returned, `${key(p.tokens[0])} returned as ${how} after ${entry!.returned}`).toBe(
              undefined,
            );
            entry!.returned = how;
          }
        };

        const check = () => {
          let bytes = 0;
          const eliciting = [0, 0, 0];
          for (const { packet, returned } of all.values()) {
            if (returned !== undefined || !packet.inFlight) continue;
            bytes += packet.size;
            if (packet.ackEliciting) eliciting[packet.tokens[0].space]++;
          }
          expect(ld.bytesInFlight()).toBe(bytes);
          for (const s of [0, 1, 2] as PnSpace[]) expect(ld.ackElicitingInFlight(s)).toBe(eliciting[s]);
          const d = ld.timerDeadline();
          if (d !== undefined) expect(Number.isFinite(d)).toBe(true);
        };

        for (const c of commands) {
          switch (c.kind) {
            case "send": {
              if (discarded[c.space]) break;
              now += c.dt;
              if (c.skip) {
                ld.onPacketNumberSkipped(c.space, nextPn[c.space]);
                nextPn[c.space]++;
              }
              for (let i = 0; i < c.count; i++) {
                const pn = nextPn[c.space]++;
                const packet: SentPacket<Tok> = {
                  pn,
                  timeSent: now,
                  size: c.size,
                  ackEliciting: c.ackEliciting,
                  inFlight: c.ackEliciting || c.size > 1000, // PADDING-only packets are in flight too
                  tokens: [{ space: c.space, pn }],
                };
                all.set(key(packet.tokens[0]), { packet });
                ld.onPacketSent(c.space, packet);
              }
              break;
            }
            case "ack": {
              now += c.dt;
              const sent = nextPn[c.space];
              const pns = sent === 0 ? [] : c.picks.map((x) => x % sent);
              if (c.bogus === 0) pns.push(sent + (c.picks[0] % 3)); // never sent
              if (pns.length === 0) break;
              const ranges = rangesOf(pns);
              const ack: AckInput = {
                largest: ranges[0][1],
                ackDelay: c.ackDelay,
                ranges,
                ecn: c.ce > 0 ? { ect0: 0, ect1: 0, ce: c.ce } : undefined,
              };
              const r = ld.onAckReceived(c.space, ack, now);
              if (r instanceof TransportError) {
                // Only an ACK of a packet never sent or skipped may be refused.
                expect(c.bogus === 0 || pns.some((pn) => !all.has(`${c.space}:${pn}`))).toBe(true);
                break;
              }
              expect(c.bogus !== 0 && pns.every((pn) => all.has(`${c.space}:${pn}`))).toBe(true);
              for (const p of r.acked) expect(pns).toContain(p.pn);
              giveBack(r.acked, "acked");
              giveBack(r.lost, "lost");
              break;
            }
            case "timeout": {
              const d = ld.timerDeadline();
              if (d === undefined) {
                expect(ld.onTimeout(now)).toEqual({ kind: "none" });
                break;
              }
              const onTime = now <= d;
              now = Math.max(now, d);
              const a = ld.onTimeout(now);
              // "none" only when a time-threshold timer was re-armed for a later loss time.
              if (a.kind === "none") expect(ld.timerDeadline()).toBeGreaterThan(now);
              if (a.kind === "lost") {
                expect(a.lost.length).toBeGreaterThan(0);
                giveBack(a.lost, "lost");
              }
              // A PTO handled on time moves the timer past now: no busy loop. (Handled late, the
              // backed-off deadline may still be in the past and fires again, Appendix A.8.)
              const next = ld.timerDeadline();
              if (onTime && next !== undefined && a.kind === "probe") expect(next).toBeGreaterThan(now);
              break;
            }
            case "discard":
              if (c.space === PnSpace.ApplicationData || discarded[c.space]) break;
              discarded[c.space] = true;
              giveBack(ld.discardSpace(c.space, now), "discarded");
              break;
            case "confirm":
              ld.setHandshakeConfirmed(now);
              break;
            case "keys":
              ld.setHasHandshakeKeys();
              break;
            case "amp":
              if (isServer) ld.setAmplificationLimited(c.limited, now);
              break;
          }
          check();
        }

        // Whatever was not returned is still outstanding, and vice versa.
        const outstanding = new Set<string>();
        for (const s of [0, 1, 2] as PnSpace[])
          for (const p of ld.unacked(s)) outstanding.add(key(p.tokens[0]));
        for (const [k, { returned }] of all) expect(outstanding.has(k)).toBe(returned === undefined);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("AckTracker properties", () => {
  it("reports exactly the received packet numbers when ranges are not bounded", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 200 }), (pns) => {
        const t = new AckTracker({ space: PnSpace.ApplicationData, maxRanges: 1000 });
        const seen = new Set<number>();
        for (const pn of pns) {
          expect(t.isDuplicate(pn)).toBe(seen.has(pn));
          expect(t.onPacketReceived(pn, 0, true)).toBe(!seen.has(pn));
          seen.add(pn);
        }
        expect(t.buildAck(0, 3)!.ranges).toEqual(rangesOf([...seen]));
      }),
    );
  });

  it("with bounded ranges, reports only received numbers, always the largest, and never re-accepts one", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { maxLength: 5 }),
        (pns, maxRanges, ackOfAcks) => {
          const t = new AckTracker({ space: PnSpace.ApplicationData, maxRanges });
          const seen = new Set<number>();
          pns.forEach((pn, i) => {
            if (t.onPacketReceived(pn, i, i % 3 !== 0)) {
              expect(seen.has(pn)).toBe(false);
              seen.add(pn);
            }
            if (i < ackOfAcks.length) t.onAckOfAckReceived(ackOfAcks[i]);
          });
          for (const pn of seen) expect(t.isDuplicate(pn)).toBe(true);
          const ack = t.buildAck(pns.length, 3)!;
          expect(ack.ranges.length).toBeLessThanOrEqual(maxRanges);
          expect(ack.largest).toBe(Math.max(...seen));
          let below = Number.POSITIVE_INFINITY;
          for (const [lo, hi] of ack.ranges) {
            expect(lo).toBeLessThanOrEqual(hi);
            expect(hi).toBeLessThan(below - 1);
            below = lo;
            for (let pn = lo; pn <= hi; pn++) expect(seen.has(pn)).toBe(true);
          }
        },
      ),
    );
  });
});
