/**
 * `defineConnection`: a connection actor definition — one actor per user (`meta.userId`),
 * holding every session of that user — and its table of event handlers.
 */

import { messageOf, WarrenError } from "./errors";
import { StateCell } from "./state";
import type { ActorContext, ConnectionContext } from "./context";

/** What `extractMeta` sees: the HTTP upgrade request, before any socket opens. */
export interface UpgradeRequest {
  /** Path and query as sent, e.g. `/ws?token=abc`. */
  url: string;
  path: string;
  query: URLSearchParams;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  remoteAddress: string;
  /** Connection params sent by the client (`params=<JSON>` in the URL, at most 4 KiB), if any. */
  params: unknown;
  /** The actor key from the path, with `keyFromPath`. */
  key?: string;
}

/** A session's meta (its attachment). `userId` keys the actor. */
export interface ConnectionMeta {
  userId: string;
  clientId?: string;
  channels?: string[];
  [key: string]: unknown;
}

/** How a session ended, as `onDisconnect` sees it. */
export interface DisconnectInfo {
  /** WebSocket close code (1006 when the peer vanished without a close frame). */
  code: number;
  reason: string;
}

/** A frame no handler matched, as `onMessage` sees it. */
export interface UnhandledFrame {
  type: string;
  data: unknown;
}

/** Why an actor leaves memory, as `onDestroy` sees it in `ctx.reason`. */
export type DestroyReason = "evicted" | "shutdown" | "destroyed";

export type Handler<Meta extends ConnectionMeta, State> = (
  ctx: ConnectionContext<Meta, State>,
  data: any,
) => unknown;

export interface ConnectionOptions<Meta extends ConnectionMeta, State extends object> {
  /** Name of the definition; rooms bind to it. */
  name: string;
  /** Path that upgrades to this kind of connection. @default "/ws" */
  websocketPath?: string;
  /**
   * When true, `websocketPath` (ending in "/") is a prefix and the path segment after it is the
   * actor's key: `/actors/counter/abc` connects to actor "abc". Every connection to that path
   * shares the actor; `meta.userId` is the key whatever `extractMeta` returns.
   * @default false
   */
  keyFromPath?: boolean;
  /**
   * Room names this connection may join, mapped to room handler names. A room name matches
   * its exact key, else the prefix before its first `:` (`conversation:123` → `conversation`).
   * @example rooms: { chat: "ChatRoom", conversation: "ChatRoom" }
   */
  rooms?: Readonly<Record<string, string>>;
  /**
   * Authenticates the upgrade request and returns the session's meta. Runs before the 101:
   * a throw answers HTTP 401 (or `err.status`) with `{"error": message}` and no socket opens.
   * Default: a fresh `clientId`, `userId = clientId`, `channels: ["default"]`.
   */
  extractMeta?(req: UpgradeRequest): Meta | Promise<Meta>;
  /** Initial state of each actor (cloned per actor). */
  state?: State;
  /** Keys of `state` that are persisted. @default every key of `state` */
  persistedKeys?: Array<keyof State & string>;
  /** The actor was created (or woken); its state is loaded. Holds later events while it runs. */
  onInit?(ctx: ActorContext<State>): unknown;
  /** A session opened. A throw goes to `onError` and closes the session with 1011. */
  onConnect?(ctx: ConnectionContext<Meta, State>): unknown;
  /**
   * The actor woke from hibernation with sessions restored from their attachments (after
   * `onInit`, before the event that woke it).
   */
  onHibernationRestore?(ctx: ActorContext<State>): unknown;
  /**
   * Persisted state changed: called once per tick however many mutations there were, never on
   * reads. The state is read-only inside (a write throws).
   */
  onStateChange?(ctx: ActorContext<State>, state: State): unknown;
  /**
   * Validates an upgrade before `extractMeta` (Rivet's `onBeforeConnect`): a throw answers
   * 401 (or `err.status`) with `{"error": message, "code": err.code}`; no socket opens and no
   * hook of the actor runs.
   */
  onBeforeConnect?(req: UpgradeRequest): unknown;
  /** A session closed. */
  onDisconnect?(ctx: ConnectionContext<Meta, State>, info: DisconnectInfo): unknown;
  /** An event no handler is registered for. */
  onMessage?(ctx: ConnectionContext<Meta, State>, frame: UnhandledFrame): unknown;
  /** The actor leaves memory (`ctx.reason`: "evicted", "shutdown" or "destroyed"). */
  onDestroy?(ctx: ActorContext<State> & { reason: DestroyReason }): unknown;
  /** A hook or handler threw. Without it, errors are logged with console.error. */
  onError?(error: unknown, ctx: ConnectionContext<Meta, State> | ActorContext<State>): unknown;
}

const DEFINITION = Symbol.for("warren.connection");

export interface ConnectionDefinition<Meta extends ConnectionMeta = ConnectionMeta, State extends object = {}>
  extends Readonly<ConnectionOptions<Meta, State>> {
  readonly websocketPath: string;
  readonly handlers: ReadonlyMap<string, Handler<Meta, State>>;
  /**
   * Registers the handler of an event. When the client sent a call, the handler's (awaited)
   * return value is the reply. One handler per event: a second `on` replaces the first.
   * @example UserConnection.on("count.get", (ctx) => ctx.state.count);
   */
  on(event: string, handler: Handler<Meta, State>): this;
  off(event: string): this;
}

/**
 * Defines a connection actor.
 * @example
 * const UserConnection = defineConnection({
 *   name: "UserConnection",
 *   extractMeta(req) {
 *     const token = req.query.get("token");
 *     if (!token) throw new Error("token required");
 *     return { userId: token };
 *   },
 *   onConnect(ctx) { ctx.emit("welcome", { userId: ctx.meta.userId }); },
 * });
 */
export function defineConnection<Meta extends ConnectionMeta = ConnectionMeta, State extends object = {}>(
  options: ConnectionOptions<Meta, State>,
): ConnectionDefinition<Meta, State> {
  if (options === null || typeof options !== "object") {
    throw new WarrenError("invalid_option", "defineConnection needs an options object");
  }
  if (typeof options.name !== "string" || options.name.length === 0) {
    throw new WarrenError("invalid_option", "defineConnection: name must be a non-empty string");
  }
  const websocketPath = options.websocketPath ?? "/ws";
  if (typeof websocketPath !== "string" || !websocketPath.startsWith("/")) {
    throw new WarrenError("invalid_option", `defineConnection(${options.name}): websocketPath must start with "/"`);
  }
  if (options.keyFromPath === true && !websocketPath.endsWith("/")) {
    throw new WarrenError("invalid_option", `defineConnection(${options.name}): with keyFromPath, websocketPath must end with "/"`);
  }
  for (const hook of [
    "extractMeta",
    "onInit",
    "onConnect",
    "onDisconnect",
    "onMessage",
    "onDestroy",
    "onError",
    "onHibernationRestore",
    "onStateChange",
    "onBeforeConnect",
  ] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== "function") {
      throw new WarrenError("invalid_option", `defineConnection(${options.name}): ${hook} must be a function`);
    }
  }
  if (options.state !== undefined && (options.state === null || typeof options.state !== "object")) {
    throw new WarrenError("invalid_option", `defineConnection(${options.name}): state must be an object`);
  }
  if (
    options.persistedKeys !== undefined &&
    (!Array.isArray(options.persistedKeys) || !options.persistedKeys.every((key) => typeof key === "string"))
  ) {
    throw new WarrenError("invalid_option", `defineConnection(${options.name}): persistedKeys must be an array of key names`);
  }
  if (options.state !== undefined) {
    try {
      new StateCell(options.state, options.persistedKeys, null, () => {});
    } catch (error) {
      throw new WarrenError("invalid_option", `defineConnection(${options.name}): state cannot be persisted: ${messageOf(error)}`);
    }
  }
  if (options.rooms !== undefined) {
    const valid =
      options.rooms !== null &&
      typeof options.rooms === "object" &&
      Object.entries(options.rooms).every(([key, value]) => key.length > 0 && typeof value === "string" && value.length > 0);
    if (!valid) {
      throw new WarrenError(
        "invalid_option",
        `defineConnection(${options.name}): rooms must map room names to room handler names`,
      );
    }
  }
  const handlers = new Map<string, Handler<Meta, State>>();
  const definition = {
    ...options,
    websocketPath,
    handlers,
    on(event: string, handler: Handler<Meta, State>) {
      if (typeof event !== "string" || event.length === 0) {
        throw new WarrenError("invalid_option", `${options.name}.on: event must be a non-empty string`);
      }
      if (event === "ping" || event === "call") {
        throw new WarrenError("invalid_option", `${options.name}.on: "${event}" is reserved by the protocol`);
      }
      if (typeof handler !== "function") {
        throw new WarrenError("invalid_option", `${options.name}.on("${event}"): handler must be a function`);
      }
      handlers.set(event, handler);
      return definition;
    },
    off(event: string) {
      handlers.delete(event);
      return definition;
    },
  } as ConnectionDefinition<Meta, State>;
  Object.defineProperty(definition, DEFINITION, { value: true });
  return definition;
}

export function isConnectionDefinition(value: unknown): value is ConnectionDefinition<any, any> {
  return typeof value === "object" && value !== null && (value as any)[DEFINITION] === true;
}
