/**
 * The public types of the server side: what a definition is made of, what hooks and handlers
 * receive (`ctx`, the emit targets, the room context); the server's options are in
 * `server-options.ts` and re-exported here. Types only:
 * the code behind them is in `definitions/` and `runtime/`, so each of those files reads without
 * a page of declarations first.
 */

import type {
  ContractSpec,
  InboundData,
  InboundName,
  InboundResult,
  ParamsOf,
  Payload,
  ServerEmitArgs,
  ServerEventName,
  StandardSchemaV1,
} from "../client/contract";

// ---- connection definitions (`defineConnection`) ----

/**
 * The upgrade request's headers: a WHATWG `Headers` (`headers.get("authorization")`) whose entries
 * are also plain properties (`headers["authorization"]`). Names are lower-cased; repeated headers
 * are joined with ", ". A header named like a `Headers` member (`get`, `has`...) is reached with
 * `get()` only.
 */
export type UpgradeHeaders = Headers & { readonly [name: string]: string };

/**
 * What `onBeforeConnect` and `extractMeta` see: the HTTP upgrade request, before any socket
 * opens. Shaped like a WHATWG `Request` (`method`, `headers`), with `request` the real one.
 */
export interface UpgradeRequest<Params = unknown> {
  /**
   * The absolute URL, as a Fetch `Request` has it: `http://` + the Host header + the path and
   * query as sent, e.g. `http://example.com/ws?token=abc` (so `new URL(req.url)` works).
   */
  url: string;
  /** Always `"GET"`: a WebSocket upgrade is a GET. */
  method: string;
  path: string;
  query: URLSearchParams;
  headers: UpgradeHeaders;
  remoteAddress: string;
  /**
   * Connection params sent by the client (`params=<JSON>` in the URL, at most 4 KiB), if any;
   * typed (and, with a schema, validated) by the contract's `params`.
   */
  params: Params;
  /** The actor key from the path, with `keyFromPath`. */
  key?: string;
  /**
   * The same request as a WHATWG `Request`, for code written against `fetch` handlers: its `url`
   * is absolute, `http://` + the Host header + path and query. Built on first use.
   */
  readonly request: Request;
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

/**
 * An event or call handler. Without a contract `data` is `any`; with one it is the event's (or the
 * call's argument's) type, and a call's handler must return the declared result.
 */
export type Handler<Meta extends ConnectionMeta, State, C extends ContractSpec = any, E extends string = string> = (
  ctx: ConnectionContext<Meta, State, C>,
  data: InboundData<C, E>,
) => InboundResult<C, E>;

/** A type marker (`payload<Meta>()`) or a schema whose output is `T`. */
export type TypeSpec<T> = Payload<T> | StandardSchemaV1<any, T>;

export interface ConnectionOptions<Meta extends ConnectionMeta, State extends object, C extends ContractSpec = any> {
  /**
   * The connection's contract (`defineContract`): types every handler's `data`, `ctx.emit`,
   * `toRoom(...).emit`, `toUser(...).emit` and `req.params`, and the client typed from this
   * definition (`new WarrenClient<typeof Def>(url)`). Its schemas are run on what clients send:
   * an invalid payload never reaches the handler (a call gets a `bad_payload` error reply, an
   * event a `system:error` event; `onError` hears both).
   */
  contract?: C;
  /**
   * Types `ctx.meta` whatever order the options are written in: `meta: payload<Meta>()`.
   * Types only (a schema is not run). Without it, `ctx.meta` is inferred from `extractMeta`'s
   * result when `extractMeta` comes before the hooks, and is `ConnectionMeta` otherwise.
   */
  meta?: TypeSpec<Meta>;
  /**
   * Name of the definition: rooms bind to it, its stored state is kept under it, and
   * `server.destroyActor(name, userId)` addresses its actors.
   * @default "VeraniConnectionDO" (on another `websocketPath`: "VeraniConnectionDO:<path>")
   */
  name?: string;
  /** Path that upgrades to this kind of connection. @default "/ws" */
  websocketPath?: string;
  /**
   * `"json"`: the JSON event protocol (README "Wire protocol"). `"raw"`: messages as they are,
   * text or binary, to `onMessage` (see `defineRawConnection`, which types it).
   * @default "json"
   */
  messages?: "json" | "raw";
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
  extractMeta?(req: UpgradeRequest<ParamsOf<C>>): Meta | Promise<Meta>;
  /** Initial state of each actor (cloned per actor). */
  state?: State;
  /** Keys of `state` that are persisted. @default every key of `state` */
  persistedKeys?: Array<keyof State & string>;
  /** The actor was created (or woken); its state is loaded. Holds later events while it runs. */
  onInit?(ctx: ActorContext<State, C>): unknown;
  /** A session opened. A throw goes to `onError` and closes the session with 1011. */
  onConnect?(ctx: ConnectionContext<Meta, State, C>): unknown;
  /**
   * The actor woke from hibernation with sessions restored from their attachments (after
   * `onInit`, before the event that woke it).
   */
  onHibernationRestore?(ctx: ActorContext<State, C>): unknown;
  /**
   * Persisted state changed: called once per tick however many mutations there were, never on
   * reads. The state is read-only inside (a write throws).
   */
  onStateChange?(ctx: ActorContext<State, C>, state: State): unknown;
  /**
   * Validates an upgrade before `extractMeta` (Rivet's `onBeforeConnect`): a throw answers
   * 401 (or `err.status`) with `{"error": message, "code": err.code}`; no socket opens and no
   * hook of the actor runs.
   */
  onBeforeConnect?(req: UpgradeRequest<ParamsOf<C>>): unknown;
  /** A session closed. */
  onDisconnect?(ctx: ConnectionContext<Meta, State, C>, info: DisconnectInfo): unknown;
  /** An event no handler is registered for. */
  onMessage?(ctx: ConnectionContext<Meta, State, C>, frame: UnhandledFrame): unknown;
  /** The actor leaves memory (`ctx.reason`: "evicted", "shutdown" or "destroyed"). */
  onDestroy?(ctx: ActorContext<State, C> & { reason: DestroyReason }): unknown;
  /** A hook or handler threw. Without it, errors are printed to stderr (`lib/log.ts`). */
  onError?(error: unknown, ctx: ConnectionContext<Meta, State, C> | ActorContext<State, C>): unknown;
}

// ---- raw endpoints (`defineRawConnection`) ----

/** A raw endpoint's message as it arrived: a string for a text frame, bytes for a binary one. */
export type RawData = string | Uint8Array;

/** The `ctx` of a raw endpoint's session: a connection context that sends messages as they are. */
export interface RawConnectionContext<Meta extends ConnectionMeta, State> extends ConnectionContext<Meta, State> {
  /**
   * Sends `data` to this session as it is: a string as a text frame, bytes as a binary frame.
   * False when the session is gone or closing. (`emit` sends JSON events: a raw session gets none.)
   */
  send(data: RawData): boolean;
  /**
   * Sends `data` as it is to every raw session of every live member of `room` (this session
   * too, unless `exceptSelf`); returns how many (in cluster mode, on this node: the other
   * nodes' raw sessions get it a moment later). Encoded once and shared by all of them; JSON
   * sessions of the room do not get it.
   */
  sendToRoom(room: string, data: RawData, options?: { exceptSelf?: boolean }): number;
}

/**
 * A raw endpoint: its clients speak no JSON protocol; every message goes to `onMessage` as it
 * arrived and `ctx.send` answers as it is. Everything else is a connection's (`extractMeta`,
 * `onConnect`, `onDisconnect`, state, rooms). Raw sessions do not resume: a dropped socket ends
 * its session (`onDisconnect` with 1006).
 */
export interface RawConnectionOptions<Meta extends ConnectionMeta, State extends object>
  extends Omit<ConnectionOptions<Meta, State>, "contract" | "onConnect" | "onDisconnect" | "onMessage" | "onError"> {
  onConnect?(ctx: RawConnectionContext<Meta, State>): unknown;
  onDisconnect?(ctx: RawConnectionContext<Meta, State>, info: DisconnectInfo): unknown;
  /** Every message of a session, in order: a string (text frame) or bytes (binary frame). */
  onMessage?(ctx: RawConnectionContext<Meta, State>, data: RawData): unknown;
  onError?(error: unknown, ctx: RawConnectionContext<Meta, State> | ActorContext<State>): unknown;
}

export interface RawConnectionDefinition<Meta extends ConnectionMeta = ConnectionMeta, State extends object = {}>
  extends Readonly<RawConnectionOptions<Meta, State>> {
  readonly name: string;
  readonly websocketPath: string;
  readonly messages: "raw";
}

export interface ConnectionDefinition<
  Meta extends ConnectionMeta = ConnectionMeta,
  State extends object = {},
  C extends ContractSpec = any,
  Results = {},
> extends Readonly<ConnectionOptions<Meta, State, C>> {
  readonly name: string;
  readonly websocketPath: string;
  readonly handlers: ReadonlyMap<string, Handler<Meta, State>>;
  /** Types only (never set): the contract, for `new WarrenClient<typeof Definition>(url)`. */
  readonly "~contract"?: C;
  /**
   * Types only (never set): the (awaited) return type of each handler registered in a chain
   * (`defineConnection({...}).on("a", ...).on("b", ...)`): a client typed from the definition
   * gets it as the result of `call` when the contract declares none.
   */
  readonly "~results"?: Results;
  /**
   * Registers the handler of an event. When the client sent a call, the handler's (awaited)
   * return value is the reply. One handler per event: a second `on` replaces the first. With a
   * contract, `event` is one of its client events or calls, `data` has its type and a call's
   * handler returns its result. Returns the definition, its type noting the handler's result.
   * @example UserConnection.on("count.get", (ctx) => ctx.state.count);
   */
  on<E extends InboundName<C>, R extends InboundResult<C, E>>(
    event: E,
    handler: (ctx: ConnectionContext<Meta, State, C>, data: InboundData<C, E>) => R,
  ): ConnectionDefinition<Meta, State, C, Results & { [K in E]: Awaited<R> }>;
  off(event: InboundName<C>): this;
}

// ---- rooms (`createRoomHandler`) ----

/** A live member of a room. */
export interface RoomMember {
  userId: string;
  /** Milliseconds since the epoch when the user (re-)became a live member. */
  joinedAt: number;
  metadata: Record<string, unknown>;
}

/** A room as hooks and `server.room(name)` see it. */
export interface RoomContext<State = any, C extends ContractSpec = any> {
  /** The full room name, e.g. `conversation:123`. */
  readonly name: string;
  /** Room state (cloned from the definition's `state` when the room instance is created). */
  state: State;
  /**
   * Live members, in join order. In cluster mode only the node that owns the room (where its
   * hooks run) knows them all: elsewhere this throws a `WarrenError` (`room_elsewhere`), and
   * `fetchMembers()` asks the owner.
   */
  members(): RoomMember[];
  /**
   * Live members, in join order, as the room's owner has them: in cluster mode one request to
   * the node that owns the room (placing it here when no node does), from any node. Rejects with
   * a `WarrenError` (`cluster_unavailable`) when the owner does not answer within `callTimeoutMs`.
   */
  fetchMembers(): Promise<RoomMember[]>;
  memberCount(): number;
  hasMember(userId: string): boolean;
  /** Shallow-merges `patch` into a member's metadata; false when the user is not a member. */
  updateMemberMetadata(userId: string, patch: Record<string, unknown>): boolean;
  /**
   * Sends an event to every session of every member.
   * @returns how many sessions it was queued for.
   */
  emit<E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): number;
  /** The same as `emit`: every session of every member. */
  broadcast<E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): number;
  /**
   * Sends `data` as it is (a string as a text frame, bytes as a binary frame) to every raw
   * session of every member (see `defineRawConnection`); JSON sessions do not get it.
   * @returns how many sessions it was queued for (in cluster mode, on this node: the other
   * nodes' raw sessions get it a moment later).
   */
  sendRaw(data: RawData): number;
  /**
   * Destroys the room: every member leaves (`onLeave`) and drops it from its room list,
   * `onDestroy` runs with `reason === "destroyed"`, and its stored state is wiped.
   */
  destroy(): void;
}

export type RoomDestroyReason = "evicted" | "shutdown" | "destroyed";

/**
 * What a room hook receives first: the room context, which is also the room's state. Its own
 * properties are the state's keys (`roomState.totalJoins++` is persisted, `Object.keys` lists the
 * state, spreading copies it), and the context's members (`name`, `state`, `members()`,
 * `emit()`...) sit behind them, so `ctx.state.totalJoins++` and `ctx.emit(...)` work too.
 * A state key named like a member hides that member in this object (`ctx.state` still reaches
 * the whole state unless the state has a key `state`); assigning `state` replaces the state, and
 * assigning any other key writes the state.
 */
export type RoomHookContext<State, C extends ContractSpec = any> = RoomContext<State, C> & State;

export interface RoomOptions<State extends object = Record<string, any>, C extends ContractSpec = any> {
  /** A contract (`defineContract`) whose `serverEvents` type the room's `emit` and `broadcast`. */
  contract?: C;
  /** Name of the room handler; connections' `rooms` maps name it. @default "VeraniRoomDO" */
  name?: string;
  /**
   * Name of the connection definition whose users join this room. Without it, the room serves the
   * one connection definition whose `rooms` map names it.
   */
  connectionBinding?: string;
  state?: State;
  /** Keys of `state` that are persisted. @default every key of `state` */
  persistedKeys?: Array<keyof State & string>;
  /** The room instance was created (or woken). Holds its later hooks while it runs. */
  onInit?(roomState: RoomHookContext<State, C>): unknown;
  /** A user became a live member (joined, or came back with a new session). */
  onJoin?(roomState: RoomHookContext<State, C>, userId: string, metadata: Record<string, unknown>): unknown;
  /** A user stopped being a live member (left, or closed its last session). */
  onLeave?(roomState: RoomHookContext<State, C>, userId: string): unknown;
  /** Persisted room state changed (once per tick); the state is read-only inside. */
  onStateChange?(roomState: RoomHookContext<State, C>, state: State): unknown;
  /** The room instance leaves memory (`reason`: "evicted" when idle, "shutdown", or "destroyed"). */
  onDestroy?(roomState: RoomHookContext<State, C> & { readonly reason: RoomDestroyReason }): unknown;
  /** A hook threw. Without it, errors are printed to stderr (`lib/log.ts`). */
  onError?(error: unknown, roomState: RoomHookContext<State, C>): unknown;
}

export interface RoomDefinition<State extends object = any, C extends ContractSpec = any> extends Readonly<RoomOptions<State, C>> {
  readonly name: string;
}

// ---- what hooks and handlers receive ----

export interface ToRoomOptions {
  /** Also send to the sending session. @default false */
  includeSelf?: boolean;
}

/** Sends to every session of every live member of a room. */
export interface RoomTarget<C extends ContractSpec = any> {
  /** @returns how many sessions the event was queued for. */
  emit<E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): number;
}

/** Sends to every session of one user. */
export interface UserTarget<C extends ContractSpec = any> {
  /** @returns how many sessions the event was queued for. */
  emit<E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): number;
}

/**
 * `ctx.emit`: callable (sends to the current session), with `ctx.emit.emit` as an alias and
 * `ctx.emit.toUser(userId)` for every session of another user of the same definition.
 */
export interface Emit<C extends ContractSpec = any> {
  /** @returns false when the session has ended. */
  <E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): boolean;
  emit<E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): boolean;
  toUser(userId: string): UserTarget<C>;
  /**
   * Every session of every live member of `room`, except the sending session unless
   * `includeSelf`. Encoded once; fan-out happens in the native core.
   * @example ctx.emit.toRoom("chat").emit("chat.message", { text });
   */
  toRoom(room: string, options?: ToRoomOptions): RoomTarget<C>;
}

/** Sends from an actor-level hook: to every session of the actor. */
export interface ActorEmit<C extends ContractSpec = any> {
  /** @returns how many sessions the event was queued for. */
  <E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): number;
  emit<E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): number;
  toUser(userId: string): UserTarget<C>;
  toRoom(room: string): RoomTarget<C>;
}

/** A pending scheduled event. */
export interface ScheduledEvent {
  id: string;
  /** Due time, epoch milliseconds. */
  at: number;
  event: string;
  data: unknown;
}

/**
 * `ctx.schedule`: events delivered later to this actor's `on(event)` handler (with an
 * actor-level ctx: no `meta`, no `sessionId`). Stored: they survive restarts, and wake a
 * hibernated or evicted actor. Each fires at most once.
 */
export interface Scheduler {
  /** @returns the schedule's id. */
  after(ms: number, event: string, data?: unknown): string;
  at(when: Date | number, event: string, data?: unknown): string;
  /** Pending schedules, soonest first. */
  list(): ScheduledEvent[];
  /** @returns false when it already fired or does not exist. */
  cancel(id: string): boolean;
}

export interface SessionInfo {
  sessionId: number;
  meta: ConnectionMeta;
}

/** The actor as hooks see it. */
export interface ActorHandle {
  /** The actor's key: `meta.userId` of its sessions. */
  readonly key: string;
  /** The actor's open sessions, in connection order. */
  sessions(): SessionInfo[];
  /**
   * Closes the current session (in an actor-level hook: every session of the actor).
   * @param code 1000 or 3000–4999. @default 1000
   */
  close(code?: number, reason?: string): void;
  /**
   * Joins a room: every session of this user receives its messages while the user has a
   * session. Joining a room already joined is a no-op. @returns false for that no-op.
   */
  joinRoom(room: string, metadata?: Record<string, unknown>): boolean;
  /** Leaves a room. @returns false when the room was not joined. */
  leaveRoom(room: string): boolean;
  /** Rooms joined and not left, including while the user has no session. */
  getRooms(): string[];
  /**
   * Destroys the actor: it leaves its rooms, its sessions close with 1000 "Actor destroyed",
   * `onDestroy` runs with `ctx.reason === "destroyed"` and its stored state is wiped. The
   * user's next session starts from the defaults.
   */
  destroy(): void;
}

export interface ActorContext<State, C extends ContractSpec = any> {
  readonly actor: ActorHandle;
  state: State;
  readonly emit: ActorEmit<C>;
  /** Sends an event to every session of this actor; returns how many. */
  broadcast<E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): number;
  readonly schedule: Scheduler;
}

export interface ConnectionContext<Meta extends ConnectionMeta, State, C extends ContractSpec = any> {
  readonly meta: Meta;
  readonly sessionId: number;
  readonly actor: ActorHandle;
  state: State;
  readonly emit: Emit<C>;
  /** Sends an event to every session of this actor (every tab and device of the user). */
  broadcast<E extends ServerEventName<C>>(event: E, ...data: ServerEmitArgs<C, E>): number;
  readonly schedule: Scheduler;
}

export type DestroyContext<State, C extends ContractSpec = any> = ActorContext<State, C> & { readonly reason: DestroyReason };

// ---- the server (`createServer`): its options, in `server-options.ts` ----

export type { ClusterOptions, ListeningAddress, ListenOptions, ServerOptions, ServerStats, TlsOptions } from "./server-options";
