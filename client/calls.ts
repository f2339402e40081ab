/**
 * Calls waiting for their reply, keyed by id.
 *
 * Invariants:
 * - Ids are increasing integers per client, never reused, so a late reply to a call that already
 *   timed out cannot settle a newer one.
 * - Every call settles exactly once: by its reply, its timeout, or a rejection from the client
 *   (socket closed, `disconnect()`, dropped from the queue). Whichever comes first removes the
 *   entry and clears the timer; later ones find nothing and do nothing.
 * - `socket` tells a call written to a socket (the client's connection number) from one still in
 *   the offline queue (0: it survives reconnects and only times out). A call written to a socket
 *   that dropped waits while the client resumes its session (the reply is replayed), and is
 *   rejected when that fails.
 */

import { WarrenClientError } from "./errors";
import type { ReplyFrame } from "./protocol";

type Timer = ReturnType<typeof setTimeout>;

interface PendingCall {
  event: string;
  /** Connection number of the socket the call was written to; 0 while queued. */
  socket: number;
  resolve: (value: unknown) => void;
  reject: (error: WarrenClientError) => void;
  timer: Timer | null;
}

export class PendingCalls {
  #nextId = 1;
  #pending = new Map<number, PendingCall>();

  /** Number of calls without a reply yet. */
  get size(): number {
    return this.#pending.size;
  }

  /** Takes the next call id. Ids are never reused, even when the call is never registered. */
  allocateId(): number {
    return this.#nextId++;
  }

  /**
   * Registers call `id` and returns the promise of its reply.
   * @param timeoutMs Rejects with code `timeout` after this long; `0` waits forever.
   * @param onTimeout Runs after a timeout rejection (the client removes a still-queued frame).
   */
  add(id: number, event: string, timeoutMs: number, onTimeout: (id: number) => void): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const call: PendingCall = { event, socket: 0, resolve, reject, timer: null };
      if (timeoutMs > 0) {
        call.timer = setTimeout(() => {
          this.#settle(id)?.reject(
            new WarrenClientError("timeout", `call "${event}" got no reply within ${timeoutMs} ms`),
          );
          onTimeout(id);
        }, timeoutMs);
      }
      this.#pending.set(id, call);
    });
  }

  /** Marks a call as written to the socket with connection number `socket` (≥ 1). */
  markSent(id: number, socket: number): void {
    const call = this.#pending.get(id);
    if (call) call.socket = socket;
  }

  /** Settles the call a reply frame answers; replies to unknown ids are ignored. */
  resolveReply(frame: ReplyFrame): void {
    const call = this.#settle(frame.id);
    if (!call) return;
    if (frame.error) {
      call.reject(new WarrenClientError(frame.error.code, frame.error.message, { meta: frame.error.meta }));
    } else {
      call.resolve(frame.data);
    }
  }

  /** Rejects one call, if it is still pending. */
  reject(id: number, error: WarrenClientError): void {
    this.#settle(id)?.reject(error);
  }

  /**
   * Rejects every call already written to a socket older than connection `before` (every written
   * call when omitted): those sockets are gone and no reply can come.
   */
  rejectSent(makeError: (event: string) => WarrenClientError, before = Infinity): void {
    for (const [id, call] of [...this.#pending]) {
      if (call.socket !== 0 && call.socket < before) this.#settle(id)?.reject(makeError(call.event));
    }
  }

  /** Rejects every pending call, sent or queued. */
  rejectAll(makeError: (event: string) => WarrenClientError): void {
    for (const [id, call] of [...this.#pending]) this.#settle(id)?.reject(makeError(call.event));
  }

  /** Removes a call and stops its timer; returns it if it was still pending. */
  #settle(id: number): PendingCall | undefined {
    const call = this.#pending.get(id);
    if (!call) return undefined;
    this.#pending.delete(id);
    if (call.timer !== null) clearTimeout(call.timer);
    return call;
  }
}
