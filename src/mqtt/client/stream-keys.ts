/**
 * Which logical stream each operation uses, per stream mode (see `StreamMode`). A key names a
 * data stream of the current link; the link maps every key to the control stream in single-stream
 * mode and over TCP.
 */
import type { StreamMode } from "./options.js";

/** See the module comment. */
export class StreamKeys {
  private readonly topics = new Set<string>();
  private publishers = 0;

  constructor(
    private readonly mode: StreamMode,
    /** Most per-topic streams `publish()` opens before sharing the "data" stream. */
    private readonly perTopicLimit: number,
  ) {}

  /** The stream of `publish(topic)`: per topic (per-topic mode), shared (multi), control (single). */
  forTopic(topic: string): string {
    if (this.mode === "single") return "control";
    if (this.mode === "multi") return "data";
    const key = `topic:${topic}`;
    if (this.topics.has(key)) return key;
    if (this.topics.size >= this.perTopicLimit) return "data";
    this.topics.add(key);
    return key;
  }

  /** A new publisher's own stream. */
  forPublisher(): string {
    return this.mode === "single" ? "control" : `pub:${++this.publishers}`;
  }

  /** Whether a `subscribe()` call gets a stream of its own (per-topic mode). */
  get subscribeCallsOwnStreams(): boolean {
    return this.mode === "per-topic";
  }

  /** The stream of a subscription group: its own (`dedicated`) or the shared one. */
  forSubscription(dedicated: boolean): { key: string | ((groupId: number) => string); dedicated: boolean } {
    if (this.mode === "single") return { key: "control", dedicated: false };
    if (dedicated) return { key: (id) => `sub:${id}`, dedicated: true };
    return { key: "data", dedicated: false };
  }
}
