/**
 * Promises of `waitForConnection()` waiting for the client to connect, each with an optional
 * deadline. The state machine settles them all at once: resolved when it connects, rejected when
 * it stops; a deadline rejects only its own waiter.
 */

import { WarrenClientError } from "./errors";

interface Waiter {
  resolve: () => void;
  reject: (error: WarrenClientError) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

export class ConnectionWaiters {
  readonly #waiters = new Set<Waiter>();

  /** A promise settled by the next `settle`, or rejected with `timeout` after `timeout` ms (if > 0). */
  wait(timeout?: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: null };
      if (timeout !== undefined && timeout > 0) {
        waiter.timer = setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new WarrenClientError("timeout", `not connected within ${timeout} ms`));
        }, timeout);
      }
      this.#waiters.add(waiter);
    });
  }

  /** Resolves every waiter (`error` null) or rejects every one with `error`. */
  settle(error: WarrenClientError | null): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) {
      if (waiter.timer !== null) clearTimeout(waiter.timer);
      if (error) waiter.reject(error);
      else waiter.resolve();
    }
  }
}
