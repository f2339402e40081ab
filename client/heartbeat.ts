/**
 * Keepalive for one open socket: a ping every `intervalMs`; if the oldest unanswered ping gets no
 * pong within `timeoutMs`, `onTimeout` runs once and the heartbeat stops.
 *
 * The deadline is measured from the first unanswered ping, not the latest: with `timeoutMs` longer
 * than `intervalMs`, later pings must not push a dead connection's deadline forward forever.
 * Detects half-open TCP connections (a sleeping laptop, a dropped NAT entry) that never deliver a
 * close event on their own.
 */

type Timer = ReturnType<typeof setTimeout>;

export class Heartbeat {
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #sendPing: () => void;
  readonly #onTimeout: () => void;
  #interval: Timer | null = null;
  #deadline: Timer | null = null;

  /**
   * @param intervalMs Time between pings; `0` disables the heartbeat.
   * @param timeoutMs Time a ping may stay unanswered.
   */
  constructor(intervalMs: number, timeoutMs: number, sendPing: () => void, onTimeout: () => void) {
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
    this.#sendPing = sendPing;
    this.#onTimeout = onTimeout;
  }

  /** Starts pinging (again); any previous schedule is dropped. */
  start(): void {
    this.stop();
    if (this.#intervalMs <= 0) return;
    this.#interval = setInterval(() => this.#tick(), this.#intervalMs);
  }

  /** Records a pong: the pending deadline is cleared. */
  pong(): void {
    if (this.#deadline !== null) clearTimeout(this.#deadline);
    this.#deadline = null;
  }

  /** Stops pinging and forgets any pending deadline. */
  stop(): void {
    if (this.#interval !== null) clearInterval(this.#interval);
    this.#interval = null;
    this.pong();
  }

  #tick(): void {
    if (this.#deadline === null) {
      this.#deadline = setTimeout(() => {
        this.stop();
        this.#onTimeout();
      }, this.#timeoutMs);
    }
    this.#sendPing();
  }
}
