/**
 * `client.subscriber(filter)`: a subscription with its own data stream (multi-stream QUIC modes),
 * consumed as an async iterator. Leaving the loop (`break`, `return`, an exception) unsubscribes
 * and ends the stream.
 */
import type { SubscriptionSink } from "./subscriptions.js";
import type { MqttMessage } from "./types.js";

/** What a subscriber needs from its client. */
export interface SubscriberOwner {
  /** Unsubscribes the subscriber's filter and ends its stream. */
  closeSubscriber(subscriber: Subscriber): Promise<void>;
  /** Stops (or restarts) reading the subscriber's own stream. */
  flowControl(subscriber: Subscriber, paused: boolean): void;
}

/**
 * A subscription as an async iterable of messages.
 *
 * ```ts
 * for await (const msg of await client.subscriber("hello/#", { qos: 1 })) console.log(msg.topic);
 * ```
 */
export class Subscriber implements AsyncIterableIterator<MqttMessage>, SubscriptionSink {
  private readonly queue: MqttMessage[] = [];
  private readonly waiters: {
    resolve: (r: IteratorResult<MqttMessage>) => void;
    reject: (e: Error) => void;
  }[] = [];
  private finished = false;
  private error: Error | undefined;
  private closing: Promise<void> | undefined;
  private paused = false;
  /** The QoS the broker granted (set when the SUBACK arrives). */
  grantedQos = 0;

  /** @internal */
  constructor(
    private readonly owner: SubscriberOwner,
    /** The topic filter. */
    readonly filter: string,
    /**
     * Buffered messages at which the subscriber's stream stops being read, until the consumer has
     * taken half of them (QUIC multi-stream modes; other subscriptions keep flowing).
     */
    readonly highWaterMark = 1000,
  ) {}

  /** Messages received and not yet consumed. */
  get buffered(): number {
    return this.queue.length;
  }

  /** Whether the subscription has ended (closed, failed, or the client ended). */
  get closed(): boolean {
    return this.finished;
  }

  /** @internal A delivery. */
  push(message: MqttMessage): void {
    if (this.finished) return;
    const w = this.waiters.shift();
    if (w) {
      w.resolve({ value: message, done: false });
      return;
    }
    this.queue.push(message);
    if (this.queue.length >= this.highWaterMark) {
      // Repeated on purpose: after a reconnect the stream is a new one and must be paused again.
      this.paused = true;
      this.owner.flowControl(this, true);
    }
  }

  private relieve(): void {
    if (this.paused && this.queue.length <= this.highWaterMark / 2) {
      this.paused = false;
      this.owner.flowControl(this, false);
    }
  }

  /** @internal The subscription failed: pending and later `next()` calls reject with `err`. */
  fail(err: Error): void {
    if (this.finished) return;
    this.error = err;
    this.finish();
  }

  /** @internal The client ended: iteration finishes after the buffered messages. */
  end(): void {
    this.finish();
  }

  private finish(): void {
    this.finished = true;
    for (const w of this.waiters.splice(0)) {
      if (this.error) w.reject(this.error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  /** The next message (waits for one). */
  next(): Promise<IteratorResult<MqttMessage>> {
    const m = this.queue.shift();
    if (m) {
      this.relieve();
      return Promise.resolve({ value: m, done: false });
    }
    if (this.error) return Promise.reject(this.error);
    if (this.finished) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Ends iteration: unsubscribes and ends the stream (called by `break` in `for await`). */
  async return(): Promise<IteratorResult<MqttMessage>> {
    await this.close();
    return { value: undefined, done: true };
  }

  /**
   * Unsubscribes (UNSUBSCRIBE on the subscriber's stream, waiting for UNSUBACK), ends the stream and
   * the iteration. Messages already buffered are dropped. Safe to call more than once.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.queue.length = 0;
      this.relieve();
      this.finish();
      this.closing = this.owner.closeSubscriber(this);
    }
    return this.closing;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<MqttMessage> {
    return this;
  }
}
