/**
 * Packet identifiers (MQTT 5.0 §2.2.1): non-zero 16-bit values, one per in-flight PUBLISH (QoS > 0),
 * SUBSCRIBE or UNSUBSCRIBE, never two in use at once. [MQTT-2.2.1-3]
 */
export class PacketIdAllocator {
  private next = 1;
  private readonly used = new Set<number>();

  /** Marks an identifier as in use (restored session state). */
  reserve(id: number): void {
    this.used.add(id);
  }

  /** A currently unused identifier, now marked in use; undefined when all 65535 are taken. */
  allocate(): number | undefined {
    if (this.used.size >= 65535) return undefined;
    for (;;) {
      const id = this.next;
      this.next = id === 65535 ? 1 : id + 1;
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
  }

  /** Frees an identifier once its flow completed. */
  release(id: number): void {
    this.used.delete(id);
  }

  /** Identifiers in use. */
  get size(): number {
    return this.used.size;
  }
}
