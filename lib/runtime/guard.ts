/**
 * Calling user code safely: every hook and handler runs through `attempt` (or its try/catch
 * inline on the hot path of messages and calls), so a throw or a rejection reaches a handler of
 * ours (`onError`, an error reply, a 1011 close) and never the process.
 */

import type { Logger } from "../log";
import type { Ordering } from "./ordering";

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

/** Where user code failed, for the log: the actor's key (or room's name) and the event. */
export interface Site {
  key?: string;
  event?: string;
}

/** Logs an error of a definition's user code (always reported), with the definition, the
 * actor key or room name, and the event when known. */
export function logError(log: Logger, definition: { name: string }, error: unknown, site: Site = {}): void {
  const where = [site.event !== undefined ? `"${site.event}"` : undefined, site.key !== undefined ? `of "${site.key}"` : undefined]
    .filter((part) => part !== undefined)
    .join(" ");
  log.failure({ err: error, definition: definition.name, ...site }, `${definition.name}${where ? ` ${where}` : ""}:`);
}

/** The actor key of a connection context, or the name of a room context, if it has one. */
function keyOf(ctx: unknown): string | undefined {
  try {
    const context = ctx as { actor?: { key?: unknown }; name?: unknown } | null;
    const key = context?.actor?.key ?? context?.name;
    return typeof key === "string" ? key : undefined;
  } catch {
    return undefined; // a context whose actor is gone
  }
}

/** Hands an error to the definition's `onError`, or logs it; `onError` failing is logged too. */
export function reportTo(
  log: Logger,
  definition: { name: string; onError?: (error: unknown, ctx: any) => unknown },
  error: unknown,
  ctx: unknown,
  event?: string,
): void {
  const site: Site = { key: keyOf(ctx), ...(event !== undefined ? { event } : {}) };
  if (!definition.onError) {
    logError(log, definition, error, site);
    return;
  }
  try {
    const handled = definition.onError(error, ctx);
    if (isThenable(handled)) handled.then(undefined, (again) => logError(log, definition, again, site));
  } catch (again) {
    logError(log, definition, again, site);
  }
}
