import { describe, expect, it } from "vitest";
import { AckTracker } from "../../../src/quic/recovery/ack-tracker.js";
import { RangeSet } from "../../../src/quic/recovery/range-set.js";
import { PnSpace } from "../../../src/quic/recovery/space.js";

const app = (opts: { threshold?: number; maxRanges?: number } = {}) =>
  new AckTracker({
    space: PnSpace.ApplicationData,
    maxAckDelay: 25,
    ackElicitingThreshold: opts.threshold,
    maxRanges: opts.maxRanges,
  });

describe("RangeSet", () => {
  it("coalesces adjacent values and reports ranges descending", () => {
    const s = new RangeSet();
    for (const v of [0, 1, 2, 5, 6, 4]) expect(s.insert(v)).toBe(true);
    expect(s.descending()).toEqual([
      [4, 6],
      [0, 2],
    ]);
    expect(s.insert(3)).toBe(true);
    expect(s.descending()).toEqual([[0, 6]]);
    expect(s.insert(3)).toBe(false);
    expect(s.count).toBe(1);
  });

  it("inserts below, above and between ranges, and removes below a bound", () => {
    const s = new RangeSet();
    for (const v of [10, 20, 0, 15, 11, 9]) s.insert(v);
    expect(s.descending()).toEqual([
      [20, 20],
      [15, 15],
      [9, 11],
      [0, 0],
    ]);
    expect(s.has(10)).toBe(true);
    expect(s.has(12)).toBe(false);
    expect(s.rangeOf(11)).toEqual([9, 11]);
    s.removeBelow(10);
    expect(s.descending()).toEqual([
      [20, 20],
      [15, 15],
      [10, 11],
    ]);
    expect(s.min()).toBe(10);
    expect(s.max()).toBe(20);
  });
});

describe("AckTracker (RFC 9000 §13.2)", () => {
  it("acks within max_ack_delay for one packet and immediately after the 2nd (§13.2.1, §13.2.2)", () => {
    const t = app();
    expect(t.ackDeadline()).toBeUndefined();
    expect(t.onPacketReceived(0, 100, true)).toBe(true);
    expect(t.ackDeadline()).toBe(125);
    t.onPacketReceived(1, 105, true);
    expect(t.ackDeadline()).toBe(105);
  });

  it("honours a configurable ack-eliciting threshold", () => {
    const t = app({ threshold: 3 });
    t.onPacketReceived(0, 0, true);
    t.onPacketReceived(1, 1, true);
    expect(t.ackDeadline()).toBe(25);
    t.onPacketReceived(2, 2, true);
    expect(t.ackDeadline()).toBe(2);
    const one = app({ threshold: 1 });
    one.onPacketReceived(0, 7, true);
    expect(one.ackDeadline()).toBe(7);
  });

  it("acks Initial and Handshake packets immediately (§13.2.1)", () => {
    for (const space of [PnSpace.Initial, PnSpace.Handshake]) {
      const t = new AckTracker({ space });
      t.onPacketReceived(0, 50, true);
      expect(t.ackDeadline()).toBe(50);
    }
  });

  it("never schedules an ACK for non-ack-eliciting packets alone, but has one pending (§13.2.1)", () => {
    const t = app();
    t.onPacketReceived(0, 0, false);
    t.onPacketReceived(5, 1, false); // gap, but not ack-eliciting
    expect(t.ackDeadline()).toBeUndefined();
    expect(t.ackPending()).toBe(true);
    expect(t.buildAck(1, 3)?.ranges).toEqual([
      [5, 5],
      [0, 0],
    ]);
  });

  it("acks immediately when a packet arrives out of order or leaves a gap (§13.2.1)", () => {
    const t = app({ threshold: 10 });
    t.onPacketReceived(0, 0, true);
    expect(t.ackDeadline()).toBe(25);
    t.onPacketReceived(2, 1, true); // missing 1 between the largest ack-eliciting (0) and 2
    expect(t.ackDeadline()).toBe(1);
    t.onAckSent();
    expect(t.ackDeadline()).toBeUndefined();
    expect(t.ackPending()).toBe(false);
    t.onPacketReceived(1, 2, true); // fills the gap: below the largest ack-eliciting packet
    expect(t.ackDeadline()).toBe(2);
  });

  it("does not treat a gap filled by a non-ack-eliciting packet as missing (§13.2.1)", () => {
    const t = app({ threshold: 10 });
    t.onPacketReceived(0, 0, true);
    t.onPacketReceived(1, 1, false);
    t.onPacketReceived(2, 2, true);
    expect(t.ackDeadline()).toBe(25);
    t.onPacketReceived(4, 3, true);
    expect(t.ackDeadline()).toBe(3);
  });

  it("acks ECN-CE marked packets immediately and reports ECN counts (§13.2.1, §19.3.2)", () => {
    const t = app({ threshold: 10 });
    t.onPacketReceived(0, 0, true, "ect0");
    expect(t.ackDeadline()).toBe(25);
    t.onPacketReceived(1, 4, true, "ce");
    expect(t.ackDeadline()).toBe(4);
    t.onPacketReceived(2, 5, false, "ect1");
    expect(t.buildAck(5, 3)?.ecn).toEqual({ ect0: 1, ect1: 1, ce: 1 });
    expect(app().buildAck(0, 3)).toBeUndefined();
    const plain = app();
    plain.onPacketReceived(0, 0, true);
    expect(plain.buildAck(0, 3)?.ecn).toBeUndefined();
  });

  it("detects duplicates and ignores them", () => {
    const t = app({ threshold: 10 });
    expect(t.isDuplicate(3)).toBe(false);
    t.onPacketReceived(3, 0, true);
    expect(t.isDuplicate(3)).toBe(true);
    expect(t.onPacketReceived(3, 1, true)).toBe(false);
    expect(t.ackDeadline()).toBe(25); // the duplicate did not count toward the threshold
    expect(t.largestReceived()).toBe(3);
  });

  it("coalesces ranges in the ACK frame, largest first", () => {
    const t = app();
    for (const pn of [0, 1, 2, 5, 6, 4, 9]) t.onPacketReceived(pn, 0, true);
    const ack = t.buildAck(0, 3)!;
    expect(ack.type).toBe("ack");
    expect(ack.largest).toBe(9);
    expect(ack.ranges).toEqual([
      [9, 9],
      [4, 6],
      [0, 2],
    ]);
    t.onPacketReceived(3, 0, true);
    expect(t.buildAck(0, 3)!.ranges).toEqual([
      [9, 9],
      [0, 6],
    ]);
  });

  it("bounds the ranges, dropping the oldest and raising the duplicate floor (§13.2.3)", () => {
    const t = app({ maxRanges: 4 });
    for (const pn of [0, 2, 4, 6, 8, 10]) t.onPacketReceived(pn, 0, true);
    expect(t.buildAck(0, 3)!.ranges).toEqual([
      [10, 10],
      [8, 8],
      [6, 6],
      [4, 4],
    ]);
    // [0,0] and [2,2] were forgotten: everything below 3 is now a duplicate.
    expect(t.isDuplicate(0)).toBe(true);
    expect(t.isDuplicate(1)).toBe(true); // never received, but below the floor
    expect(t.isDuplicate(3)).toBe(false);
    expect(t.onPacketReceived(1, 0, true)).toBe(false);
    expect(t.onPacketReceived(3, 0, true)).toBe(true);
    expect(t.buildAck(0, 3)!.ranges).toEqual([
      [10, 10],
      [8, 8],
      [6, 6],
      [3, 4],
    ]);
  });

  it("encodes ack_delay in microseconds scaled by 2^-exponent (§13.2.5, §19.3)", () => {
    const t = app();
    t.onPacketReceived(0, 10, true);
    t.onPacketReceived(1, 10, true);
    expect(t.buildAck(12.5, 3)!.ackDelay).toBe(312); // 2500 us / 8 = 312.5, floored
    expect(t.buildAck(12.5, 0)!.ackDelay).toBe(2500);
    expect(t.buildAck(12.5, 10)!.ackDelay).toBe(2); // 2500 / 1024
    expect(t.buildAck(35, 3)!.ackDelay).toBe(3125); // 25 ms
    expect(t.buildAck(5, 3)!.ackDelay).toBe(0); // never negative
  });

  it("measures the delay from the largest packet, even when a smaller one arrives later", () => {
    const t = app();
    t.onPacketReceived(5, 10, true);
    t.onPacketReceived(3, 15, true);
    expect(t.buildAck(18, 0)!.ackDelay).toBe(8000);
  });

  it("stops reporting ranges covered by an acknowledged ACK, keeping the largest (§13.2.3, §13.2.4)", () => {
    const t = app();
    for (const pn of [0, 1, 2, 3, 4, 7]) t.onPacketReceived(pn, 0, true);
    const sent = t.buildAck(0, 3)!;
    t.onAckSent();
    expect(sent.largest).toBe(7);
    t.onAckOfAckReceived(sent.largest);
    expect(t.buildAck(0, 3)!.ranges).toEqual([[7, 7]]);
    expect(t.ackPending()).toBe(false);
    t.onPacketReceived(8, 1, true);
    expect(t.buildAck(1, 3)!.ranges).toEqual([[7, 8]]);
    // A late packet below the acknowledged ACK is still new: accepted and reported.
    expect(t.isDuplicate(5)).toBe(false);
    t.onPacketReceived(5, 2, true);
    expect(t.buildAck(2, 3)!.ranges).toEqual([
      [7, 8],
      [5, 5],
    ]);
    expect(t.isDuplicate(3)).toBe(true);
  });

  it("clears everything due when an ACK is sent", () => {
    const t = app();
    t.onPacketReceived(0, 0, true);
    t.onPacketReceived(1, 0, true);
    t.onAckSent();
    t.onPacketReceived(2, 10, true);
    expect(t.ackDeadline()).toBe(35); // the count restarted
  });
});
