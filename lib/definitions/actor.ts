/**
 * The Rivet-style class API (Rivet Actor SDK / ActorCore ≤ 0.6): `class Counter extends Actor`
 * with `_on…` hooks and public methods callable as RPC. It is an adapter: `defineActor` turns a
 * class into an ordinary connection definition (`keyFromPath` on `/actors/<kind>/`), and the
 * runtime underneath is the one every `defineConnection` uses.
 *
 * How the pieces map:
 * - one instance per actor, built in `onInit` (create or wake). It is reachable only through
 *   `instances`, a WeakMap keyed by the actor's state proxy, so it leaves the heap with its actor
 *   (hibernation, eviction, destroy) and a wake builds a new one.
 * - the persisted state is `{ initialized, state }`: `this._state` is its `state`, and
 *   `initialized` says whether `_onInitialize` ever ran for this key (destroy wipes it).
 * - `_onBeforeConnect` runs in `extractMeta`, before the upgrade and outside the actor; its result
 *   travels in the session's meta (`connState`, with a `connId`), which is the session's
 *   attachment: it survives hibernation, so `this._connections` is rebuilt on wake.
 * - a public method is the handler of the event with its name: the call's data is the argument
 *   array, the method is called with an `Rpc` (`rpc.connection`) before those arguments, and its
 *   return value is the reply.
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import type { DataArgs, IsAny } from "../../client/contract";
import { UserError, WarrenError } from "../errors";
import { contextLog, type Logger } from "../log";
import { isThenable } from "../runtime/guard";
import type {
  ActorContext,
  ConnectionContext,
  ConnectionDefinition,
  ConnectionMeta,
  Scheduler,
  UpgradeRequest,
} from "../types";
import { defineConnection } from "./connection";

/** A connection to an actor, as `_onConnect`, `_onDisconnect` and `this._connections` see it. */
export interface ActorConnection<ConnState = unknown, Events = any> {
  /** Stable for the life of the socket (hibernation included). */
  readonly id: string;
  /**
   * What `_onBeforeConnect` returned, deep-frozen: it is kept in the session's attachment, so a
   * change could not survive hibernation and is refused instead.
   */
  readonly state: ConnState;
  /**
   * Sends an event to this connection only. `data` is a plain object (its fields are spread into
   * the event). Returns false when the socket is gone, and for a connection restored after
   * hibernation that has not sent anything since (the runtime cannot address it yet). With the
   * class's `Events` type argument, the name and the payload are checked.
   */
  send<E extends EventName<Events>>(event: E, ...data: EventArgs<Events, E>): boolean;
  /** Closes this connection with 1000 and `reason`. Same limit as `send` after hibernation. */
  disconnect(reason?: string): void;
}

/** What `_onBeforeConnect` receives. */
export interface BeforeConnectOptions<ConnParams> {
  /** The HTTP upgrade request (`request.key` is the actor key). */
  request: UpgradeRequest;
  /** The client's connection params (`params` option of the client), or undefined. */
  parameters: ConnParams;
}

/**
 * The type arguments of an actor class (`Actor<State, ConnParams, ConnState>`), carried by a
 * phantom member under a symbol that exists only for the type checker: `Rpc<Counter>` reads
 * them from there without walking the class's methods, which name `Rpc<Counter>` themselves.
 */
declare const actorTypes: unique symbol;

/** The type arguments an actor class was declared with. */
interface ActorTypes<State, ConnParams, ConnState> {
  state: State;
  connParams: ConnParams;
  connState: ConnState;
}

/** Names `_broadcast` takes: the keys of `Events`, or any string when it is `any`. */
type EventName<Events> = IsAny<Events> extends true ? string : keyof Events & string;
/** What `_broadcast(event, ...)` takes after the name. */
type EventArgs<Events, E> = IsAny<Events> extends true
  ? [data?: object]
  : E extends keyof Events
    ? DataArgs<Events[E]>
    : never;

/** Any actor class's instance type. */
export type AnyActor = Actor<any, any, any, any>;

type ConnParamsOf<A> = A extends { readonly [actorTypes]?: ActorTypes<any, infer P, any> } ? P : never;
type ConnStateOf<A> = A extends { readonly [actorTypes]?: ActorTypes<any, any, infer S> } ? S : never;
type EventsOf<A> = A extends { readonly "~events"?: infer E } ? E : any;

/**
 * A connection to the actor class `A` (Rivet's `Connection<Counter>`): `conn.state` is what
 * `_onBeforeConnect` returned. The same as `ActorConnection<ConnState>`.
 */
export type Connection<A extends AnyActor = AnyActor> = ActorConnection<ConnStateOf<A>, EventsOf<A>>;

/**
 * What `_onBeforeConnect` of the actor class `A` receives (Rivet's `OnBeforeConnectOptions<Counter>`):
 * `parameters` typed as its `ConnParams`. The same as `BeforeConnectOptions<ConnParams>`.
 */
export type OnBeforeConnectOptions<A extends AnyActor = AnyActor> = BeforeConnectOptions<ConnParamsOf<A>>;

/**
 * The first argument of every RPC method of the actor class `A` (Rivet's `Rpc<Counter>`):
 * `increment(rpc: Rpc<Counter>, by: number)` is called by the client as `increment(by)`.
 */
export interface Rpc<A extends AnyActor = AnyActor> {
  /**
   * The connection that made the call. A call made by `this._schedule` has none: there it is
   * `undefined`, whatever the type says (`this._connection` is the same, typed as optional).
   */
  readonly connection: Connection<A>;
}

/** Root of an actor's persisted state. */
interface Root {
  initialized: boolean;
  state: unknown;
}

/** What an instance is bound to while its actor is in the heap. */
interface Binding {
  readonly kind: string;
  readonly ctx: ActorContext<Root>;
  readonly connections: Map<string, LiveConnection>;
  /** `_onInitialize` and `_onStart` are done; `_onStateChange` fires from then on. */
  ready: boolean;
  /** The constructor, `_onInitialize` or `_onStart` failed (the error was logged): the actor refuses work. */
  failed: boolean;
}

/** The hooks as the adapter calls them (they are protected on the class). */
interface Hooks {
  _onInitialize?(): unknown;
  _onStart?(): unknown;
  _onStateChange?(state: unknown): unknown;
  _onBeforeConnect?(options: BeforeConnectOptions<unknown>): unknown;
  _onConnect?(conn: ActorConnection<unknown>): unknown;
  _onDisconnect?(conn: ActorConnection<unknown>): unknown;
  [method: string]: unknown;
}

/** The instance of each actor in the heap, keyed by its state proxy (one per actor, never reused). */
const instances = new WeakMap<object, Actor<any, any, any>>();
const bindings = new WeakMap<Actor<any, any, any>, Binding>();
/** The connection whose call is running, across its awaits. */
const currentConnection = new AsyncLocalStorage<ActorConnection<unknown> | undefined>();

function bindingOf(actor: Actor<any, any, any>, member: string): Binding {
  const binding = bindings.get(actor);
  if (binding === undefined) {
    throw new WarrenError(
      "actor_not_loaded",
      `this.${member} is not available here: _onBeforeConnect runs before the upgrade, outside the actor ` +
        "(and an instance built with `new` is not an actor; serve the class with createServer({ actors }))",
    );
  }
  return binding;
}

/**
 * A durable actor written as a class, Rivet style. One instance per key at
 * `/actors/<kind>/<key>`; serve it with `createServer({ actors: { <kind>: Class } })`.
 *
 * Hooks (all optional): `_onInitialize()` once per key ever, returning the initial state;
 * `_onStart()` on every start (created, or woken from hibernation or eviction);
 * `_onStateChange(state)`; `_onBeforeConnect({ request, parameters })` returning the connection
 * state (a throw refuses the upgrade with 401 and the error's message and `code`);
 * `_onConnect(conn)`; `_onDisconnect(conn)`.
 *
 * Every public method is an RPC, called as Rivet calls it: the client's `counter.increment(5)`
 * (`call("increment", [5])`) runs `this.increment(rpc, 5)`, where `rpc.connection` is the
 * calling connection, and the (awaited) return value is the reply. Members whose name starts
 * with `_` are not callable (`not_found`). Throw `UserError` to send the client a code.
 *
 * @example
 * class Counter extends Actor<{ count: number }> {
 *   protected override _onInitialize() { return { count: 0 }; }
 *   increment(rpc: Rpc<Counter>, by: number) {
 *     this._state.count += by;
 *     this._broadcast("countUpdated", { count: this._state.count });
 *     return this._state.count;
 *   }
 * }
 * createServer({ actors: { counter: Counter } }); // ws://host/actors/counter/<key>
 */
export abstract class Actor<State = unknown, ConnParams = unknown, ConnState = unknown, Events = any> {
  /** Types only (never set): the class's type arguments, for `Rpc<A>`, `Connection<A>` and `OnBeforeConnectOptions<A>`. */
  declare readonly [actorTypes]?: ActorTypes<State, ConnParams, ConnState>;
  /**
   * Types only (never set): the events the actor sends, name → payload, for `this._broadcast`
   * and `actorClient<A>`'s `on`. `any` (every name) unless the class gives `Events`.
   */
  declare readonly "~events"?: Events;

  /** Runs once per key (the first start ever, or the first after `_shutdown()`); returns the initial state. Without it, state is disabled. */
  protected _onInitialize?(): State | Promise<State>;
  /** Runs on every start, after the state is loaded and before any connection or call. */
  protected _onStart?(): void | Promise<void>;
  /**
   * The persisted state changed: once per tick for a burst of changes, never on reads, not for
   * the changes `_onInitialize` and `_onStart` make. The state is read-only inside.
   */
  protected _onStateChange?(state: State): void;
  /**
   * Authenticates a connection before the upgrade and returns its `conn.state` (JSON). A throw
   * refuses it: HTTP 401 (or `err.status`) with the message and `err.code`; no hook runs for it.
   * It runs outside the actor: `this` has the class's methods but no state or connections.
   */
  protected _onBeforeConnect?(options: BeforeConnectOptions<ConnParams>): ConnState | Promise<ConnState>;
  /** A connection opened (it is in `this._connections` already). A throw closes it with 1011. */
  protected _onConnect?(conn: ActorConnection<ConnState, Events>): void | Promise<void>;
  /** A connection closed (it has left `this._connections`). */
  protected _onDisconnect?(conn: ActorConnection<ConnState, Events>): void | Promise<void>;

  /** The persisted state; assigning replaces it. */
  protected get _state(): State {
    const binding = bindingOf(this, "_state");
    if (typeof (this as unknown as Hooks)._onInitialize !== "function") throw stateNotEnabled(binding.kind);
    return binding.ctx.state.state as State;
  }

  protected set _state(value: State) {
    const binding = bindingOf(this, "_state");
    if (typeof (this as unknown as Hooks)._onInitialize !== "function") throw stateNotEnabled(binding.kind);
    binding.ctx.state.state = value;
  }

  /** Open connections by id. */
  protected get _connections(): ReadonlyMap<string, ActorConnection<ConnState, Events>> {
    return bindingOf(this, "_connections").connections as ReadonlyMap<string, ActorConnection<ConnState, Events>>;
  }

  /** The connection whose call is running (across its awaits); undefined outside a call. */
  protected get _connection(): ActorConnection<ConnState, Events> | undefined {
    bindingOf(this, "_connection");
    return currentConnection.getStore() as ActorConnection<ConnState, Events> | undefined;
  }

  /** The actor's key (the last path segment of its URL, decoded). */
  protected get _key(): string {
    return bindingOf(this, "_key").ctx.actor.key;
  }

  /**
   * Schedules a call of one of this actor's methods: `this._schedule.after(1000, "tick", [args])`.
   * Stored; survives restarts and wakes the actor. `this._connection` is undefined in that call.
   */
  protected get _schedule(): Scheduler {
    return bindingOf(this, "_schedule").ctx.schedule;
  }

  /**
   * Rivet's explicit save. warren commits every change at the end of the tick it was made in
   * (one group commit for all actors), and under `durability: "strict"` a reply leaves only once
   * the state before it is on disk, so there is nothing to force: this resolves once the
   * current tick's changes are handed to the store.
   */
  protected _saveState(_options?: { immediate?: boolean }): Promise<void> {
    bindingOf(this, "_saveState");
    return new Promise((resolve) => setImmediate(resolve));
  }

  /**
   * A logger named `warren:actor:<kind>`: the server's `logger` option's child, or by default
   * stderr (`debug` shown with `DEBUG=warren:*`).
   */
  protected get _log(): Logger {
    const { kind, ctx } = bindingOf(this, "_log");
    return contextLog(ctx, `actor:${kind}`);
  }

  /**
   * Sends an event to every connection; returns how many. `data` is a plain object; with the
   * class's `Events` type argument, the name and the payload are checked.
   */
  protected _broadcast<E extends EventName<Events>>(event: E, ...data: EventArgs<Events, E>): number;
  protected _broadcast(event: string, ...[data]: any[]): number {
    return bindingOf(this, "_broadcast").ctx.broadcast(event, data);
  }

  /**
   * Destroys the actor for good: its connections close with 1000 "Actor destroyed" (no
   * `_onDisconnect` runs: the actor is gone) and its stored state is wiped, so the next
   * connection to this key starts with `_onInitialize`. It happens at the next turn of the
   * event loop, so that the reply of the call asking for it still goes out; the promise
   * resolves then.
   */
  protected _shutdown(): Promise<void> {
    const { ctx } = bindingOf(this, "_shutdown");
    return new Promise((resolve) =>
      setImmediate(() => {
        ctx.actor.destroy();
        resolve();
      }),
    );
  }
}

function stateNotEnabled(kind: string): WarrenError {
  return new WarrenError("state_not_enabled", `${kind} has no state: define _onInitialize() to return the initial state`);
}

/** A concrete subclass of `Actor`. */
export type ActorClass = new () => Actor<any, any, any, any>;

class LiveConnection implements ActorConnection<unknown> {
  /** The session's context: from `onConnect`, or from its first event after a wake. */
  session: ConnectionContext<ConnectionMeta, Root> | null;

  constructor(
    readonly id: string,
    readonly state: unknown,
    session: ConnectionContext<ConnectionMeta, Root> | null,
  ) {
    this.session = session;
  }

  send(event: string, data?: object): boolean {
    return this.session?.emit(event, data) ?? false;
  }

  disconnect(reason = ""): void {
    this.session?.actor.close(1000, reason);
  }
}

/** The `rpc` argument of a method call. */
class RpcContext implements Rpc<AnyActor> {
  readonly connection: ActorConnection<any>;

  /** @param connection the caller; undefined for a call made by `this._schedule`. */
  constructor(connection: ActorConnection<any> | undefined) {
    this.connection = connection as ActorConnection<any>;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** Names of the methods of `prototype` and its ancestors up to `Actor`, split by callability. */
function methodsOf(prototype: object): { rpc: string[]; refused: string[] } {
  const rpc: string[] = [];
  const refused = new Set<string>(["constructor"]);
  const seen = new Set<string>();
  for (let p: object | null = prototype; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (seen.has(name)) continue;
      seen.add(name);
      if (name.startsWith("_") || name.startsWith("#") || name === "constructor") {
        refused.add(name);
        continue;
      }
      if (p === Actor.prototype) continue;
      const descriptor = Object.getOwnPropertyDescriptor(p, name)!;
      if (typeof descriptor.value === "function") rpc.push(name);
    }
  }
  return { rpc, refused: [...refused] };
}

const KIND = /^[A-Za-z0-9._~-]+$/;

/**
 * The connection definition serving an `Actor` subclass at `/actors/<kind>/<key>` (what
 * `createServer({ actors })` does for each entry). Its name is `kind`, so
 * `server.destroyActor(kind, key)` and `DELETE /actors/<kind>/<key>` address it.
 */
export function defineActor(kind: string, ActorClass: ActorClass): ConnectionDefinition<ConnectionMeta, Root> {
  if (typeof kind !== "string" || !KIND.test(kind)) {
    throw new WarrenError("invalid_option", `actors: "${String(kind)}" is not a valid actor kind (letters, digits, "-", "_", ".", "~")`);
  }
  if (typeof ActorClass !== "function" || !(ActorClass.prototype instanceof Actor)) {
    throw new WarrenError("invalid_option", `actors.${kind} must be a class extending Actor`);
  }
  const prototype = ActorClass.prototype as unknown as Hooks;
  for (const hook of ["_onInitialize", "_onStart", "_onStateChange", "_onBeforeConnect", "_onConnect", "_onDisconnect"]) {
    if (prototype[hook] !== undefined && typeof prototype[hook] !== "function") {
      throw new WarrenError("invalid_option", `actors.${kind}: ${hook} must be a method`);
    }
  }

  /** The instance and binding of the actor a context belongs to. */
  const lookup = (ctx: { state: unknown }): [Hooks, Binding] => {
    const instance = instances.get(ctx.state as object);
    const binding = instance && bindings.get(instance);
    if (instance === undefined || binding === undefined) {
      throw new WarrenError("actor_failed", `${kind} "${(ctx as ActorContext<Root>).actor.key}" has no instance (its constructor failed)`);
    }
    if (binding.failed) {
      throw new WarrenError("actor_failed", `${kind} "${binding.ctx.actor.key}" failed to start; see the error logged then`);
    }
    return [instance as unknown as Hooks, binding];
  };

  /** The connection of a session (bound to its context), or undefined for an actor-level ctx (schedules). */
  const connectionOf = (binding: Binding, ctx: Partial<ConnectionContext<ConnectionMeta, Root>>): LiveConnection | undefined => {
    const id = ctx.meta?.connId;
    if (typeof id !== "string") return undefined;
    const conn = binding.connections.get(id);
    if (conn !== undefined && conn.session === null) conn.session = ctx as ConnectionContext<ConnectionMeta, Root>;
    return conn;
  };

  /** Like `lookup`, for hooks that have nothing to do for an actor that failed: undefined then. */
  const found = (ctx: { state: unknown }): [Hooks, Binding] | undefined => {
    const instance = instances.get(ctx.state as object);
    const binding = instance && bindings.get(instance);
    if (instance === undefined || binding === undefined || binding.failed) return undefined;
    return [instance as unknown as Hooks, binding];
  };

  const definition = defineConnection<ConnectionMeta, Root>({
    name: kind,
    websocketPath: `/actors/${kind}/`,
    keyFromPath: true,
    state: { initialized: false, state: undefined },
    extractMeta(request) {
      const connId = randomUUID();
      const userId = request.key!;
      if (typeof prototype._onBeforeConnect !== "function") return { userId, connId };
      // Outside the actor: the class's methods, no binding (its members throw a clear error).
      const detached = Object.create(prototype) as Hooks;
      const connState = detached._onBeforeConnect!({ request, parameters: request.params });
      const meta = (state: unknown): ConnectionMeta => ({ userId, connId, connState: state });
      return isThenable(connState) ? Promise.resolve(connState).then(meta) : meta(connState);
    },
    onInit(ctx) {
      const binding: Binding = { kind, ctx, connections: new Map(), ready: false, failed: false };
      const fail = (error: unknown): never => {
        binding.failed = true;
        throw error;
      };
      let result: unknown;
      try {
        const instance = new ActorClass() as unknown as Hooks;
        bindings.set(instance as unknown as Actor, binding);
        instances.set(ctx.state, instance as unknown as Actor);
        const root = ctx.state;
        const start = () => instance._onStart?.();
        if (!root.initialized && typeof instance._onInitialize === "function") {
          // The key counts as initialised only once `_onInitialize` returned: a throw retries next start.
          const store = (initial: unknown) => {
            root.state = initial;
            root.initialized = true;
            return start();
          };
          const initial = instance._onInitialize();
          result = isThenable(initial) ? Promise.resolve(initial).then(store) : store(initial);
        } else {
          result = start();
        }
      } catch (error) {
        fail(error);
      }
      // Ready one microtask after the changes of `_onInitialize` and `_onStart`, whose commit
      // (and its onStateChange) is queued before: they do not reach `_onStateChange`. Returning
      // a promise also holds the actor's connections and calls until then.
      const ready = () =>
        new Promise<void>((resolve) =>
          queueMicrotask(() => {
            binding.ready = true;
            resolve();
          }),
        );
      return isThenable(result) ? Promise.resolve(result).then(ready, fail) : ready();
    },
    onHibernationRestore(ctx) {
      const actor = found(ctx);
      if (actor === undefined) {
        ctx.actor.close(1011, "Actor failed to start");
        return;
      }
      const connections = actor[1].connections;
      for (const { meta } of ctx.actor.sessions()) {
        const id = meta.connId;
        if (typeof id === "string" && !connections.has(id)) {
          connections.set(id, new LiveConnection(id, deepFreeze(meta.connState), null));
        }
      }
    },
    onConnect(ctx) {
      const [instance, binding] = lookup(ctx);
      const id = typeof ctx.meta.connId === "string" ? ctx.meta.connId : String(ctx.sessionId);
      const conn = new LiveConnection(id, deepFreeze(ctx.meta.connState), ctx);
      binding.connections.set(id, conn);
      if (typeof instance._onConnect !== "function") return undefined;
      // A connection whose `_onConnect` failed is closed (1011) and never reaches `_onDisconnect`.
      const forget = (error: unknown): never => {
        binding.connections.delete(id);
        throw error;
      };
      let result: unknown;
      try {
        result = instance._onConnect(conn);
      } catch (error) {
        forget(error);
      }
      return isThenable(result) ? Promise.resolve(result).then(undefined, forget) : result;
    },
    onDisconnect(ctx) {
      const actor = found(ctx);
      if (actor === undefined) return undefined;
      const [instance, binding] = actor;
      const id = typeof ctx.meta.connId === "string" ? ctx.meta.connId : String(ctx.sessionId);
      const conn = binding.connections.get(id);
      if (conn === undefined) return undefined;
      binding.connections.delete(id);
      return instance._onDisconnect?.(conn);
    },
    onStateChange:
      typeof prototype._onStateChange === "function"
        ? (ctx, root) => {
            const actor = found(ctx);
            if (actor === undefined || !actor[1].ready) return undefined;
            return actor[0]._onStateChange!(root.state);
          }
        : undefined,
  });

  const { rpc, refused } = methodsOf(prototype);
  for (const name of rpc) {
    const handler = (ctx: ConnectionContext<ConnectionMeta, Root>, data: unknown) => {
      const [instance, binding] = lookup(ctx);
      const method = instance[name];
      if (typeof method !== "function") {
        throw new UserError(`${kind} has no method "${name}"`, { code: "not_found" });
      }
      const args = data === undefined ? [] : Array.isArray(data) ? data : [data];
      const conn = connectionOf(binding, ctx);
      return currentConnection.run(conn, () => method.call(instance, new RpcContext(conn), ...args));
    };
    try {
      definition.on(name, handler);
    } catch (error) {
      throw new WarrenError("invalid_option", `actors.${kind}: the method "${name}" cannot be an RPC (${(error as Error).message})`);
    }
  }
  for (const name of refused) {
    definition.on(name, () => {
      throw new UserError(`"${name}" is not a public method of ${kind}`, { code: "not_found" });
    });
  }
  return definition;
}
