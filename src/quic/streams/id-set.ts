/**
 * A set of stream IDs (or other small integers, e.g. retired CID sequence numbers) that holds
 * no `Set` while empty. A connection keeps several "pending" sets (streams with frames to send,
 * RESET_STREAM/STOP_SENDING/MAX_STREAM_DATA to send, ...) that are empty almost all the time;
 * an empty `Set` still costs ~150 bytes of heap, so with thousands of idle connections
 * (bench/idle-scale.ts) allocating them only while they hold something saves about a kilobyte
 * per connection.
 *
 * Semantics match `Set<number>` for the operations offered, with one difference: the backing
 * `Set` is dropped when the last element is deleted, so an element added *during* an iteration
 * that emptied the set is not visited by that iteration (no caller adds to the set it iterates).
 */

const EMPTY: ReadonlySet<number> = new Set<number>();

/** A lazily allocated `Set<number>`; see the module comment. */
export class IdSet {
  private s: Set<number> | undefined;

  /** Number of IDs held. */
  get size(): number {
    return this.s === undefined ? 0 : this.s.size;
  }

  has(id: number): boolean {
    return this.s?.has(id) === true;
  }

  add(id: number): this {
    if (this.s === undefined) this.s = new Set();
    this.s.add(id);
    return this;
  }

  /** Removes `id`; frees the backing set when it becomes empty. */
  delete(id: number): boolean {
    if (this.s === undefined || !this.s.delete(id)) return false;
    if (this.s.size === 0) this.s = undefined;
    return true;
  }

  clear(): void {
    this.s = undefined;
  }

  /** IDs in insertion order (the backing set's own iterator: deleting while iterating is safe). */
  values(): IterableIterator<number> {
    return (this.s ?? EMPTY).values();
  }

  [Symbol.iterator](): IterableIterator<number> {
    return this.values();
  }
}
