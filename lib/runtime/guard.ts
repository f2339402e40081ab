/**
 * Calling user code safely: every hook and handler runs through `attempt` (or its try/catch
 * inline on the hot path of messages and calls), so a throw or a rejection reaches a handler of
 * ours (`onError`, an error reply, a 1011 close) and never the process.
 */

import { logger } from "../log";
import type { Ordering } from "./ordering";

const log = logger("hooks");

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

/** Runs user code; a throw or rejection goes to `onFailure`. Returns a promise if it is async. */
export function attempt(run: () => unknown, onFailure: (error: unknown) => void): unknown {
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    onFailure(error);
    return undefined;
  }
  if (isThenable(result)) return Promise.resolve(result).then(undefined, onFailure);
  return result;
}

/** Runs `step` in `ordering`; resolves once it (and any promise it returns) has settled. */
export function settled(ordering: Ordering, step: () => unknown): Promise<void> {
  return new Promise<void>((resolve) => {
    ordering.run(() => {
      const result = step();
      if (isThenable(result)) result.then(() => resolve(), () => resolve());
      else resolve();
      return result;
    }, false);
  });
}

/** Prints an error of a definition's user code (always, to stderr). */
export function logError(definition: { name: string }, error: unknown): void {
  log.error(`${definition.name}:`, error);
}

/** Hands an error to the definition's `onError`, or logs it; `onError` failing is logged too. */
export function reportTo(
  definition: { name: string; onError?: (error: unknown, ctx: any) => unknown },
  error: unknown,
  ctx: unknown,
): void {
  if (!definition.onError) {
    logError(definition, error);
    return;
  }
  try {
    const handled = definition.onError(error, ctx);
    if (isThenable(handled)) handled.then(undefined, (again) => logError(definition, again));
  } catch (again) {
    logError(definition, again);
  }
}
