/**
 * Errors warren raises and the codes clients see. Codes are a closed set so clients can branch
 * on them; messages are for people.
 */

/** Codes of `reply` errors and `system:error` events sent to clients (a `UserError` brings its own). */
export type ErrorCode =
  | "internal_error"
  | "timeout"
  | "storage_unavailable"
  | "unknown_event"
  | "bad_reply"
  | "bad_frame"
  | "bad_call"
  | "bad_payload"
  | "binary_unsupported"
  | "bad_msgpack";

/**
 * An error meant for the client: thrown from a call handler, it reaches the caller with its
 * message, `code` and `meta`. Any other error reaches the caller as `internal_error` with its
 * message hidden (unless the server runs with `exposeErrors`).
 * @example throw new UserError("not enough credits", { code: "insufficient_credits", meta: { needed: 3 } });
 */
export class UserError extends Error {
  readonly code: string;
  readonly meta: unknown;
  constructor(message: string, options: { code?: string; meta?: unknown } = {}) {
    super(message);
    this.name = "UserError";
    this.code = options.code ?? "user_error";
    this.meta = options.meta;
  }
}

/** An error of warren itself (bad options, misuse of an API), with a stable `code`. */
export class WarrenError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "WarrenError";
    this.code = code;
  }
}

/** One problem a schema found in a payload: its message and where (keys and indexes from the root). */
export interface PayloadIssue {
  message: string;
  path: Array<string | number>;
}

/**
 * A client sent a payload its contract's schema refused (code `bad_payload`). The handler did not
 * run; `onError` receives this, and the client got a `bad_payload` error reply (a call, with
 * `meta.issues`) or a `system:error` event (an event, with `issues`).
 */
export class PayloadError extends WarrenError {
  readonly event: string;
  readonly issues: PayloadIssue[];
  constructor(event: string, issues: PayloadIssue[]) {
    const first = issues[0];
    const where = first !== undefined && first.path.length > 0 ? ` at ${first.path.join(".")}` : "";
    super("bad_payload", `invalid payload for "${event}"${first === undefined ? "" : `${where}: ${first.message}`}`);
    this.name = "PayloadError";
    this.event = event;
    this.issues = issues;
  }
}

/** Throw this from `extractMeta` to refuse an upgrade with a status other than 401. */
export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
