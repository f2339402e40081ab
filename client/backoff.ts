/**
 * Reconnect delays: exponential growth from `initialDelay`, capped at `maxDelay`, then spread by
 * `jitter` so that clients dropped together by one server restart do not come back in lockstep.
 *
 * Pure: the random source is a parameter, so the formula is testable without timers.
 */

/** How the client reconnects after a connection it did not close itself is lost. */
export interface ReconnectionOptions {
  /**
   * Reconnect automatically.
   * @default true
   */
  enabled: boolean;
  /**
   * Failed attempts in a row before giving up (state `error`). `0` retries forever.
   * @default 10
   */
  maxAttempts: number;
  /**
   * Delay before the first attempt, in milliseconds.
   * @default 1000
   */
  initialDelay: number;
  /**
   * Largest delay before jitter, in milliseconds.
   * @default 30000
   */
  maxDelay: number;
  /**
   * Growth factor of the delay per attempt; at least 1.
   * @default 1.5
   */
  backoffMultiplier: number;
  /**
   * Random spread as a fraction of the delay, from 0 to 1: a delay `d` becomes a uniform pick in
   * `[d × (1 − jitter), d × (1 + jitter)]`. Applied after the `maxDelay` cap, so capped delays keep
   * spreading instead of all landing on `maxDelay`.
   * @default 0.2
   */
  jitter: number;
}

/** Verani's reconnection defaults plus a 20 % jitter (Verani had none). */
export const DEFAULT_RECONNECTION: Readonly<ReconnectionOptions> = Object.freeze({
  enabled: true,
  maxAttempts: 10,
  initialDelay: 1000,
  maxDelay: 30000,
  backoffMultiplier: 1.5,
  jitter: 0.2,
});

/**
 * The delay before the base-1 `attempt`, before jitter:
 * `min(initialDelay × backoffMultiplier^(attempt − 1), maxDelay)`.
 */
export function baseDelay(attempt: number, options: ReconnectionOptions): number {
  const grown = options.initialDelay * Math.pow(options.backoffMultiplier, Math.max(0, attempt - 1));
  return Math.min(grown, options.maxDelay);
}

/**
 * The delay before the base-1 `attempt`, with jitter. `random` returns a number in `[0, 1)`, as
 * `Math.random` does.
 */
export function reconnectDelay(
  attempt: number,
  options: ReconnectionOptions,
  random: () => number = Math.random,
): number {
  const base = baseDelay(attempt, options);
  const spread = base * options.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}
