/**
 * Client options: their public shape, their defaults (Verani's, plus jitter), and the one place they
 * are validated and merged. Misuse fails in the constructor with a message naming the option, never
 * later as a strange reconnect loop.
 */

import { DEFAULT_RECONNECTION, type ReconnectionOptions } from "./backoff";

/**
 * The part of a WebSocket the client uses. Browsers' `WebSocket` and the `ws` package's class both
 * fit. Handler parameters are typed `never` so that either runtime's own event types are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  send(data: string | Uint8Array): void;
  /** Set to `"arraybuffer"` for `encoding: "msgpack"`, so binary frames arrive as bytes. */
  binaryType?: string;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: `globalThis.WebSocket` in browsers, `import { WebSocket } from "ws"` in Node. */
export interface WebSocketConstructor {
  new (url: string): WebSocketLike;
}

/** Options of `new WarrenClient(url, options)`. Every field is optional. */
export interface WarrenClientOptions {
  /**
   * Reconnection policy; a partial object is merged with the defaults.
   * @default { enabled: true, maxAttempts: 10, initialDelay: 1000, maxDelay: 30000,
   *   backoffMultiplier: 1.5, jitter: 0.2 }
   */
  reconnection?: Partial<ReconnectionOptions>;
  /**
   * Frames kept while not connected (events and calls); beyond it the oldest is dropped, and a
   * dropped call rejects with code `queue_full`.
   * @default 100
   */
  maxQueueSize?: number;
  /**
   * Milliseconds one connection attempt may take before it is abandoned and counted as a failure.
   * `0` disables the limit.
   * @default 10000
   */
  connectionTimeout?: number;
  /**
   * Milliseconds between keepalive pings while connected. `0` disables keepalive.
   * @default 5000
   */
  pingInterval?: number;
  /**
   * Milliseconds a ping may stay unanswered before the socket is closed with code 4000
   * "pong timeout" and the client reconnects.
   * @default 5000
   */
  pongTimeout?: number;
  /**
   * Any JSON value, sent with every connection attempt as the `params` query parameter
   * (`encodeURIComponent(JSON.stringify(params))`). The server reads it in `extractMeta(req)` with
   * `JSON.parse(req.query.get("params"))`. At most 4 KiB once encoded, since URLs travel in the
   * HTTP request line, which servers and proxies limit.
   * @default undefined (no parameter)
   */
  params?: unknown;
  /**
   * Resume the session after a dropped connection (a warren server keeps it for
   * `resumeWindowMs`): the server replays every event the client missed, in order, and sees no
   * disconnect. `connected` tells whether it worked (`{ resumed }`); when it did not (the window
   * was over, too much was missed, the server restarted), the app should re-sync.
   * Turn it off for servers that do not speak it (a Verani server): `connected` then fires on
   * open with `resumed: false`.
   * @default true
   */
  resume?: boolean;
  /**
   * How frames are spelled on the wire: JSON text, or the same values as MessagePack in binary
   * frames (smaller, and cheaper to read for number-heavy payloads). `"msgpack"` adds
   * `encoding=msgpack` to the socket URL; it needs a warren server (a Verani server speaks JSON
   * only). Values travel exactly as in JSON: what `JSON.stringify` would drop or change (a
   * `Date`, `undefined`, a `Uint8Array`) is dropped or changed the same way.
   * @default "json"
   */
  encoding?: "json" | "msgpack";
  /**
   * The WebSocket class to use.
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
}

/** Options after defaults are applied and validated. */
export interface ResolvedOptions {
  reconnection: ReconnectionOptions;
  maxQueueSize: number;
  connectionTimeout: number;
  pingInterval: number;
  pongTimeout: number;
  resume: boolean;
  encoding: "json" | "msgpack";
  WebSocket: WebSocketConstructor;
}

/** Defaults of every scalar option (Verani's values). */
export const DEFAULT_OPTIONS = Object.freeze({
  maxQueueSize: 100,
  connectionTimeout: 10000,
  pingInterval: 5000,
  pongTimeout: 5000,
});

/** Longest encoded `params` value, in bytes (the encoding is ASCII). */
export const MAX_PARAMS_BYTES = 4096;

/** Merges `options` with the defaults; throws naming the first invalid option. */
export function resolveOptions(options: WarrenClientOptions = {}): ResolvedOptions {
  const reconnection: ReconnectionOptions = {
    ...DEFAULT_RECONNECTION,
    ...definedOnly(options.reconnection ?? {}),
  };
  const r = "options.reconnection";
  if (typeof reconnection.enabled !== "boolean") fail(`${r}.enabled must be a boolean`);
  checkInteger(`${r}.maxAttempts`, reconnection.maxAttempts);
  checkNonNegative(`${r}.initialDelay`, reconnection.initialDelay);
  checkNonNegative(`${r}.maxDelay`, reconnection.maxDelay);
  checkNonNegative(`${r}.backoffMultiplier`, reconnection.backoffMultiplier);
  if (reconnection.backoffMultiplier < 1) fail(`${r}.backoffMultiplier must be at least 1`);
  checkNonNegative(`${r}.jitter`, reconnection.jitter);
  if (reconnection.jitter > 1) fail(`${r}.jitter must be between 0 and 1`);

  const resolved = {
    maxQueueSize: options.maxQueueSize ?? DEFAULT_OPTIONS.maxQueueSize,
    connectionTimeout: options.connectionTimeout ?? DEFAULT_OPTIONS.connectionTimeout,
    pingInterval: options.pingInterval ?? DEFAULT_OPTIONS.pingInterval,
    pongTimeout: options.pongTimeout ?? DEFAULT_OPTIONS.pongTimeout,
  };
  checkInteger("options.maxQueueSize", resolved.maxQueueSize);
  checkNonNegative("options.connectionTimeout", resolved.connectionTimeout);
  checkNonNegative("options.pingInterval", resolved.pingInterval);
  checkNonNegative("options.pongTimeout", resolved.pongTimeout);
  if (resolved.pingInterval > 0 && resolved.pongTimeout === 0) {
    fail("options.pongTimeout must be greater than 0 while options.pingInterval is enabled");
  }

  const WebSocket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof WebSocket !== "function") {
    fail("options.WebSocket is required where globalThis.WebSocket is missing (Node 20: pass ws's class)");
  }
  const resume = options.resume ?? true;
  if (typeof resume !== "boolean") fail("options.resume must be a boolean");
  const encoding = options.encoding ?? "json";
  if (encoding !== "json" && encoding !== "msgpack") fail('options.encoding must be "json" or "msgpack"');
  return { reconnection, ...resolved, resume, encoding, WebSocket };
}

/**
 * The URL each attempt connects to: `url` resolved against the page in browsers, with `params`
 * appended as a query parameter (and `encoding=msgpack` when asked for); http(s) becomes ws(s). Throws for other schemes, a #fragment,
 * params JSON cannot encode, and params longer than {@link MAX_PARAMS_BYTES} once encoded.
 */
export function buildUrl(url: string, params: unknown, encoding: "json" | "msgpack" = "json"): string {
  const built = withParams(url, params);
  if (encoding === "json") return built;
  return `${built}${built.includes("?") ? "&" : "?"}encoding=${encoding}`;
}

function withParams(url: string, params: unknown): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  let parsed: URL;
  try {
    parsed = base === undefined ? new URL(url) : new URL(url, base);
  } catch (cause) {
    throw new Error(`WarrenClient: url "${url}" is not a valid URL`, { cause });
  }
  // http(s) is mapped by hand: older browsers' WebSocket constructors reject it.
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new Error(`WarrenClient: url must use ws:, wss:, http: or https:, got "${parsed.protocol}"`);
  }
  if (parsed.hash !== "") throw new Error("WarrenClient: url must not contain a #fragment");
  if (params === undefined) return parsed.href;

  let json: string | undefined;
  try {
    json = JSON.stringify(params);
  } catch (cause) {
    throw new Error("WarrenClient: options.params must be a JSON value", { cause });
  }
  if (json === undefined) throw new Error("WarrenClient: options.params must be a JSON value");
  const encoded = encodeURIComponent(json);
  if (encoded.length > MAX_PARAMS_BYTES) {
    const size = `${encoded.length} bytes once URL-encoded`;
    throw new Error(`WarrenClient: options.params is ${size}; the limit is ${MAX_PARAMS_BYTES}`);
  }
  // Appended by hand: URLSearchParams would encode spaces as "+", not as encodeURIComponent does.
  const sep = parsed.search.length > 1 ? "&" : "?";
  const href = parsed.href.endsWith("?") ? parsed.href.slice(0, -1) : parsed.href;
  return `${href}${sep}params=${encoded}`;
}

/**
 * `url` (from {@link buildUrl}) with the resume parameters of one attempt: `_resume` (the session
 * token, empty to ask for a new resumable session) and `_lastSeq`, the number of the last frame
 * received.
 */
export function resumeUrl(url: string, token: string | null, lastSeq: number): string {
  const sep = url.includes("?") ? "&" : "?";
  if (token === null) return `${url}${sep}_resume=`;
  return `${url}${sep}_resume=${encodeURIComponent(token)}&_lastSeq=${lastSeq}`;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkNonNegative(name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    fail(`${name} must be a finite number ≥ 0, got ${String(value)}`);
  }
}

function checkInteger(name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    fail(`${name} must be an integer ≥ 0, got ${String(value)}`);
  }
}

function fail(message: string): never {
  throw new Error(`WarrenClient: ${message}`);
}
