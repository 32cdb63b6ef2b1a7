/**
 * Flow control, RFC 9000 §4: send-side credit granted by the peer and receive-side windows we
 * advertise, for one stream (MAX_STREAM_DATA) or the whole connection (MAX_DATA).
 *
 * Receive windows are auto-tuned in the manner of quic-go and quinn: an update is advertised
 * once the application has consumed a fraction (half by default) of the window, and if that
 * happened quickly compared with the round-trip time the window doubles, up to a maximum. The
 * window thereby tracks the bandwidth-delay product (§4.3) without committing memory to
 * connections that do not need it. Time and RTT are passed in: nothing here reads a clock.
 */
import { TransportError, TransportErrorCode } from "../errors.js";

/**
 * Credit the peer granted us (its MAX_DATA or MAX_STREAM_DATA, §4.1, §19.9, §19.10) and what we
 * used of it. Also decides when to send DATA_BLOCKED / STREAM_DATA_BLOCKED (§19.12, §19.13):
 * once per limit value.
 */
export class SendCredit {
  private _limit: number;
  private _used = 0;
  private blockedReportedAt = -1;
  private blockedPending = false;

  constructor(initialLimit = 0) {
    this._limit = initialLimit;
  }

  /** The largest offset (or connection total) we may send up to. */
  get limit(): number {
    return this._limit;
  }

  /** Credit used so far. */
  get used(): number {
    return this._used;
  }

  /** Credit left. */
  get available(): number {
    return Math.max(0, this._limit - this._used);
  }

  /**
   * A new limit from the peer. Limits only grow: a smaller value is ignored (§4.1, "A sender
   * MUST ignore any MAX_STREAM_DATA or MAX_DATA frames that do not increase flow control
   * limits"). Returns true when the limit increased.
   */
  update(limit: number): boolean {
    if (limit <= this._limit) return false;
    this._limit = limit;
    this.blockedPending = false;
    return true;
  }

  /** Records `n` bytes of new data sent. */
  consume(n: number): void {
    if (n > this.available) throw new RangeError(`flow credit overrun: ${n} > ${this.available}`);
    this._used += n;
  }

  /**
   * Notes that the sender has data but no credit. Returns true when a *_BLOCKED frame should be
   * queued now: the first time the sender is blocked at the current limit.
   */
  noteBlocked(): boolean {
    if (this.available > 0 || this.blockedReportedAt === this._limit) return false;
    this.blockedReportedAt = this._limit;
    this.blockedPending = true;
    return true;
  }

  /** True when a *_BLOCKED frame is due (and we are still blocked). */
  get hasBlockedPending(): boolean {
    return this.blockedPending && this.available === 0;
  }

  /** The limit to put in a *_BLOCKED frame if one is due and we are still blocked; clears it. */
  pollBlocked(): number | undefined {
    if (!this.blockedPending) return undefined;
    this.blockedPending = false;
    return this.available === 0 ? this._limit : undefined;
  }

  /** A *_BLOCKED frame carrying `limit` was lost: resend it when still blocked at that limit. */
  onBlockedLost(limit: number): boolean {
    if (limit !== this._limit || this.available > 0) return false;
    this.blockedPending = true;
    return true;
  }
}

/** Options of a `RecvWindow`. */
export interface RecvWindowOptions {
  /** The window advertised in the transport parameters (initial_max_data / _stream_data_*). */
  initialWindow: number;
  /** Largest the window may grow to by auto-tuning (defaults to `initialWindow`: no growth). */
  maxWindow?: number;
  /**
   * Advertise a new limit once the credit left is at most this fraction of the window, i.e.
   * once `1 - fraction` of it was consumed. Default 0.5.
   */
  updateFraction?: number;
  /** Frame type named in FLOW_CONTROL_ERROR (STREAM 0x08 or RESET_STREAM 0x04). */
  frameType?: number;
}

/**
 * Auto-tuning threshold, as in quic-go: grow the window when the bytes consumed in an epoch
 * (since the previous update) were consumed in less than `GROW_RTTS * fraction * rtt`, i.e. when
 * the whole window would last less than `GROW_RTTS` RTTs at the observed rate. With updates at
 * half the window that means "half the window read in under two RTTs".
 */
const GROW_RTTS = 4;

/**
 * A receive window we advertise to the peer: the limit (largest offset or connection total the
 * peer may send), checks of incoming data against it (FLOW_CONTROL_ERROR, §4.1), and the
 * decision to advertise a larger one with MAX_DATA / MAX_STREAM_DATA.
 */
export class RecvWindow {
  private _window: number;
  private readonly _maxWindow: number;
  private readonly updateFraction: number;
  private readonly frameType: number;
  private _limit: number;
  private _received = 0;
  private _consumed = 0;
  private updatePending = false;
  private epochStart: number | undefined;
  private epochOffset = 0;

  constructor(options: RecvWindowOptions) {
    this._window = options.initialWindow;
    this._maxWindow = Math.max(options.maxWindow ?? options.initialWindow, options.initialWindow);
    this.updateFraction = options.updateFraction ?? 0.5;
    this.frameType = options.frameType ?? 0x08;
    this._limit = options.initialWindow;
  }

  /** The limit advertised so far (the largest one sent, or the initial one). */
  get limit(): number {
    return this._limit;
  }

  /** The current window size (grows by auto-tuning). */
  get window(): number {
    return this._window;
  }

  /** The auto-tuning ceiling. */
  get maxWindow(): number {
    return this._maxWindow;
  }

  /** Largest offset (stream) or total (connection) received: flow credit the peer used. */
  get received(): number {
    return this._received;
  }

  /** Bytes the application consumed (read or discarded). */
  get consumed(): number {
    return this._consumed;
  }

  /** True when a larger limit is waiting to be sent. */
  get hasUpdate(): boolean {
    return this.updatePending;
  }

  /**
   * The peer's data now reaches `offset` (stream: largest offset received; connection: sum over
   * streams). Throws FLOW_CONTROL_ERROR beyond the advertised limit (§4.1, §19.9, §19.10).
   */
  receiveUpTo(offset: number, frameType = this.frameType): void {
    if (offset > this._limit)
      throw new TransportError(
        TransportErrorCode.FLOW_CONTROL_ERROR,
        `peer sent up to ${offset} bytes, beyond the advertised limit of ${this._limit}`,
        frameType,
      );
    if (offset > this._received) this._received = offset;
  }

  /** `n` more bytes were received (connection level); see `receiveUpTo`. */
  receive(n: number, frameType = this.frameType): void {
    if (n > 0) this.receiveUpTo(this._received + n, frameType);
  }

  /**
   * The application consumed `n` bytes at time `now` (ms) with smoothed RTT `rtt` (ms; 0 when
   * unknown disables growth). When the credit left falls to the update threshold, the window is
   * auto-tuned and a new limit becomes pending (`pollUpdate`). Returns true when the window
   * grew (the connection window can then be kept ahead of the stream windows).
   */
  consume(n: number, now: number, rtt: number): boolean {
    if (n <= 0) return false;
    this._consumed += n;
    if (this.epochStart === undefined) {
      // The first epoch starts after the first read: a large first read says nothing about the
      // rate (the bytes may have waited a long time), so it must not count as "instant".
      this.epochStart = now;
      this.epochOffset = this._consumed;
    }
    if (this._limit - this._consumed > this._window * this.updateFraction) return false;
    const grew = this.autotune(now, rtt);
    const next = this._consumed + this._window;
    if (next > this._limit) {
      this._limit = next;
      this.updatePending = true;
    }
    this.epochStart = now;
    this.epochOffset = this._consumed;
    return grew;
  }

  private autotune(now: number, rtt: number): boolean {
    if (rtt <= 0 || this._window >= this._maxWindow || this.epochStart === undefined) return false;
    const fraction = (this._consumed - this.epochOffset) / this._window;
    const elapsed = now - this.epochStart;
    if (elapsed >= GROW_RTTS * fraction * rtt) return false;
    this._window = Math.min(this._window * 2, this._maxWindow);
    return true;
  }

  /**
   * Grows the window to at least `size` (capped by the maximum) without waiting for an epoch;
   * used to keep the connection window ahead of a stream window that grew (quic-go keeps it at
   * 1.5x). Takes effect at the next update.
   */
  ensureMinimumWindow(size: number): void {
    const target = Math.min(size, this._maxWindow);
    if (target > this._window) this._window = target;
  }

  /** The new limit to advertise (MAX_DATA / MAX_STREAM_DATA) if one is pending; clears it. */
  pollUpdate(): number | undefined {
    if (!this.updatePending) return undefined;
    this.updatePending = false;
    return this._limit;
  }

  /**
   * A MAX_DATA / MAX_STREAM_DATA carrying `limit` was lost. Only the latest value is resent:
   * returns true (and makes it pending again) when `limit` is still the current one.
   */
  onUpdateLost(limit: number): boolean {
    if (limit !== this._limit) return false;
    this.updatePending = true;
    return true;
  }

  /** Drops a pending update (e.g. the stream's final size is known: no more credit needed). */
  cancelUpdate(): void {
    this.updatePending = false;
  }
}
