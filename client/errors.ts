/**
 * The one error class the client rejects and reports with. A stable `code` lets callers branch
 * without parsing messages; server reply errors keep the server's code and `meta` unchanged.
 */

/**
 * Codes the client produces itself. Server replies may carry any other code (for example
 * `internal_error`), which is why {@link WarrenClientError.code} is typed as a wider string.
 *
 * - `timeout`: a call got no reply in time, or `waitForConnection(timeout)` expired.
 * - `disconnected`: the socket closed before a call's reply, or `disconnect()` was called.
 * - `closed`: the client was closed with `close()`; it cannot be used again.
 * - `queue_full`: a call waiting in the offline queue was dropped to make room.
 * - `connect_timeout`: one connection attempt took longer than `connectionTimeout`.
 * - `socket_error`: the WebSocket reported an error (the browser gives no detail).
 * - `reconnect_failed`: `reconnection.maxAttempts` attempts in a row failed; the client stopped.
 */
export type ClientErrorCode =
  | "timeout"
  | "disconnected"
  | "closed"
  | "queue_full"
  | "connect_timeout"
  | "socket_error"
  | "reconnect_failed";

/**
 * An error from the client or from the server's reply to a call.
 *
 * @example
 * try { await client.call("count.get", {}); }
 * catch (err) { if (err instanceof WarrenClientError && err.code === "timeout") retry(); }
 */
export class WarrenClientError extends Error {
  /** A {@link ClientErrorCode}, or the code the server put in its reply. */
  readonly code: ClientErrorCode | (string & {});
  /** Extra data the server attached to its error reply, if any. */
  readonly meta?: unknown;

  constructor(
    code: ClientErrorCode | (string & {}),
    message: string,
    options?: { meta?: unknown; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "WarrenClientError";
    this.code = code;
    if (options?.meta !== undefined) this.meta = options.meta;
  }
}

/** The error of anything asked of a client after `close()`. */
export function closedError(): WarrenClientError {
  return new WarrenClientError("closed", "the client is closed");
}

/** The error of a call whose socket closed before its reply (and whose session was not resumed). */
export function disconnectedError(event: string): WarrenClientError {
  return new WarrenClientError("disconnected", `the connection closed before the reply to "${event}"`);
}
