/**
 * Loss detection and the probe timeout, RFC 9002 §6 (pseudocode: Appendix A).
 *
 * One `LossDetector` per connection path holds the three packet number spaces' sent packets,
 * the RTT estimator and the congestion controller, and implements `OnPacketSent`,
 * `OnAckReceived`, `DetectAndRemoveLostPackets`, `SetLossDetectionTimer`,
 * `OnLossDetectionTimeout` and `OnPacketNumberSpaceDiscarded`. It is sans-IO: the single loss
 * detection timer is a number (`timerDeadline()`), and what the timer asks for is returned as a
 * value (`onTimeout(now)`), never done here.
 *
 * Packets carry recovery tokens (`T`) that this module never inspects; every sent packet's tokens
 * come back exactly once — in an `acked` list, a `lost` list, or from `discardSpace`/`onRetry` —
 * so the connection retransmits frames (data), not packets.
 *
 * Calling order for the connection:
 * 1. Once: `new LossDetector<Token>({ isServer })`; when the peer's transport parameters
 *    arrive, `setPeerTransportParameters({ maxAckDelay, ackDelayExponent })`.
 * 2. Sending: for an in-flight packet that is not a PTO probe, check `cc.canSend(size)` (and the
 *    pacer); after sending any packet, `onPacketSent(space, { pn, timeSent: now, size,
 *    ackEliciting, inFlight, tokens })`. A deliberately skipped packet number:
 *    `onPacketNumberSkipped(space, pn)`.
 * 3. Receiving an ACK frame in `space`: `onAckReceived(space, frame, now)`; a `TransportError`
 *    result closes the connection; otherwise route `acked[i].tokens` (delivered) and
 *    `lost[i].tokens` (retransmit) to their owners.
 * 4. Handshake progress: `setHasHandshakeKeys()`, `discardSpace(Initial | Handshake, now)`
 *    (RFC 9001 §4.9), `setHandshakeConfirmed(now)`; a server at its anti-amplification limit:
 *    `setAmplificationLimited(true/false, now)` (RFC 9002 §6.2.2.1, Appendix A.6).
 * 5. Timers: include `timerDeadline()` in the connection's next timeout; when it passes,
 *    `onTimeout(now)` says what to do: route lost tokens, or send probe packets (§6.2.4).
 */
import { TransportError, TransportErrorCode } from "../errors.js";
import { type CongestionController, NewReno, PERSISTENT_CONGESTION_THRESHOLD } from "./congestion.js";
import { GRANULARITY, RttEstimator } from "./rtt.js";
import { type SentPacket, SentPackets } from "./sent-packets.js";
import { PN_SPACES, PnSpace, pnSpaceName } from "./space.js";

/** kPacketThreshold, RFC 9002 §6.1.1. */
export const PACKET_THRESHOLD = 3;
/** kTimeThreshold, RFC 9002 §6.1.2, as an RTT multiplier. */
export const TIME_THRESHOLD = 9 / 8;
/** Default ack_delay_exponent, RFC 9000 §18.2. */
export const DEFAULT_ACK_DELAY_EXPONENT = 3;
/** Default max_ack_delay (ms), RFC 9000 §18.2. */
export const DEFAULT_PEER_MAX_ACK_DELAY = 25;
/** How many deliberately skipped packet numbers per space are remembered (RFC 9000 §21.4). */
const MAX_SKIPPED = 16;

/**
 * The parts of a received ACK frame loss detection reads, structurally compatible with frames.ts
 * (RFC 9000 §19.3): `ackDelay` is raw (scaled by the peer's ack_delay_exponent), `ranges` are
 * `[smallest, largest]`, descending, and the first ends at `largest`.
 */
export interface AckInput {
  /** Largest Acknowledged. */
  readonly largest: number;
  /** ACK Delay as encoded on the wire. */
  readonly ackDelay: number;
  /** Acknowledged ranges, largest first. */
  readonly ranges: ReadonlyArray<readonly [smallest: number, largest: number]>;
  /** ECN counts (frame type 0x03). */
  readonly ecn?: { readonly ect0: number; readonly ect1: number; readonly ce: number };
}

/** What processing an ACK frame produced (RFC 9002 Appendix A.7). */
export interface AckResult<T> {
  /** Packets newly acknowledged, ascending packet number: deliver their tokens. */
  acked: SentPacket<T>[];
  /** Packets newly declared lost, ascending packet number: retransmit their tokens' frames. */
  lost: SentPacket<T>[];
  /** Whether the ACK produced an RTT sample (§5.1). */
  rttSampled: boolean;
  /** Whether an ECN-CE increase signalled congestion (§7.1, Appendix B.7). */
  ecnCongestion: boolean;
  /** Whether persistent congestion was established (§7.6.2). */
  persistentCongestion: boolean;
}

/** What the loss detection timer asks for (RFC 9002 Appendix A.9). */
export type TimeoutAction<T> =
  /** Nothing to do: the timer had not expired, was not armed, or was re-armed later. */
  | { kind: "none" }
  /** Time-threshold loss (§6.1.2): retransmit the frames of these packets. */
  | { kind: "lost"; space: PnSpace; lost: SentPacket<T>[]; persistentCongestion: boolean }
  /**
   * PTO (§6.2.4): send `count` ack-eliciting packets in `space`, not blocked by congestion
   * control (§7.5): new data if any, else data still in flight (`unacked(space)`), else PING.
   * `alsoSpaces` lists other spaces with ack-eliciting data in flight, which SHOULD get a
   * probe coalesced into the same datagrams. `antiDeadlock` (§6.2.2.1): a client not yet
   * known to be validated sends one ack-eliciting Handshake packet, or, without Handshake keys,
   * an Initial packet in a datagram padded to at least 1200 bytes.
   */
  | { kind: "probe"; space: PnSpace; count: 1 | 2; antiDeadlock: boolean; alsoSpaces: PnSpace[] };

/** Options of a {@link LossDetector}. */
export interface LossDetectorOptions {
  /** Servers consider the peer's address validated from the start (Appendix A.8). */
  isServer: boolean;
  /** The path's RTT estimator; a fresh one (initial RTT 333 ms) by default. */
  rtt?: RttEstimator;
  /** The path's congestion controller; NewReno with 1200-byte datagrams by default. */
  cc?: CongestionController;
  /** The peer's max_ack_delay (ms), if already known; default 25. */
  peerMaxAckDelay?: number;
  /** The peer's ack_delay_exponent, if already known; default 3. */
  peerAckDelayExponent?: number;
  /** kPacketThreshold; default 3 (§6.1.1 says SHOULD NOT be below 3). */
  packetThreshold?: number;
  /** kTimeThreshold; default 9/8 (§6.1.2). */
  timeThreshold?: number;
}

/** Where and when a timer of one kind would fire. */
interface SpaceTime {
  time: number;
  space: PnSpace;
}

/**
 * RFC 9002 loss detection and PTO across the three packet number spaces, generic over the
 * connection's recovery-token type `T`. See the module comment for the calling order.
 *
 * @example
 * const loss = new LossDetector<Token>({ isServer: false });
 * loss.onPacketSent(PnSpace.Initial, { pn: 0, timeSent: now, size: 1200, ackEliciting: true, inFlight: true, tokens });
 * const r = loss.onAckReceived(PnSpace.Initial, ackFrame, now);
 * if (r instanceof TransportError) close(r); else { for (const p of r.lost) retransmit(p.tokens); }
 */
export class LossDetector<T> {
  /** RTT estimator of the path (§5). */
  readonly rtt: RttEstimator;
  /** Congestion controller of the path (§7). */
  readonly cc: CongestionController;
  /** Whether this endpoint is the server. */
  readonly isServer: boolean;
  private readonly packetThreshold: number;
  private readonly timeThreshold: number;
  private peerMaxAckDelay: number;
  private peerAckDelayExponent: number;

  private readonly sent: SentPackets<T>[] = [
    new SentPackets<T>(),
    new SentPackets<T>(),
    new SentPackets<T>(),
  ];
  private readonly largestAckedPn: Array<number | undefined> = [undefined, undefined, undefined];
  private readonly lossTime: Array<number | undefined> = [undefined, undefined, undefined];
  private readonly lastAckElicitingTime: Array<number | undefined> = [undefined, undefined, undefined];
  private readonly ecnCe: number[] = [0, 0, 0];
  private readonly skipped: number[][] = [[], [], []];
  private readonly discarded: boolean[] = [false, false, false];

  private ptoCountValue = 0;
  private timer: number | undefined = undefined;
  private handshakeConfirmedFlag = false;
  private hasHandshakeKeysFlag = false;
  private receivedHandshakeAck = false;
  private amplificationLimited = false;

  constructor(options: LossDetectorOptions) {
    this.isServer = options.isServer;
    this.rtt = options.rtt ?? new RttEstimator();
    this.cc = options.cc ?? new NewReno();
    this.peerMaxAckDelay = options.peerMaxAckDelay ?? DEFAULT_PEER_MAX_ACK_DELAY;
    this.peerAckDelayExponent = options.peerAckDelayExponent ?? DEFAULT_ACK_DELAY_EXPONENT;
    this.packetThreshold = options.packetThreshold ?? PACKET_THRESHOLD;
    this.timeThreshold = options.timeThreshold ?? TIME_THRESHOLD;
  }

  // ---------------------------------------------------------------- getters

  /** pto_count: consecutive PTOs without an acknowledgment (§6.2.1). */
  get ptoCount(): number {
    return this.ptoCountValue;
  }

  /** Whether the handshake is confirmed (RFC 9001 §4.1.2), as last told. */
  get handshakeConfirmed(): boolean {
    return this.handshakeConfirmedFlag;
  }

  /** When the loss detection timer fires (ms), or undefined when it is not armed (Appendix A.8). */
  timerDeadline(): number | undefined {
    return this.timer;
  }

  /** The largest packet number acknowledged in `space`, or undefined (Appendix A.3). */
  largestAcked(space: PnSpace): number | undefined {
    return this.largestAckedPn[space];
  }

  /** The largest packet number sent in `space` (-1 before any). */
  largestSent(space: PnSpace): number {
    return this.sent[space].largestSent;
  }

  /** Ack-eliciting packets in flight in `space`, or in all spaces when omitted. */
  ackElicitingInFlight(space?: PnSpace): number {
    if (space !== undefined) return this.sent[space].ackElicitingInFlight;
    return (
      this.sent[0].ackElicitingInFlight +
      this.sent[1].ackElicitingInFlight +
      this.sent[2].ackElicitingInFlight
    );
  }

  /** bytes_in_flight across spaces (the congestion controller's count, Appendix B.2). */
  bytesInFlight(): number {
    return this.cc.bytesInFlight();
  }

  /**
   * The packets of `space` neither acknowledged nor lost yet, ascending (a snapshot). A PTO probe
   * may resend their tokens' data when there is no new data (§6.2.4); those packets still return
   * their own tokens later, so token owners must tolerate a range acknowledged twice.
   */
  unacked(space: PnSpace): SentPacket<T>[] {
    return this.sent[space].packets();
  }

  /**
   * The PTO period without backoff, including max_ack_delay (§6.2.1): what the idle timeout
   * (RFC 9000 §10.1, at least 3 * PTO) and the closing/draining period (§10.2) are based on.
   */
  ptoPeriod(): number {
    return this.rtt.pto(this.peerMaxAckDelay, true);
  }

  /**
   * Appendix A.8 `PeerCompletedAddressValidation`: always true at a server; at a client, once a
   * Handshake ACK was received or the handshake is confirmed.
   */
  peerCompletedAddressValidation(): boolean {
    return this.isServer || this.receivedHandshakeAck || this.handshakeConfirmedFlag;
  }

  // ---------------------------------------------------------------- inputs

  /** The peer's max_ack_delay (ms) and ack_delay_exponent transport parameters (RFC 9000 §18.2). */
  setPeerTransportParameters(params: { maxAckDelay?: number; ackDelayExponent?: number }): void {
    if (params.maxAckDelay !== undefined) this.peerMaxAckDelay = params.maxAckDelay;
    if (params.ackDelayExponent !== undefined) this.peerAckDelayExponent = params.ackDelayExponent;
  }

  /** Handshake keys are available: a client's anti-deadlock probe becomes a Handshake packet (§6.2.2.1). */
  setHasHandshakeKeys(): void {
    this.hasHandshakeKeysFlag = true;
  }

  /** The handshake is confirmed (RFC 9001 §4.1.2): Application Data PTO may now be armed (§6.2.1). */
  setHandshakeConfirmed(now: number): void {
    if (this.handshakeConfirmedFlag) return;
    this.handshakeConfirmedFlag = true;
    this.setLossDetectionTimer(now);
  }

  /**
   * A server reached (true) or left (false) its anti-amplification limit (RFC 9000 §8.1). While
   * limited the PTO is not armed (§6.2.2.1); on leaving, the timer is re-armed and, if it is then
   * already due, the caller runs `onTimeout(now)` (Appendix A.6).
   */
  setAmplificationLimited(limited: boolean, now: number): void {
    if (this.amplificationLimited === limited) return;
    this.amplificationLimited = limited;
    this.setLossDetectionTimer(now);
  }

  // ---------------------------------------------------------------- events

  /**
   * Appendix A.5 `OnPacketSent`: records any sent packet (ACK-only ones too, so that their
   * acknowledgment is recognised). `packet.timeSent` is now; its number must exceed every earlier
   * one in the space.
   */
  onPacketSent(space: PnSpace, packet: SentPacket<T>): void {
    if (this.discarded[space]) throw new Error(`packet sent in discarded ${pnSpaceName(space)} space`);
    this.sent[space].push(packet);
    if (packet.inFlight) {
      if (packet.ackEliciting) this.lastAckElicitingTime[space] = packet.timeSent;
      this.cc.onPacketSent(packet.timeSent, packet.size);
      this.setLossDetectionTimer(packet.timeSent);
    }
  }

  /**
   * A packet number was deliberately not used (RFC 9000 §21.4, to detect optimistic ACKs); an
   * ACK covering it is a PROTOCOL_VIOLATION. Call before sending the next packet of the space.
   */
  onPacketNumberSkipped(space: PnSpace, pn: number): void {
    const list = this.skipped[space];
    list.push(pn);
    if (list.length > MAX_SKIPPED) list.shift();
  }

  /**
   * Appendix A.7 `OnAckReceived` for an ACK frame received in `space` at `now`.
   *
   * Returns a `TransportError` without changing any state when the frame acknowledges a packet
   * number never sent (PROTOCOL_VIOLATION, RFC 9000 §13.1) or its ranges are malformed
   * (FRAME_ENCODING_ERROR). Otherwise: newly acknowledged packets are removed; an RTT sample is
   * taken if the largest acknowledged is newly acknowledged and an ack-eliciting packet was newly
   * acknowledged (§5.1; the ack delay is ignored for Initial, §5.3, and capped by max_ack_delay
   * after confirmation); ECN-CE increases signal congestion (Appendix B.7); packet- and
   * time-threshold loss runs (§6.1); the congestion controller learns of losses then acks; the
   * PTO backoff resets unless a client is unsure the server validated its address (§6.2.1).
   */
  onAckReceived(space: PnSpace, ack: AckInput, now: number): AckResult<T> | TransportError {
    const invalid = this.validateAck(space, ack);
    if (invalid !== undefined) return invalid;

    const wasValidated = this.peerCompletedAddressValidation();
    if (space === PnSpace.Handshake) this.receivedHandshakeAck = true;
    const prevLargest = this.largestAckedPn[space];
    this.largestAckedPn[space] = prevLargest === undefined ? ack.largest : Math.max(prevLargest, ack.largest);

    const result: AckResult<T> = {
      acked: [],
      lost: [],
      rttSampled: false,
      ecnCongestion: false,
      persistentCongestion: false,
    };
    const sent = this.sent[space];
    for (let i = ack.ranges.length - 1; i >= 0; i--) {
      const [smallest, largest] = ack.ranges[i];
      for (const p of sent.removeRange(smallest, largest)) result.acked.push(p);
    }
    if (result.acked.length === 0) {
      if (!wasValidated && this.peerCompletedAddressValidation()) this.setLossDetectionTimer(now);
      return result;
    }

    // §5.1: sample only when the largest acknowledged is newly acknowledged and ack-eliciting
    // packets were newly acknowledged.
    const newest = result.acked[result.acked.length - 1];
    if (newest.pn === ack.largest && result.acked.some((p) => p.ackEliciting)) {
      const ackDelay = space === PnSpace.Initial ? 0 : (ack.ackDelay * 2 ** this.peerAckDelayExponent) / 1000;
      const cap = this.handshakeConfirmedFlag ? this.peerMaxAckDelay : undefined;
      this.rtt.update(now, now - newest.timeSent, ackDelay, cap);
      result.rttSampled = true;
    }

    // Appendix B.7 `ProcessECN`.
    if (ack.ecn !== undefined && ack.ecn.ce > this.ecnCe[space]) {
      this.ecnCe[space] = ack.ecn.ce;
      this.cc.onCongestionEvent(now, newest.timeSent);
      result.ecnCongestion = true;
    }

    result.lost = this.detectAndRemoveLostPackets(space, now);
    if (result.lost.length > 0) result.persistentCongestion = this.onPacketsLost(now, result.lost);
    this.cc.onPacketsAcked(now, result.acked);

    if (this.peerCompletedAddressValidation()) this.ptoCountValue = 0;
    this.setLossDetectionTimer(now);
    return result;
  }

  /**
   * Appendix A.9 `OnLossDetectionTimeout`, to call when `now >= timerDeadline()`. Returns
   * `{ kind: "none" }` if the timer is not armed or not yet due.
   */
  onTimeout(now: number): TimeoutAction<T> {
    if (this.timer === undefined || now < this.timer) return { kind: "none" };

    const loss = this.getLossTimeAndSpace();
    if (loss !== undefined) {
      // §6.1.2 time-threshold loss. Appendix A.9 asserts something is lost, but loss_time was
      // computed with the RTT of its day: if the RTT grew since (an ACK in another space), the
      // packet is not lost yet and the timer simply moves to its new loss time.
      const lost = this.detectAndRemoveLostPackets(loss.space, now);
      const persistentCongestion = lost.length > 0 && this.onPacketsLost(now, lost);
      this.setLossDetectionTimer(now);
      if (lost.length === 0) return { kind: "none" };
      return { kind: "lost", space: loss.space, lost, persistentCongestion };
    }

    let action: TimeoutAction<T>;
    if (this.needsAntiDeadlockProbe()) {
      // §6.2.2.1: the client unblocks a server that may be at its amplification limit.
      const space = this.hasHandshakeKeysFlag ? PnSpace.Handshake : PnSpace.Initial;
      action = { kind: "probe", space, count: 1, antiDeadlock: true, alsoSpaces: [] };
    } else {
      const pto = this.getPtoTimeAndSpace(now);
      if (pto === undefined) {
        this.timer = undefined;
        return { kind: "none" };
      }
      const alsoSpaces = PN_SPACES.filter((s) => s !== pto.space && this.sent[s].ackElicitingInFlight > 0);
      action = { kind: "probe", space: pto.space, count: 2, antiDeadlock: false, alsoSpaces };
    }
    this.ptoCountValue++;
    this.setLossDetectionTimer(now);
    return action;
  }

  /**
   * Appendix A.11 `OnPacketNumberSpaceDiscarded` (§6.4): Initial or Handshake keys were
   * discarded. The space's packets leave bytes_in_flight without a congestion signal, its timers
   * are reset, and the PTO backoff resets. Returns the dropped packets so their tokens' owners
   * can let go (their data is never retransmitted in this space).
   */
  discardSpace(space: PnSpace, now: number): SentPacket<T>[] {
    if (space === PnSpace.ApplicationData) throw new Error("the Application Data space is never discarded");
    const dropped = this.sent[space].clear();
    this.cc.onPacketsDiscarded(dropped);
    this.discarded[space] = true;
    this.lastAckElicitingTime[space] = undefined;
    this.lossTime[space] = undefined;
    this.ptoCountValue = 0;
    this.setLossDetectionTimer(now);
    return dropped;
  }

  /**
   * RFC 9002 §6.4: 0-RTT was rejected, so every packet still outstanding in `space` (Application
   * Data: until 1-RTT keys, only 0-RTT packets were sent there) was dropped by the server. They
   * leave bytes_in_flight without a congestion signal; returns them so their data is sent again.
   */
  discardPackets(space: PnSpace, now: number): SentPacket<T>[] {
    const dropped = this.sent[space].clear();
    this.cc.onPacketsDiscarded(dropped);
    this.lastAckElicitingTime[space] = undefined;
    this.lossTime[space] = undefined;
    this.setLossDetectionTimer(now);
    return dropped;
  }

  /**
   * RFC 9002 §6.3: a client that accepted a Retry resets congestion control and loss recovery
   * (the RTT estimator too; the caller MAY then seed it, `rtt.reset(measuredRtt)`). Packet
   * numbers keep increasing (RFC 9000 §17.2.5.3). Returns every outstanding packet, per space,
   * so their data (CRYPTO, 0-RTT STREAM) is sent again.
   */
  onRetry(): Array<{ space: PnSpace; packets: SentPacket<T>[] }> {
    const out: Array<{ space: PnSpace; packets: SentPacket<T>[] }> = [];
    for (const space of PN_SPACES) {
      const packets = this.sent[space].clear();
      if (packets.length > 0) out.push({ space, packets });
      this.largestAckedPn[space] = undefined;
      this.lossTime[space] = undefined;
      this.lastAckElicitingTime[space] = undefined;
      this.ecnCe[space] = 0;
    }
    this.rtt.reset();
    this.cc.reset();
    this.ptoCountValue = 0;
    this.timer = undefined;
    return out;
  }

  // ---------------------------------------------------------------- internals

  /** Checks an ACK frame before anything changes (RFC 9000 §13.1, §19.3.1). */
  private validateAck(space: PnSpace, ack: AckInput): TransportError | undefined {
    const frameType = ack.ecn !== undefined ? 0x03 : 0x02;
    const ranges = ack.ranges;
    if (ranges.length === 0 || ranges[0][1] !== ack.largest)
      return new TransportError(
        TransportErrorCode.FRAME_ENCODING_ERROR,
        "ACK ranges do not start at Largest Acknowledged",
        frameType,
      );
    let below = Number.POSITIVE_INFINITY;
    for (const [smallest, largest] of ranges) {
      if (!(smallest >= 0 && smallest <= largest && largest < below))
        return new TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, "malformed ACK ranges", frameType);
      below = smallest;
    }
    const largestSent = this.sent[space].largestSent;
    if (ack.largest > largestSent)
      return new TransportError(
        TransportErrorCode.PROTOCOL_VIOLATION,
        `ACK of packet ${ack.largest} never sent in the ${pnSpaceName(space)} space (largest sent ${largestSent})`,
        frameType,
      );
    for (const pn of this.skipped[space]) {
      if (ranges.some(([s, l]) => s <= pn && pn <= l))
        return new TransportError(
          TransportErrorCode.PROTOCOL_VIOLATION,
          `ACK of skipped packet number ${pn} in the ${pnSpaceName(space)} space`,
          frameType,
        );
    }
    return undefined;
  }

  /**
   * Appendix A.10 `DetectAndRemoveLostPackets`: packets at or below the largest acknowledged are
   * lost once kPacketThreshold later packets are acknowledged (§6.1.1) or they were sent
   * kTimeThreshold * max(smoothed_rtt, latest_rtt) ago, at least kGranularity (§6.1.2); the
   * others set loss_time. Compares `timeSent + lossDelay <= now` so that a timer set for
   * `timeSent + lossDelay` always finds its packet lost (no floating-point drift).
   */
  private detectAndRemoveLostPackets(space: PnSpace, now: number): SentPacket<T>[] {
    this.lossTime[space] = undefined;
    const largestAcked = this.largestAckedPn[space];
    if (largestAcked === undefined) return [];
    const lossDelay = Math.max(
      this.timeThreshold * Math.max(this.rtt.latestRtt, this.rtt.smoothedRtt),
      GRANULARITY,
    );
    let lossTime: number | undefined;
    const lost = this.sent[space].removeWhere(largestAcked, (p) => {
      const lostAt = p.timeSent + lossDelay;
      if (lostAt <= now || largestAcked >= p.pn + this.packetThreshold) return true;
      if (lossTime === undefined || lostAt < lossTime) lossTime = lostAt;
      return false;
    });
    this.lossTime[space] = lossTime;
    return lost;
  }

  /**
   * Appendix B.8 `OnPacketsLost`: tells the congestion controller, then checks for persistent
   * congestion (§7.6.2) among the lost packets of this space (the MAY of §7.6.2: state of the
   * acknowledged space only). Two ack-eliciting lost packets sent after the first RTT sample,
   * more than the persistent congestion duration (§7.6.1) apart, with consecutive packet numbers
   * all lost between them (so none of those was acknowledged), establish it.
   */
  private onPacketsLost(now: number, lost: readonly SentPacket<T>[]): boolean {
    this.cc.onPacketsLost(now, lost);
    const firstSample = this.rtt.firstSampleTime;
    if (firstSample === undefined) return false;
    const duration = this.rtt.pto(this.peerMaxAckDelay, true) * PERSISTENT_CONGESTION_THRESHOLD;
    let start: number | undefined;
    let prevPn: number | undefined;
    let persistent = false;
    for (const p of lost) {
      if (prevPn !== undefined && p.pn !== prevPn + 1) start = undefined; // a gap: something between was acknowledged
      prevPn = p.pn;
      // Not in flight: a PMTU probe, whose loss says the packet was too big, not that the path
      // is congested (RFC 9000 §14.4); it takes no part in the pair of §7.6.2.
      if (!p.ackEliciting || !p.inFlight || !(p.timeSent > firstSample)) continue;
      if (start === undefined) start = p.timeSent;
      else if (p.timeSent - start > duration) {
        persistent = true;
        break;
      }
    }
    if (persistent) {
      this.cc.onPersistentCongestion(now);
      this.rtt.onPersistentCongestion(); // §5.2
    }
    return persistent;
  }

  /** Appendix A.8 `GetLossTimeAndSpace`: the earliest loss_time. */
  private getLossTimeAndSpace(): SpaceTime | undefined {
    let best: SpaceTime | undefined;
    for (const space of PN_SPACES) {
      const t = this.lossTime[space];
      if (t !== undefined && (best === undefined || t < best.time)) best = { time: t, space };
    }
    return best;
  }

  /**
   * Whether the client must arm the anti-deadlock PTO (§6.2.2.1): the server may not have
   * validated its address yet and no Initial or Handshake ack-eliciting packet is in flight.
   * (Appendix A.8 tests "no ack-eliciting packets in flight" across all spaces; §6.2.2.1 says the
   * timer MUST be set "even if there are no packets in flight", so 0-RTT packets in flight do not
   * cancel it here.)
   */
  private needsAntiDeadlockProbe(): boolean {
    return (
      !this.peerCompletedAddressValidation() &&
      this.sent[PnSpace.Initial].ackElicitingInFlight === 0 &&
      this.sent[PnSpace.Handshake].ackElicitingInFlight === 0
    );
  }

  /** Appendix A.8 `GetPtoTimeAndSpace`; undefined stands for "infinite". */
  private getPtoTimeAndSpace(now: number): SpaceTime | undefined {
    const backoff = 2 ** this.ptoCountValue;
    let duration = this.rtt.pto(0, false) * backoff;
    if (this.needsAntiDeadlockProbe()) {
      // The anti-deadlock PTO starts from the current time.
      return { time: now + duration, space: this.hasHandshakeKeysFlag ? PnSpace.Handshake : PnSpace.Initial };
    }
    let best: SpaceTime | undefined;
    for (const space of PN_SPACES) {
      const last = this.lastAckElicitingTime[space];
      if (this.sent[space].ackElicitingInFlight === 0 || last === undefined) continue;
      if (space === PnSpace.ApplicationData) {
        if (!this.handshakeConfirmedFlag) break; // §6.2.1: not before handshake confirmation
        duration += this.peerMaxAckDelay * backoff;
      }
      const t = last + duration;
      if (best === undefined || t < best.time) best = { time: t, space };
    }
    return best;
  }

  /** Appendix A.8 `SetLossDetectionTimer`. */
  private setLossDetectionTimer(now: number): void {
    const loss = this.getLossTimeAndSpace();
    if (loss !== undefined) {
      this.timer = loss.time; // §6.2.1: no PTO while a time-threshold timer is set
      return;
    }
    if (this.amplificationLimited) {
      this.timer = undefined; // §6.2.2.1: nothing could be sent
      return;
    }
    if (this.ackElicitingInFlight() === 0 && this.peerCompletedAddressValidation()) {
      this.timer = undefined;
      return;
    }
    this.timer = this.getPtoTimeAndSpace(now)?.time;
  }
}
