import { describe, expect, it } from "vitest";
import { TransportError, TransportErrorCode } from "../../../src/quic/errors.js";
import { RecvWindow, SendCredit } from "../../../src/quic/streams/flow-control.js";

describe("SendCredit (RFC 9000 §4.1, §19.12, §19.13)", () => {
  it("only ever increases the limit", () => {
    const c = new SendCredit(100);
    expect(c.update(50)).toBe(false);
    expect(c.limit).toBe(100);
    expect(c.update(200)).toBe(true);
    c.consume(150);
    expect(c.available).toBe(50);
    expect(() => c.consume(51)).toThrow(RangeError);
  });

  it("reports blocked once per limit, and again after loss only at the same limit", () => {
    const c = new SendCredit(10);
    expect(c.noteBlocked()).toBe(false); // credit left: not blocked
    c.consume(10);
    expect(c.noteBlocked()).toBe(true);
    expect(c.noteBlocked()).toBe(false);
    expect(c.pollBlocked()).toBe(10);
    expect(c.pollBlocked()).toBeUndefined();
    expect(c.onBlockedLost(10)).toBe(true);
    expect(c.pollBlocked()).toBe(10);
    c.update(20);
    expect(c.onBlockedLost(10)).toBe(false); // stale: no longer blocked at 10
    c.consume(10);
    expect(c.noteBlocked()).toBe(true); // new limit: report again
    expect(c.pollBlocked()).toBe(20);
  });

  it("drops a pending blocked report once credit arrives", () => {
    const c = new SendCredit(0);
    c.noteBlocked();
    c.update(5);
    expect(c.hasBlockedPending).toBe(false);
    expect(c.pollBlocked()).toBeUndefined();
  });
});

describe("RecvWindow (RFC 9000 §4.1, §4.2)", () => {
  it("rejects data beyond the advertised limit with FLOW_CONTROL_ERROR", () => {
    const w = new RecvWindow({ initialWindow: 1000 });
    w.receiveUpTo(1000);
    let err: unknown;
    try {
      w.receiveUpTo(1001);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).errorCode).toBe(TransportErrorCode.FLOW_CONTROL_ERROR);
    const conn = new RecvWindow({ initialWindow: 100 });
    conn.receive(60);
    expect(() => conn.receive(41)).toThrow(TransportError);
  });

  it("advertises a new limit once half of the window was consumed", () => {
    const w = new RecvWindow({ initialWindow: 1000 });
    w.receiveUpTo(1000);
    w.consume(499, 0, 0);
    expect(w.pollUpdate()).toBeUndefined();
    w.consume(1, 0, 0);
    expect(w.pollUpdate()).toBe(1500); // consumed + window
    expect(w.pollUpdate()).toBeUndefined();
    expect(() => w.receiveUpTo(1500)).not.toThrow();
  });

  it("resends only the latest limit after a loss", () => {
    const w = new RecvWindow({ initialWindow: 1000 });
    w.consume(500, 0, 0);
    const first = w.pollUpdate()!;
    w.consume(500, 0, 0);
    const second = w.pollUpdate()!;
    expect(second).toBeGreaterThan(first);
    expect(w.onUpdateLost(first)).toBe(false);
    expect(w.pollUpdate()).toBeUndefined();
    expect(w.onUpdateLost(second)).toBe(true);
    expect(w.pollUpdate()).toBe(second);
  });

  it("grows the window (doubling, up to the maximum) when consumed fast relative to the RTT", () => {
    const w = new RecvWindow({ initialWindow: 1000, maxWindow: 8000 });
    const rtt = 100;
    let now = 0;
    const sizes: number[] = [];
    for (let i = 0; i < 8; i++) {
      // Half the window consumed in 10 ms, far under 2 RTTs.
      now += 10;
      w.consume(w.window / 2, now, rtt);
      expect(w.pollUpdate()).toBeDefined();
      sizes.push(w.window);
    }
    // The first epoch only starts the clock (a first read says nothing about the rate).
    expect(sizes.slice(0, 5)).toEqual([1000, 2000, 4000, 8000, 8000]);
    expect(w.window).toBe(8000);
  });

  it("grows under a fast stream of small reads, and the advertised limit keeps ahead", () => {
    const w = new RecvWindow({ initialWindow: 10_000, maxWindow: 1_000_000 });
    let received = 0;
    for (let t = 0; t < 2000; t++) {
      // 1000 bytes per ms with a 50 ms RTT: the BDP is 50 kB, five times the initial window.
      const n = Math.min(1000, w.limit - received);
      w.receiveUpTo(received + n);
      received += n;
      w.consume(n, t, 50);
      w.pollUpdate();
    }
    expect(w.window).toBeGreaterThanOrEqual(100_000);
    expect(w.window).toBeLessThanOrEqual(1_000_000);
  });

  it("does not grow the window when consumed slowly", () => {
    const w = new RecvWindow({ initialWindow: 1000, maxWindow: 8000 });
    const rtt = 100;
    let now = 0;
    for (let i = 0; i < 8; i++) {
      now += 1000; // half a window per 10 RTTs
      w.consume(500, now, rtt);
      expect(w.pollUpdate()).toBeDefined();
    }
    expect(w.window).toBe(1000);
  });

  it("does not grow without an RTT estimate", () => {
    const w = new RecvWindow({ initialWindow: 1000, maxWindow: 8000 });
    w.consume(600, 1, 0);
    expect(w.window).toBe(1000);
  });

  it("ensureMinimumWindow raises the window within the maximum", () => {
    const w = new RecvWindow({ initialWindow: 1000, maxWindow: 3000 });
    w.ensureMinimumWindow(2000);
    expect(w.window).toBe(2000);
    w.ensureMinimumWindow(10_000);
    expect(w.window).toBe(3000);
    w.ensureMinimumWindow(10);
    expect(w.window).toBe(3000);
  });
});
