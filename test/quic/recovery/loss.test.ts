import { describe, expect, it } from "vitest";
import { TransportError, TransportErrorCode } from "../../../src/quic/errors.js";
import { NewReno } from "../../../src/quic/recovery/congestion.js";
import { type AckInput, type AckResult, LossDetector } from "../../../src/quic/recovery/loss.js";
import { PnSpace } from "../../../src/quic/recovery/space.js";

const { Initial, Handshake, ApplicationData: App } = PnSpace;

type Tok = string;

function send(
  ld: LossDetector<Tok>,
  space: PnSpace,
  pn: number,
  t: number,
  opts: { size?: number; ackEliciting?: boolean; inFlight?: boolean } = {},
): void {
  const ackEliciting = opts.ackEliciting ?? true;
  ld.onPacketSent(space, {
    pn,
    timeSent: t,
    size: opts.size ?? 1200,
    ackEliciting,
    inFlight: opts.inFlight ?? ackEliciting,
    tokens: [`${space}:${pn}`],
  });
}

/** An ACK frame for the given packet numbers (any order), ranges descending. */
function ackOf(pns: number[], ackDelay = 0, ecn?: AckInput["ecn"]): AckInput {
  const sorted = [...new Set(pns)].sort((a, b) => b - a);
  const ranges: Array<[number, number]> = [];
  for (const pn of sorted) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last[0] === pn + 1) last[0] = pn;
    else ranges.push([pn, pn]);
  }
  return { largest: sorted[0], ackDelay, ranges, ecn };
}

function ok<T>(r: AckResult<T> | TransportError): AckResult<T> {
  if (r instanceof TransportError) throw r;
  return r;
}

const tokens = (ps: { tokens: Tok[] }[]) => ps.flatMap((p) => p.tokens);

/** A server whose handshake is confirmed: all spaces armed, peer validated. */
function confirmedServer(): LossDetector<Tok> {
  const ld = new LossDetector<Tok>({ isServer: true });
  ld.setHandshakeConfirmed(0);
  return ld;
}

describe("LossDetector: acknowledgments (RFC 9002 §5.1, A.7)", () => {
  it("returns newly acked packets once, ascending, and samples RTT from the largest", () => {
    const ld = confirmedServer();
    for (let pn = 0; pn < 3; pn++) send(ld, App, pn, pn * 10);
    const r = ok(ld.onAckReceived(App, ackOf([0, 1, 2]), 120));
    expect(tokens(r.acked)).toEqual(["2:0", "2:1", "2:2"]);
    expect(r.lost).toEqual([]);
    expect(r.rttSampled).toBe(true);
    expect(ld.rtt.latestRtt).toBe(100);
    expect(ld.rtt.smoothedRtt).toBe(100);
    expect(ld.bytesInFlight()).toBe(0);
    // The same ACK again acknowledges nothing new and takes no sample.
    const again = ok(ld.onAckReceived(App, ackOf([0, 1, 2]), 500));
    expect(again.acked).toEqual([]);
    expect(again.rttSampled).toBe(false);
    expect(ld.rtt.latestRtt).toBe(100);
    expect(ld.largestAcked(App)).toBe(2);
  });

  it("takes no RTT sample when the largest acknowledged is not newly acknowledged (§5.1)", () => {
    const ld = confirmedServer();
    send(ld, App, 0, 0);
    send(ld, App, 1, 0);
    ok(ld.onAckReceived(App, ackOf([1]), 50));
    const r = ok(ld.onAckReceived(App, ackOf([0, 1]), 80));
    expect(tokens(r.acked)).toEqual(["2:0"]);
    expect(r.rttSampled).toBe(false);
    expect(ld.rtt.latestRtt).toBe(50);
  });

  it("takes no RTT sample when only non-ack-eliciting packets are newly acknowledged (§5.1)", () => {
    const ld = confirmedServer();
    send(ld, App, 0, 0, { ackEliciting: false });
    const r = ok(ld.onAckReceived(App, ackOf([0]), 40));
    expect(tokens(r.acked)).toEqual(["2:0"]);
    expect(r.rttSampled).toBe(false);
    expect(ld.rtt.hasSample).toBe(false);
    // A non-ack-eliciting largest with an ack-eliciting packet also newly acked does sample.
    send(ld, App, 1, 100);
    send(ld, App, 2, 110, { ackEliciting: false });
    expect(ok(ld.onAckReceived(App, ackOf([1, 2]), 150)).rttSampled).toBe(true);
    expect(ld.rtt.latestRtt).toBe(40);
  });

  it("decodes ack_delay with the peer's exponent and caps it at max_ack_delay after confirmation", () => {
    const ld = confirmedServer();
    ld.setPeerTransportParameters({ maxAckDelay: 10, ackDelayExponent: 3 });
    send(ld, App, 0, 0);
    ok(ld.onAckReceived(App, ackOf([0]), 100)); // first sample: 100
    send(ld, App, 1, 100);
    // 2500 * 8 us = 20 ms, capped at max_ack_delay 10 ms: adjusted = 150 - 10 = 140.
    ok(ld.onAckReceived(App, ackOf([1], 2500), 250));
    expect(ld.rtt.smoothedRtt).toBe(87.5 + 140 / 8);
  });

  it("uses the uncapped ack delay before confirmation and ignores it for Initial (§5.3)", () => {
    const hs = new LossDetector<Tok>({ isServer: true, peerMaxAckDelay: 10 });
    send(hs, Handshake, 0, 0);
    ok(hs.onAckReceived(Handshake, ackOf([0]), 100));
    send(hs, Handshake, 1, 100);
    ok(hs.onAckReceived(Handshake, ackOf([1], 2500), 250)); // 20 ms, not capped: adjusted 130
    expect(hs.rtt.smoothedRtt).toBe(87.5 + 130 / 8);

    const init = new LossDetector<Tok>({ isServer: true });
    send(init, Initial, 0, 0);
    ok(init.onAckReceived(Initial, ackOf([0]), 100));
    send(init, Initial, 1, 100);
    ok(init.onAckReceived(Initial, ackOf([1], 2500), 250)); // ack delay ignored: 150
    expect(init.rtt.smoothedRtt).toBe(87.5 + 150 / 8);
  });

  it("treats an ACK of a packet never sent as PROTOCOL_VIOLATION, changing nothing (RFC 9000 §13.1)", () => {
    const ld = confirmedServer();
    for (let pn = 0; pn < 4; pn++) send(ld, App, pn, 0);
    const deadline = ld.timerDeadline();
    const r = ld.onAckReceived(App, ackOf([0, 1, 5]), 50);
    expect(r).toBeInstanceOf(TransportError);
    const e = r as TransportError;
    expect(e.errorCode).toBe(TransportErrorCode.PROTOCOL_VIOLATION);
    expect(e.frameType).toBe(0x02);
    expect(e.code).toBe("ERR_QUIC_TRANSPORT");
    expect(ld.ackElicitingInFlight(App)).toBe(4);
    expect(ld.bytesInFlight()).toBe(4800);
    expect(ld.largestAcked(App)).toBeUndefined();
    expect(ld.timerDeadline()).toBe(deadline);
    // Nothing sent at all in a space.
    const e2 = ld.onAckReceived(Handshake, ackOf([0], 0, { ect0: 1, ect1: 0, ce: 0 }), 50) as TransportError;
    expect(e2.errorCode).toBe(TransportErrorCode.PROTOCOL_VIOLATION);
    expect(e2.frameType).toBe(0x03);
  });

  it("treats an ACK of a skipped packet number as PROTOCOL_VIOLATION (RFC 9000 §21.4)", () => {
    const ld = confirmedServer();
    send(ld, App, 0, 0);
    ld.onPacketNumberSkipped(App, 1);
    send(ld, App, 2, 0);
    expect((ld.onAckReceived(App, ackOf([0, 1, 2]), 10) as TransportError).errorCode).toBe(
      TransportErrorCode.PROTOCOL_VIOLATION,
    );
    expect(tokens(ok(ld.onAckReceived(App, ackOf([0, 2]), 10)).acked)).toEqual(["2:0", "2:2"]);
  });

  it("rejects malformed ranges as FRAME_ENCODING_ERROR", () => {
    const ld = confirmedServer();
    for (let pn = 0; pn < 10; pn++) send(ld, App, pn, 0);
    const bad: AckInput[] = [
      { largest: 5, ackDelay: 0, ranges: [] },
      { largest: 5, ackDelay: 0, ranges: [[0, 4]] },
      {
        largest: 5,
        ackDelay: 0,
        ranges: [
          [3, 5],
          [2, 4],
        ],
      },
      { largest: 5, ackDelay: 0, ranges: [[6, 5]] },
    ];
    for (const ack of bad)
      expect((ld.onAckReceived(App, ack, 1) as TransportError).errorCode).toBe(
        TransportErrorCode.FRAME_ENCODING_ERROR,
      );
  });

  it("accepts a late ACK of a packet already declared lost, without returning it again", () => {
    const ld = confirmedServer();
    for (let pn = 0; pn < 5; pn++) send(ld, App, pn, 0);
    const r = ok(ld.onAckReceived(App, ackOf([4]), 10));
    expect(tokens(r.lost)).toEqual(["2:0", "2:1"]); // 4 >= pn + 3
    const late = ok(ld.onAckReceived(App, ackOf([0, 1, 2, 3, 4]), 11));
    expect(tokens(late.acked)).toEqual(["2:2", "2:3"]);
  });
});

describe("LossDetector: loss detection (RFC 9002 §6.1, A.10)", () => {
  it("declares loss by packet threshold, then by time threshold at exact virtual times", () => {
    const ld = confirmedServer();
    for (let pn = 0; pn < 5; pn++) send(ld, App, pn, pn); // pn sent at t = pn
    // ACK of 3 at t = 100: latest_rtt = 97, loss_delay = 9/8 * 97 = 109.125.
    const r = ok(ld.onAckReceived(App, ackOf([3]), 100));
    expect(tokens(r.acked)).toEqual(["2:3"]);
    expect(tokens(r.lost)).toEqual(["2:0"]); // 3 >= 0 + kPacketThreshold
    // pn 1 and 2 wait for the time threshold; the timer is the earliest loss_time (§6.1.2).
    expect(ld.timerDeadline()).toBe(1 + 109.125);
    expect(ld.onTimeout(110.124)).toEqual({ kind: "none" });
    const t1 = ld.onTimeout(110.125);
    expect(t1.kind).toBe("lost");
    if (t1.kind !== "lost") return;
    expect(t1.space).toBe(App);
    expect(tokens(t1.lost)).toEqual(["2:1"]);
    expect(ld.timerDeadline()).toBe(2 + 109.125);
    const t2 = ld.onTimeout(111.125);
    expect(t2.kind === "lost" && tokens(t2.lost)).toEqual(["2:2"]);
    // Only pn 4 (above the largest acked) is left: back to PTO, from its send time:
    // 4 + (97 + 4 * 48.5) + max_ack_delay 25.
    expect(ld.timerDeadline()).toBe(4 + 97 + 194 + 25);
    expect(ld.ptoCount).toBe(0);
  });

  it("declares loss by time threshold on ACK receipt", () => {
    const ld = confirmedServer();
    send(ld, App, 0, 0);
    send(ld, App, 1, 200);
    const r = ok(ld.onAckReceived(App, ackOf([1]), 300)); // rtt 100, loss_delay 112.5
    expect(tokens(r.lost)).toEqual(["2:0"]);
    expect(ld.timerDeadline()).toBeUndefined();
  });

  it("re-arms a time-threshold timer whose packet is not lost under a grown RTT", () => {
    const ld = new LossDetector<Tok>({ isServer: false });
    send(ld, Handshake, 0, 0);
    send(ld, Initial, 0, 0, { ackEliciting: false });
    send(ld, Initial, 1, 0, { ackEliciting: false });
    ok(ld.onAckReceived(Initial, ackOf([1]), 152)); // no RTT sample: loss_time 0 + 9/8 * 333
    expect(ld.timerDeadline()).toBe(374.625);
    ok(ld.onAckReceived(Handshake, ackOf([0]), 334)); // RTT now 334
    expect(ld.onTimeout(374.625)).toEqual({ kind: "none" });
    expect(ld.timerDeadline()).toBe(375.75); // 9/8 * 334
    const a = ld.onTimeout(375.75);
    expect(a.kind === "lost" && tokens(a.lost)).toEqual(["0:0"]);
  });

  it("keeps loss detection per space", () => {
    const ld = new LossDetector<Tok>({ isServer: true });
    for (let pn = 0; pn < 3; pn++) send(ld, Initial, pn, 0);
    for (let pn = 0; pn < 5; pn++) send(ld, Handshake, pn, 0);
    const r = ok(ld.onAckReceived(Handshake, ackOf([4]), 10));
    expect(tokens(r.lost)).toEqual(["1:0", "1:1"]);
    expect(ld.ackElicitingInFlight(Initial)).toBe(3);
  });
});

describe("LossDetector: PTO (RFC 9002 §6.2, A.8, A.9)", () => {
  it("arms the PTO at 999 ms for Initial and doubles it on each expiry (§6.2.1)", () => {
    const ld = new LossDetector<Tok>({ isServer: true });
    send(ld, Initial, 0, 0);
    // smoothed_rtt 333 + 4 * rttvar 166.5, no max_ack_delay for Initial.
    expect(ld.timerDeadline()).toBe(999);
    expect(ld.onTimeout(998)).toEqual({ kind: "none" });
    expect(ld.onTimeout(999)).toEqual({
      kind: "probe",
      space: Initial,
      count: 2,
      antiDeadlock: false,
      alsoSpaces: [],
    });
    expect(ld.ptoCount).toBe(1);
    expect(ld.timerDeadline()).toBe(1998);
    ld.onTimeout(1998);
    expect(ld.ptoCount).toBe(2);
    expect(ld.timerDeadline()).toBe(3996);
    ld.onTimeout(3996);
    expect(ld.timerDeadline()).toBe(7992);
    // A PTO declares nothing lost (§6.2).
    expect(ld.ackElicitingInFlight(Initial)).toBe(1);
  });

  it("includes max_ack_delay, also backed off, for Application Data (§6.2.1, A.8)", () => {
    const ld = confirmedServer();
    send(ld, App, 0, 0);
    expect(ld.timerDeadline()).toBe(999 + 25);
    ld.onTimeout(1024);
    expect(ld.timerDeadline()).toBe((999 + 25) * 2);
    ld.onTimeout(2048);
    expect(ld.timerDeadline()).toBe((999 + 25) * 4);
  });

  it("restarts the PTO from the last ack-eliciting packet and resets backoff on an ACK", () => {
    const ld = confirmedServer();
    send(ld, App, 0, 0);
    ld.onTimeout(1024);
    send(ld, App, 1, 1024);
    send(ld, App, 2, 1030);
    expect(ld.timerDeadline()).toBe(1030 + 2048);
    send(ld, App, 3, 1040, { ackEliciting: false }); // ACK-only: does not move the PTO
    expect(ld.timerDeadline()).toBe(1030 + 2048);
    ok(ld.onAckReceived(App, ackOf([1]), 1124)); // rtt 100; pn 0 lost? 1 < 0 + 3, 0 + 112.5 <= 1124: yes
    expect(ld.ptoCount).toBe(0);
    // pn 2 outstanding, sent at 1030: loss_time not set (2 > largest acked), PTO = 100 + 200 + 25.
    expect(ld.timerDeadline()).toBe(1030 + 325);
  });

  it("does not arm the Application Data PTO before handshake confirmation (§6.2.1)", () => {
    const ld = new LossDetector<Tok>({ isServer: true });
    send(ld, App, 0, 0);
    expect(ld.timerDeadline()).toBeUndefined();
    send(ld, Handshake, 0, 5);
    expect(ld.timerDeadline()).toBe(5 + 999);
    ld.setHandshakeConfirmed(10);
    // Handshake 1004 is still earlier than Application Data 1024.
    expect(ld.timerDeadline()).toBe(1004);
    const a = ld.onTimeout(1004);
    expect(a).toEqual({ kind: "probe", space: Handshake, count: 2, antiDeadlock: false, alsoSpaces: [App] });
  });

  it("takes the earliest of the Initial and Handshake PTOs (§6.2.1)", () => {
    const ld = new LossDetector<Tok>({ isServer: true });
    send(ld, Initial, 0, 0);
    send(ld, Handshake, 0, 20);
    expect(ld.timerDeadline()).toBe(999);
    const a = ld.onTimeout(999);
    expect(a.kind === "probe" && a.space).toBe(Initial);
    // Backoff applies across spaces: Handshake now at 20 + 1998 and Initial at 0 + 1998.
    expect(ld.timerDeadline()).toBe(1998);
  });

  it("does not arm the server's PTO at the anti-amplification limit (§6.2.2.1, A.6)", () => {
    const ld = new LossDetector<Tok>({ isServer: true });
    send(ld, Initial, 0, 0);
    ld.setAmplificationLimited(true, 0);
    expect(ld.timerDeadline()).toBeUndefined();
    ld.setAmplificationLimited(false, 1500);
    expect(ld.timerDeadline()).toBe(999); // already due: the caller runs onTimeout(now)
    expect(ld.onTimeout(1500).kind).toBe("probe");
  });

  it("client: does not reset the backoff on Initial ACKs before address validation (§6.2.1)", () => {
    const ld = new LossDetector<Tok>({ isServer: false });
    send(ld, Initial, 0, 0);
    ld.onTimeout(999);
    send(ld, Initial, 1, 999);
    send(ld, Initial, 2, 999);
    expect(ld.timerDeadline()).toBe(999 + 1998);
    const r = ok(ld.onAckReceived(Initial, ackOf([1]), 1099)); // rtt 100
    expect(tokens(r.lost)).toEqual(["0:0"]); // sent at 0, 0 + 112.5 <= 1099
    expect(ld.ptoCount).toBe(1); // not reset: no Handshake ACK yet
    expect(ld.timerDeadline()).toBe(999 + (100 + 200) * 2);
    // A server resets it.
    const srv = new LossDetector<Tok>({ isServer: true });
    send(srv, Initial, 0, 0);
    srv.onTimeout(999);
    send(srv, Initial, 1, 999);
    ok(srv.onAckReceived(Initial, ackOf([1]), 1099));
    expect(srv.ptoCount).toBe(0);
  });

  it("client: arms the anti-deadlock PTO with nothing in flight until validated (§6.2.2.1)", () => {
    const ld = new LossDetector<Tok>({ isServer: false });
    expect(ld.peerCompletedAddressValidation()).toBe(false);
    send(ld, Initial, 0, 0);
    expect(ld.timerDeadline()).toBe(999);
    ok(ld.onAckReceived(Initial, ackOf([0]), 100)); // rtt 100, rttvar 50: nothing in flight
    // Anti-deadlock PTO starts from now: 100 + 100 + 4 * 50.
    expect(ld.timerDeadline()).toBe(400);
    expect(ld.onTimeout(400)).toEqual({
      kind: "probe",
      space: Initial,
      count: 1,
      antiDeadlock: true,
      alsoSpaces: [],
    });
    expect(ld.ptoCount).toBe(1);
    expect(ld.timerDeadline()).toBe(400 + 600);
    ld.setHasHandshakeKeys();
    expect(ld.onTimeout(1000)).toMatchObject({ kind: "probe", space: Handshake, antiDeadlock: true });
    expect(ld.timerDeadline()).toBe(1000 + 1200);
    ld.discardSpace(Initial, 1000); // RFC 9001 §4.9.1: first Handshake packet sent
    expect(ld.ptoCount).toBe(0);
    expect(ld.timerDeadline()).toBe(1000 + 300);
    send(ld, Handshake, 0, 1000);
    expect(ld.timerDeadline()).toBe(1300);
    ok(ld.onAckReceived(Handshake, ackOf([0]), 1100));
    expect(ld.peerCompletedAddressValidation()).toBe(true);
    expect(ld.timerDeadline()).toBeUndefined();
  });

  it("client: 0-RTT in flight does not cancel the anti-deadlock PTO (§6.2.2.1)", () => {
    const ld = new LossDetector<Tok>({ isServer: false });
    send(ld, Initial, 0, 0);
    send(ld, App, 0, 0);
    ok(ld.onAckReceived(Initial, ackOf([0]), 100));
    expect(ld.timerDeadline()).toBe(400);
  });

  it("discarding a space removes its bytes from flight and resets its timers (§6.4, A.11)", () => {
    const ld = new LossDetector<Tok>({ isServer: true });
    send(ld, Initial, 0, 0, { size: 1200 });
    send(ld, Initial, 1, 1, { size: 1000 });
    send(ld, Initial, 2, 2, { ackEliciting: false, inFlight: false, size: 50 });
    send(ld, Handshake, 0, 3, { size: 700 });
    ld.onTimeout(999);
    expect(ld.bytesInFlight()).toBe(2900);
    const dropped = ld.discardSpace(Initial, 1000);
    expect(tokens(dropped)).toEqual(["0:0", "0:1", "0:2"]);
    expect(ld.bytesInFlight()).toBe(700);
    expect(ld.ptoCount).toBe(0);
    expect(ld.timerDeadline()).toBe(3 + 999);
    expect(() => send(ld, Initial, 3, 1001)).toThrow();
    expect(() => ld.discardSpace(App, 0)).toThrow();
  });

  it("resets everything on Retry and hands back every outstanding packet (§6.3)", () => {
    const ld = new LossDetector<Tok>({ isServer: false });
    send(ld, Initial, 0, 0);
    send(ld, App, 0, 0);
    const out = ld.onRetry();
    expect(out.map((o) => [o.space, tokens(o.packets)])).toEqual([
      [Initial, ["0:0"]],
      [App, ["2:0"]],
    ]);
    expect(ld.bytesInFlight()).toBe(0);
    expect(ld.timerDeadline()).toBeUndefined();
    expect(ld.largestSent(Initial)).toBe(0); // packet numbers keep increasing
    send(ld, Initial, 1, 50);
    expect(ld.timerDeadline()).toBe(50 + 999);
  });
});

describe("LossDetector: congestion signals (RFC 9002 §7, B)", () => {
  /** A confirmed server with one RTT sample of 10 ms taken at t = 10: PTO(+25) = 10 + 20 + 25. */
  function sampled(): LossDetector<Tok> {
    const ld = confirmedServer();
    send(ld, App, 0, 0);
    ok(ld.onAckReceived(App, ackOf([0]), 10));
    return ld;
  }

  it("establishes persistent congestion over more than 3 * PTO of losses (§7.6)", () => {
    const ld = sampled();
    const cc = ld.cc as NewReno;
    // This ACK's sample (10 ms) leaves smoothed_rtt 10 and rttvar 3.75, so the persistent
    // congestion duration is (10 + max(4 * 3.75, 1) + max_ack_delay 25) * 3 = 150 (§7.6.1).
    send(ld, App, 1, 20);
    send(ld, App, 2, 100);
    send(ld, App, 3, 171); // 171 - 20 = 151 > 150
    send(ld, App, 4, 400);
    const r = ok(ld.onAckReceived(App, ackOf([4]), 410));
    expect(tokens(r.lost)).toEqual(["2:1", "2:2", "2:3"]);
    expect(r.persistentCongestion).toBe(true);
    // Collapsed to kMinimumWindow 2400, then B.5 grows it in slow start by the newly acked
    // packet 4 (sent after recovery ended): 2400 + 1200.
    expect(cc.window()).toBe(3600);
    expect(cc.ssthresh).toBe(6000);
    expect(cc.state).toBe("slow-start");
    expect(ld.rtt.minRtt).toBe(10);
  });

  it("follows the §7.6.3 example: losses across two PTOs establish persistent congestion", () => {
    const ld = confirmedServer();
    ld.setPeerTransportParameters({ maxAckDelay: 0 });
    send(ld, App, 0, 0);
    ok(ld.onAckReceived(App, ackOf([0]), 90)); // rtt 90, rttvar 45: PTO 270
    for (let pn = 1; pn <= 6; pn++) send(ld, App, pn, pn * 100);
    expect(ld.timerDeadline()).toBe(600 + 270);
    expect(ld.onTimeout(870)).toMatchObject({ kind: "probe", space: App, count: 2 });
    send(ld, App, 7, 870); // PTO 1
    expect(ld.timerDeadline()).toBe(870 + 540);
    expect(ld.onTimeout(1410)).toMatchObject({ kind: "probe", space: App });
    send(ld, App, 8, 1410); // PTO 2
    expect(ld.timerDeadline()).toBe(1410 + 1080);
    // ACK of the second probe: rtt 90, rttvar 33.75, so the persistent congestion duration is
    // (90 + 135 + 0) * 3 = 675, less than the 770 between lost packets 1 (t=100) and 7 (t=870).
    const r = ok(ld.onAckReceived(App, ackOf([8]), 1500));
    expect(tokens(r.lost)).toEqual(["2:1", "2:2", "2:3", "2:4", "2:5", "2:6", "2:7"]);
    expect(r.persistentCongestion).toBe(true);
    expect(ld.ptoCount).toBe(0);
    expect(ld.timerDeadline()).toBeUndefined();
    expect(ld.bytesInFlight()).toBe(0);
    // 12000 -> 6000 (loss) -> 2400 (persistent congestion) -> + 1200 for packet 8 (slow start).
    expect(ld.cc.window()).toBe(3600);
  });

  it("does not establish it at exactly the duration, nor across an acknowledged packet", () => {
    const ld = sampled();
    send(ld, App, 1, 20);
    send(ld, App, 2, 100);
    send(ld, App, 3, 170); // exactly 150: not more
    send(ld, App, 4, 400);
    const r = ok(ld.onAckReceived(App, ackOf([4]), 410));
    expect(r.persistentCongestion).toBe(false);
    expect(ld.cc.window()).toBe(6000);

    const gap = sampled();
    send(gap, App, 1, 20);
    send(gap, App, 2, 100);
    send(gap, App, 3, 300);
    send(gap, App, 4, 400);
    ok(gap.onAckReceived(App, ackOf([2]), 110)); // 2 acknowledged between 1 and 3
    const r2 = ok(gap.onAckReceived(App, ackOf([4]), 410));
    expect(tokens(r2.lost)).toEqual(["2:3"]);
    expect(r2.persistentCongestion).toBe(false);
  });

  it("leaves PMTU probes (ack-eliciting, not in flight) out of it (RFC 9000 §14.4)", () => {
    const ld = sampled();
    // Packet 1 is a probe lost more than the duration (150) before data packet 3: only 2 and 3
    // count, 100 ms apart, so no persistent congestion (with 1 it would be, as above).
    send(ld, App, 1, 20, { size: 16384, inFlight: false });
    send(ld, App, 2, 100);
    send(ld, App, 3, 200);
    send(ld, App, 4, 400);
    const r = ok(ld.onAckReceived(App, ackOf([4]), 410));
    expect(tokens(r.lost)).toEqual(["2:1", "2:2", "2:3"]);
    expect(r.persistentCongestion).toBe(false);
    expect(ld.cc.window()).toBe(6000); // one congestion event, for 2 and 3
    expect(ld.bytesInFlight()).toBe(0);

    // Probes alone: no congestion event at all.
    const probes = sampled();
    send(probes, App, 1, 20, { size: 16384, inFlight: false });
    send(probes, App, 2, 200, { size: 16384, inFlight: false });
    send(probes, App, 3, 400);
    const r2 = ok(probes.onAckReceived(App, ackOf([3]), 410));
    expect(tokens(r2.lost)).toEqual(["2:1", "2:2"]);
    expect(r2.persistentCongestion).toBe(false);
    expect(probes.cc.window()).toBe(12000); // unchanged (no growth either: §7.8, nothing in flight)
  });

  it("ignores packets sent before the first RTT sample (§7.6.2)", () => {
    const ld = confirmedServer();
    send(ld, App, 0, 0);
    send(ld, App, 1, 500);
    send(ld, App, 2, 1000);
    send(ld, App, 3, 1100);
    // First sample at 1110 (rtt 10): 0, 1, 2 were sent before it.
    const r = ok(ld.onAckReceived(App, ackOf([3]), 1110));
    expect(tokens(r.lost)).toEqual(["2:0", "2:1", "2:2"]);
    expect(r.persistentCongestion).toBe(false);
  });

  it("enters recovery once per round trip on losses (B.6, B.8)", () => {
    const ld = sampled();
    for (let pn = 1; pn <= 8; pn++) send(ld, App, pn, 20 + pn);
    const r = ok(ld.onAckReceived(App, ackOf([5]), 30)); // lost 1, 2 (packet threshold)
    expect(tokens(r.lost)).toEqual(["2:1", "2:2"]);
    expect(ld.cc.window()).toBe(6000);
    expect(ld.cc.inRecovery(28)).toBe(true);
    ok(ld.onAckReceived(App, ackOf([8]), 45)); // lost 3, 4 (sent before recovery): no new reduction
    expect(ld.cc.window()).toBe(6000);
  });

  it("treats an ECN-CE count increase as a congestion event (B.7)", () => {
    const ld = sampled();
    send(ld, App, 1, 20);
    send(ld, App, 2, 21);
    const r = ok(ld.onAckReceived(App, ackOf([1], 0, { ect0: 1, ect1: 0, ce: 1 }), 30));
    expect(r.ecnCongestion).toBe(true);
    expect(ld.cc.window()).toBe(6000);
    const r2 = ok(ld.onAckReceived(App, ackOf([1, 2], 0, { ect0: 2, ect1: 0, ce: 1 }), 31));
    expect(r2.ecnCongestion).toBe(false);
  });

  it("uses a congestion controller passed in", () => {
    const cc = new NewReno(1500);
    const ld = new LossDetector<Tok>({ isServer: true, cc });
    send(ld, Initial, 0, 0, { size: 1500 });
    expect(cc.bytesInFlight()).toBe(1500);
    expect(cc.window()).toBe(14720);
  });
});
