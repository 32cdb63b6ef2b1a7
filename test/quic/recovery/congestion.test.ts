import { describe, expect, it } from "vitest";
import {
  type CcPacket,
  initialWindow,
  minimumWindow,
  NewReno,
} from "../../../src/quic/recovery/congestion.js";

const pkt = (timeSent: number, size = 1200, inFlight = true): CcPacket => ({ timeSent, size, inFlight });

/** Sends `n` 1200-byte packets at `t` and returns them. */
function sendN(cc: NewReno, t: number, n: number): CcPacket[] {
  const out: CcPacket[] = [];
  for (let i = 0; i < n; i++) {
    cc.onPacketSent(t, 1200);
    out.push(pkt(t));
  }
  return out;
}

/** Sends as many 1200-byte packets as the window allows at `t`. */
function fill(cc: NewReno, t: number): CcPacket[] {
  const out: CcPacket[] = [];
  while (cc.canSend(1200)) {
    cc.onPacketSent(t, 1200);
    out.push(pkt(t));
  }
  return out;
}

describe("NewReno windows (RFC 9002 §7.2)", () => {
  it("computes the initial and minimum windows", () => {
    expect(initialWindow(1200)).toBe(12000);
    expect(initialWindow(1500)).toBe(14720);
    expect(initialWindow(9000)).toBe(18000);
    expect(minimumWindow(1200)).toBe(2400);
    const cc = new NewReno(1200);
    expect(cc.window()).toBe(12000);
    expect(cc.ssthresh).toBe(Number.POSITIVE_INFINITY);
    expect(cc.state).toBe("slow-start");
  });

  it("blocks sending above the window (§7)", () => {
    const cc = new NewReno();
    expect(fill(cc, 0)).toHaveLength(10);
    expect(cc.bytesInFlight()).toBe(12000);
    expect(cc.availableWindow()).toBe(0);
    expect(cc.canSend(1)).toBe(false);
  });
});

describe("NewReno through its states (RFC 9002 §7.3, B)", () => {
  it("slow start -> loss -> recovery -> congestion avoidance", () => {
    const cc = new NewReno();
    // Slow start: every acknowledged byte grows the window (§7.3.1).
    let flight = fill(cc, 0);
    cc.onPacketsAcked(100, flight);
    expect(cc.window()).toBe(24000);
    flight = fill(cc, 100);
    expect(flight).toHaveLength(20);
    cc.onPacketsAcked(200, flight.slice(0, 10));
    expect(cc.window()).toBe(36000);
    expect(cc.state).toBe("slow-start");

    // Loss of a packet sent at 100: recovery starts at 210 (§7.3.2).
    cc.onPacketsLost(210, [flight[10]]);
    expect(cc.ssthresh).toBe(18000);
    expect(cc.window()).toBe(18000);
    expect(cc.state).toBe("recovery");
    expect(cc.inRecovery(210)).toBe(true);
    expect(cc.inRecovery(211)).toBe(false);
    // One packet may go out right away even above the window (§7.3.2).
    expect(cc.bytesInFlight()).toBe(10800);
    expect(cc.canSend(1200)).toBe(true);
    // Another loss of a packet sent before recovery started: no further reduction.
    cc.onPacketsLost(215, [flight[11]]);
    expect(cc.window()).toBe(18000);
    // Acks of packets sent before recovery started do not grow the window.
    cc.onPacketsAcked(220, flight.slice(12));
    expect(cc.window()).toBe(18000);
    expect(cc.state).toBe("recovery");
    expect(cc.bytesInFlight()).toBe(0);

    // A packet sent after recovery started is acknowledged: congestion avoidance (§7.3.3),
    // +1 datagram per window of acknowledged bytes.
    flight = fill(cc, 230);
    expect(flight).toHaveLength(15);
    cc.onPacketsAcked(330, flight);
    expect(cc.state).toBe("congestion-avoidance");
    expect(cc.window()).toBe(19200); // 18000 bytes acked = one window
    flight = fill(cc, 330);
    expect(flight).toHaveLength(16);
    cc.onPacketsAcked(430, flight.slice(0, 15)); // 18000 of 19200: not yet
    expect(cc.window()).toBe(19200);
    expect(fill(cc, 430)).toHaveLength(15); // the sender keeps the window full
    cc.onPacketsAcked(431, flight.slice(15)); // 19200 acked: +1200
    expect(cc.window()).toBe(20400);
  });

  it("starts a new recovery period for a loss of a packet sent after the previous one began", () => {
    const cc = new NewReno();
    const a = sendN(cc, 0, 10);
    cc.onPacketsLost(100, [a[0]]);
    expect(cc.window()).toBe(6000);
    const b = sendN(cc, 150, 1);
    cc.onPacketsLost(300, b);
    expect(cc.window()).toBe(3000);
    cc.onPacketsLost(400, sendN(cc, 350, 1));
    expect(cc.window()).toBe(2400); // never below the minimum window
    expect(cc.ssthresh).toBe(1500);
  });

  it("does not grow the window when it is not used (§7.8)", () => {
    const cc = new NewReno();
    cc.onPacketsAcked(100, sendN(cc, 0, 1));
    expect(cc.window()).toBe(12000);
    cc.onPacketsAcked(200, sendN(cc, 100, 4)); // under half the window in slow start
    expect(cc.window()).toBe(12000);
    cc.onPacketsAcked(300, sendN(cc, 200, 5)); // half the window: slow start may double it
    expect(cc.window()).toBe(18000);
  });

  it("collapses to the minimum window on persistent congestion (§7.6.2)", () => {
    const cc = new NewReno();
    const flight = fill(cc, 0);
    cc.onPacketsLost(500, flight);
    cc.onPersistentCongestion(500);
    expect(cc.window()).toBe(2400);
    expect(cc.bytesInFlight()).toBe(0);
    expect(cc.inRecovery(400)).toBe(false); // recovery ended
    expect(cc.state).toBe("slow-start"); // 2400 < ssthresh 6000
    cc.onPacketsAcked(600, fill(cc, 510));
    expect(cc.window()).toBe(4800);
  });

  it("treats ECN-CE as a congestion event (§7.1, B.7)", () => {
    const cc = new NewReno();
    const flight = sendN(cc, 0, 10);
    cc.onCongestionEvent(50, 0);
    expect(cc.window()).toBe(6000);
    expect(cc.bytesInFlight()).toBe(12000);
    cc.onPacketsAcked(60, flight);
    expect(cc.window()).toBe(6000);
  });

  it("ignores packets not in flight and removes discarded ones (B.9)", () => {
    const cc = new NewReno();
    sendN(cc, 0, 3);
    cc.onPacketsAcked(10, [pkt(0, 50, false)]);
    cc.onPacketsLost(10, [pkt(0, 50, false)]);
    expect(cc.state).toBe("slow-start");
    cc.onPacketsDiscarded([pkt(0), pkt(0, 50, false)]);
    expect(cc.bytesInFlight()).toBe(2400);
  });

  it("follows the datagram size and resets", () => {
    const cc = new NewReno();
    cc.onPacketsLost(10, sendN(cc, 0, 1));
    cc.onPersistentCongestion(10);
    cc.setMaxDatagramSize(1500);
    expect(cc.window()).toBe(3000);
    expect(cc.maxDatagramSize).toBe(1500);
    cc.reset();
    expect(cc.window()).toBe(14720);
    expect(cc.bytesInFlight()).toBe(0);
    expect(cc.ssthresh).toBe(Number.POSITIVE_INFINITY);
  });
});
