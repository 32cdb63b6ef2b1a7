/**
 * `client.publisher(topic)`: a publisher that owns a data stream for one topic (multi-stream QUIC
 * modes), so a lost packet on this topic delays only this topic.
 */
import { MqttClosedHandleError } from "./errors.js";
import type { Payload, PublishOptions, PublishResult } from "./types.js";

/** What a publisher needs from its client. */
export interface PublisherOwner {
  /** Publishes on a logical stream. */
  publishOn(
    key: string,
    topic: string,
    payload: Payload,
    opts: PublishOptions,
  ): Promise<PublishResult | undefined>;
  /** Waits for the stream's in-flight messages, then ends it. */
  releaseStream(key: string): Promise<void>;
}

/**
 * Publishes to one topic on its own stream.
 *
 * ```ts
 * const pub = await client.publisher("hello/world");
 * await pub.publish("hello again!", { qos: 1 });
 * ```
 */
export class Publisher {
  private closing: Promise<void> | undefined;

  /** @internal */
  constructor(
    private readonly owner: PublisherOwner,
    /** The topic every message goes to. */
    readonly topic: string,
    /** @internal The logical stream. */
    readonly streamKey: string,
  ) {}

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /**
   * Publishes a message. Resolves when it is sent (QoS 0), acknowledged by PUBACK (QoS 1) or by
   * PUBCOMP (QoS 2); rejects with `MqttAckError` when the broker refuses it.
   */
  publish(payload: Payload, opts: PublishOptions = {}): Promise<PublishResult | undefined> {
    if (this.closing) return Promise.reject(new MqttClosedHandleError(`the publisher for ${this.topic}`));
    return this.owner.publishOn(this.streamKey, this.topic, payload, opts);
  }

  /** Waits for this publisher's messages to be acknowledged, then ends its stream. */
  close(): Promise<void> {
    this.closing ??= this.owner.releaseStream(this.streamKey);
    return this.closing;
  }
}
