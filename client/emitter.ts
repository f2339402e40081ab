/**
 * A small event emitter for browser and Node alike (no `events` import).
 *
 * Invariants:
 * - A listener is registered at most once per event; registering it again only updates `once`.
 * - `off` takes the function given to `on` or `once`; there is no hidden wrapper to miss.
 * - Dispatch iterates a snapshot, so listeners may add or remove listeners while it runs.
 * - A throwing listener is reported through `console.error` and the remaining listeners still run:
 *   one broken handler in an app must not silence the others or the client's own flow.
 */

/** Any event listener. */
export type Listener = (...args: any[]) => void;

export class Emitter {
  /** event -> listener -> whether it is removed after its first call. Insertion order is call order. */
  #listeners = new Map<string, Map<Listener, boolean>>();

  /** Adds `listener` for `event`; returns a function that removes it. */
  on(event: string, listener: Listener, once = false): () => void {
    let forEvent = this.#listeners.get(event);
    if (!forEvent) {
      forEvent = new Map();
      this.#listeners.set(event, forEvent);
    }
    forEvent.set(listener, once);
    return () => this.off(event, listener);
  }

  /** Removes `listener` from `event`; unknown listeners are ignored. */
  off(event: string, listener: Listener): void {
    const forEvent = this.#listeners.get(event);
    if (!forEvent) return;
    forEvent.delete(listener);
    if (forEvent.size === 0) this.#listeners.delete(event);
  }

  /** Calls every listener of `event` with `args`, isolating exceptions. */
  emit(event: string, ...args: unknown[]): void {
    const forEvent = this.#listeners.get(event);
    if (!forEvent) return;
    for (const listener of [...forEvent.keys()]) {
      const once = forEvent.get(listener);
      if (once === undefined) continue; // removed by an earlier listener in this dispatch
      if (once) this.off(event, listener);
      try {
        listener(...args);
      } catch (err) {
        console.error(`warren:client listener for "${event}" threw`, err);
      }
    }
  }

  /** Removes every listener of every event. */
  clear(): void {
    this.#listeners.clear();
  }
}
