/**
 * Frames JS sends to one session — `ctx.emit(...)` and call replies, the frames of every request
 * and response — gathered during a tick and handed to the native core in one call at its end.
 * A tick that answers 50 messages crosses into Rust once, not 50 times, and the socket writers
 * are woken after JS is done rather than in the middle of its work.
 *
 * Order is kept: the wrapper flushes what it gathered before any other native call, so a frame
 * queued here can never be overtaken by a later broadcast, close or destroy.
 */
import type { NativeServer } from "../native";

/** The native server with gathered sends; `flushSends()` hands them over now. */
export type BatchingNative = NativeServer & { flushSends(): void };

/** Wraps `native`: `emit` and `reply` are gathered; every other method flushes first. */
export function batchSends(native: NativeServer): BatchingNative {
  const lines: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (lines.length === 0) return;
    const batch = lines.join("\n");
    lines.length = 0;
    native.sendFrames(batch);
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
    gather(`e\t${session}\t${JSON.stringify(event)}\t${payloadJson ?? ""}`);
    return true;
  };
  const reply = (session: number, callId: number, resultJson?: string | null): boolean => {
    gather(`r\t${session}\t${callId}\t${resultJson ?? ""}`);
    return true;
  };
  const wrapped = new Map<PropertyKey, unknown>([
    ["emit", emit],
    ["reply", reply],
    ["flushSends", flush],
  ]);
  return new Proxy(native, {
    get(target, key) {
      let value = wrapped.get(key);
      if (value !== undefined) return value;
      const method = Reflect.get(target, key);
      if (typeof method !== "function") return method;
      value = (...args: unknown[]) => {
        flush();
        return method.apply(target, args);
      };
      wrapped.set(key, value);
      return value;
    },
  }) as BatchingNative;
}
