/**
 * The offline queue: frames sent while the socket is not open wait here, in order, and are written
 * on the next open before any `open` listener runs.
 *
 * Bounded: at `capacity` the oldest item is dropped and handed back to the caller, which rejects a
 * dropped call instead of letting it wait for its timeout. Capacity is small (default 100), so removing from
 * the front of an array (O(n)) costs less than a ring buffer's bookkeeping would.
 */

/** One queued frame; `callId` is set for calls so they can be found on timeout or disconnect. */
export interface QueuedFrame {
  text: string;
  callId?: number;
}

export class BoundedQueue<T> {
  #items: T[] = [];
  readonly #capacity: number;

  /** @param capacity Maximum items kept; 0 keeps nothing (every push is dropped at once). */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Number of items waiting. */
  get length(): number {
    return this.#items.length;
  }

  /** Appends `item`; returns the items dropped to stay within capacity, oldest first. */
  push(item: T): T[] {
    this.#items.push(item);
    const excess = this.#items.length - this.#capacity;
    return excess > 0 ? this.#items.splice(0, excess) : [];
  }

  /** Removes and returns every item, oldest first. */
  drain(): T[] {
    const items = this.#items;
    this.#items = [];
    return items;
  }

  /** Removes and returns the items matching `predicate`, keeping the others in order. */
  removeWhere(predicate: (item: T) => boolean): T[] {
    const removed: T[] = [];
    const kept: T[] = [];
    for (const item of this.#items) (predicate(item) ? removed : kept).push(item);
    this.#items = kept;
    return removed;
  }

  /** Drops everything. */
  clear(): void {
    this.#items = [];
  }
}
