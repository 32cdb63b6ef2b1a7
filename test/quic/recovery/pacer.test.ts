import { describe, expect, it } from "vitest";
import { PACING_GAIN, Pacer } from "../../../src/quic/recovery/pacer.js";

describe("Pacer (RFC 9002 §7.7)", () => {
  it("paces at N * cwnd / smoothed_rtt with N = 1.25", () => {
    expect(PACING_GAIN).toBe(1.25);
    expect(Pacer.rate(120_000, 100)).toBe(1500); // bytes per ms
  });

  it("spreads a congestion window over less than an RTT after an initial burst", () => {
    const cwnd = 120_000;
    const srtt = 100;
    const p = new Pacer(1200);
    const times: number[] = [];
    let now = 0;
    for (let i = 0; i < 100; i++) {
      now += p.timeUntilSend(now, 1200, cwnd, srtt);
      expect(p.timeUntilSend(now, 1200, cwnd, srtt)).toBe(0);
      p.onSend(now, 1200, cwnd, srtt);
      times.push(now);
    }
    // A burst of 10 packets (the initial window), then one every 1200 / 1500 = 0.8 ms.
    expect(times.slice(0, 10)).toEqual(Array(10).fill(0));
    for (let i = 10; i < 100; i++) expect(times[i] - times[i - 1]).toBeCloseTo(0.8, 9);
    expect(times[99]).toBeCloseTo(72, 9); // (120000 - 12000) / 1500
    expect(times[99]).toBeLessThan(srtt); // the whole window goes out within srtt / N + burst
  });

  it("refills only up to one burst after idle", () => {
    const p = new Pacer(1200);
    for (let i = 0; i < 10; i++) {
      expect(p.timeUntilSend(0, 1200, 24_000, 50)).toBe(0);
      p.onSend(0, 1200, 24_000, 50);
    }
    expect(p.timeUntilSend(0, 1200, 24_000, 50)).toBeCloseTo(1200 / 600, 12);
    for (let i = 0; i < 10; i++) {
      expect(p.timeUntilSend(10_000, 1200, 24_000, 50)).toBe(0);
      p.onSend(10_000, 1200, 24_000, 50);
    }
    expect(p.timeUntilSend(10_000, 1200, 24_000, 50)).toBeGreaterThan(0);
  });

  it("bursts the initial window of the current datagram size (RFC 9002 §7.2, §7.7)", () => {
    const p = new Pacer(1200);
    expect(p.capacity(1_000_000)).toBe(12_000);
    p.setMaxDatagramSize(1452);
    expect(p.capacity(1_000_000)).toBe(14_520);
    // Large datagrams (loopback): min(10 * mds, max(14720, 2 * mds)) is two of them, not ten.
    p.setMaxDatagramSize(16384);
    expect(p.capacity(1_000_000)).toBe(32_768);
    expect(p.capacity(20_000)).toBe(20_000);
  });

  it("limits the burst to the congestion window when it is smaller", () => {
    const p = new Pacer(1200);
    expect(p.capacity(2400)).toBe(2400);
    expect(p.capacity(1000)).toBe(1200);
    expect(p.capacity(1_000_000)).toBe(12_000);
    p.onSend(0, 1200, 2400, 100);
    p.onSend(0, 1200, 2400, 100);
    // Empty bucket; rate 1.25 * 2400 / 100 = 30 bytes/ms.
    expect(p.timeUntilSend(0, 1200, 2400, 100)).toBe(40);
    expect(p.timeUntilSend(40, 1200, 2400, 100)).toBe(0);
  });

  it("is deterministic given now", () => {
    const run = () => {
      const p = new Pacer(1350);
      const out: number[] = [];
      let now = 3;
      for (let i = 0; i < 40; i++) {
        const w = p.timeUntilSend(now, 1350, 30_000 + i * 100, 37);
        out.push(w);
        now += w + (i % 3);
        p.onSend(now, 1350, 30_000 + i * 100, 37);
      }
      return out;
    };
    expect(run()).toEqual(run());
  });
});
