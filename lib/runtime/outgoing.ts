/**
 * Frames JS sends to one session — `ctx.emit(...)` and call replies, the frames of every request
 * and response — gathered during a tick and handed to the native core in one call at its end.
 * A tick that answers 50 messages crosses into Rust once, not 50 times, and the socket writers
 * are woken after JS is done rather than in the middle of its work.
 *
 * Order is kept: the wrapper flushes what it gathered before any other native call, so a frame
 * queued here can never be overtaken by a later broadcast, close or destroy.
 *
 * `encodePayload` is the one check and encoding of what an emit carries, for every target.
 */
import type { NativeServer } from "./bridge";
import { logger, type Logger } from "../log";


/** The native server with gathered sends; `flushSends()` hands them over now. */
export type BatchingNative = NativeServer & { flushSends(): void };

/** Wraps `native`: `emit` and `reply` are gathered; every other method flushes first. */
export function batchSends(native: NativeServer, log: Logger = logger("outgoing")): BatchingNative {
  const lines: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (lines.length === 0) return;
    const batch = lines.join("\n");
    lines.length = 0;
    try {
      native.sendFrames(batch);
    } catch (error) {
      // Every line was checked when it was gathered; a refusal here is a bug, not the app's
      // doing, and must not take the process down from a microtask.
      log.error("frames could not be sent:", error);
    }
  };
  const gather = (line: string) => {
    lines.push(line);
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(flush);
    }
  };
  // Event names are user text: JSON-encoded, they hold no tab or newline (the batch separators).
  const emit = (session: number, event: string, payloadJson?: string | null): boolean => {
    if (typeof event !== "string") {
      throw new TypeError(`event names must be strings, got ${typeof event}`);
    }
    gather(`e\t${session}\t${JSON.stringify(event)}\t${payloadJson ?? ""}`);
    return true;
  };
  const reply = (session: number, callId: number, resultJson?: string | null): boolean => {
    gather(`r\t${session}\t${callId}\t${resultJson ?? ""}`);
    return true;
  };
  // A plain object with one function per native method (not a Proxy: property reads on the hot
  // path stay ordinary, inlinable loads).
  const wrapper: Record<string, unknown> = { emit, reply, flushSends: flush };
  const methods = Object.getPrototypeOf(native) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(methods)) {
    const method = methods[name];
    if (name === "constructor" || name in wrapper || typeof method !== "function") continue;
    wrapper[name] = (...args: unknown[]) => {
      flush();
      return (method as (...a: unknown[]) => unknown).apply(native, args);
    };
  }
  return wrapper as unknown as BatchingNative;
}

/**
 * Encodes an event payload for the native core: absent, or a plain object (its members are
 * spread into the event envelope, as Verani clients expect).
 */
export function encodePayload(data: unknown): string | undefined {
  if (data === undefined || data === null) return undefined;
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new TypeError(
      `event payloads must be plain objects (their fields are spread into the event); got ${Array.isArray(data) ? "an array" : typeof data}`,
    );
  }
  return JSON.stringify(data);
}
