import { describe, expect, it } from "vitest";
import { GRANULARITY, INITIAL_RTT, RttEstimator } from "../../../src/quic/recovery/rtt.js";

describe("RttEstimator (RFC 9002 §5)", () => {
  it("starts from kInitialRtt = 333 ms, rttvar = 166.5 (§6.2.2, A.4)", () => {
    const rtt = new RttEstimator();
    expect(INITIAL_RTT).toBe(333);
    expect(rtt.smoothedRtt).toBe(333);
    expect(rtt.rttvar).toBe(166.5);
    expect(rtt.minRtt).toBe(0);
    expect(rtt.latestRtt).toBe(0);
    expect(rtt.hasSample).toBe(false);
    // §6.2.1: PTO = smoothed_rtt + max(4*rttvar, kGranularity) [+ max_ack_delay]
    expect(rtt.pto(25, false)).toBe(999);
    expect(rtt.pto(25, true)).toBe(1024);
  });

  it("resets the estimator on the first sample, ignoring ack delay (§5.3)", () => {
    const rtt = new RttEstimator();
    rtt.update(100, 100, 10);
    expect(rtt.latestRtt).toBe(100);
    expect(rtt.minRtt).toBe(100);
    expect(rtt.smoothedRtt).toBe(100);
    expect(rtt.rttvar).toBe(50);
    expect(rtt.firstSampleTime).toBe(100);
    expect(rtt.hasSample).toBe(true);
  });

  it("subtracts a plausible ack delay from later samples (§5.3)", () => {
    const rtt = new RttEstimator();
    rtt.update(100, 100, 0);
    rtt.update(300, 150, 20);
    // adjusted = 150 - 20 = 130; rttvar = 3/4*50 + 1/4*|100-130| = 45; srtt = 7/8*100 + 1/8*130
    expect(rtt.rttvar).toBe(45);
    expect(rtt.smoothedRtt).toBe(103.75);
    expect(rtt.minRtt).toBe(100);
    expect(rtt.latestRtt).toBe(150);
  });

  it("uses the uncapped ack delay before handshake confirmation and caps it after (§5.3)", () => {
    const before = new RttEstimator();
    before.update(100, 100, 0);
    before.update(300, 150, 40); // adjusted 110
    expect(before.smoothedRtt).toBe(87.5 + 110 / 8);

    const after = new RttEstimator();
    after.update(100, 100, 0);
    after.update(300, 150, 40, 25); // capped at max_ack_delay 25: adjusted 125
    expect(after.rttvar).toBe(37.5 + 25 / 4);
    expect(after.smoothedRtt).toBe(87.5 + 125 / 8);
  });

  it("does not subtract an ack delay that would go below min_rtt (§5.3)", () => {
    const rtt = new RttEstimator();
    rtt.update(100, 100, 0);
    rtt.update(300, 105, 20); // 105 < 100 + 20: adjusted stays 105
    expect(rtt.rttvar).toBe(37.5 + 5 / 4);
    expect(rtt.smoothedRtt).toBe(87.5 + 105 / 8);
  });

  it("never adjusts min_rtt for ack delay (§5.2)", () => {
    const rtt = new RttEstimator();
    rtt.update(100, 100, 0);
    rtt.update(200, 90, 50);
    expect(rtt.minRtt).toBe(90);
    expect(rtt.smoothedRtt).toBe(87.5 + 90 / 8); // 90 < 90 + 50: not adjusted either
  });

  it("keeps the PTO at least kGranularity above smoothed_rtt (§6.2.1)", () => {
    const rtt = new RttEstimator();
    rtt.update(1, 0.1, 0);
    expect(GRANULARITY).toBe(1);
    expect(rtt.pto(0, false)).toBeCloseTo(1.1, 12);
    expect(rtt.pto(25, true)).toBeCloseTo(26.1, 12);
  });

  it("sets min_rtt to the latest sample after persistent congestion (§5.2) and resets", () => {
    const rtt = new RttEstimator();
    rtt.update(10, 50, 0);
    rtt.update(20, 200, 0);
    expect(rtt.minRtt).toBe(50);
    rtt.onPersistentCongestion();
    expect(rtt.minRtt).toBe(200);
    rtt.reset(100);
    expect(rtt.hasSample).toBe(false);
    expect(rtt.smoothedRtt).toBe(100);
    expect(rtt.rttvar).toBe(50);
    expect(rtt.initialRtt).toBe(100);
  });
});
