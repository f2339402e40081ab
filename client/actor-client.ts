/**
 * `actorClient<Counter>(url)`: a typed handle on one actor served from an `Actor` class
 * (`createServer({ actors })`), where `await counter.increment(5)` calls the actor's method
 * `increment(rpc, 5)`.
 * A thin layer over {@link WarrenClient}: each method is `client.call(name, args)`.
 *
 * Nothing of the server is imported: the actor class is used as a type only
 * (`import type { Counter } from "./server"`).
 */

import { WarrenClient } from "./client";
import type { IsAny, Payload } from "./contract";
import type { WarrenClientOptions } from "./options";
import type { ListenData, ListenName } from "./types";

/** Names the handle keeps for itself; an actor method with one of them is reached with `call`. */
type Reserved = "client" | "call" | "on" | "once" | "off" | "close" | "then";

/**
 * The public methods of an actor class, each returning a promise of its (awaited) result and
 * taking the method's arguments after its first: the server passes that one (`rpc: Rpc<A>`), so
 * `increment(rpc: Rpc<Counter>, by: number)` is `increment(by)` here. Members whose name starts
 * with `_` (the hooks and `Actor`'s own members, which are protected anyway) and non-method
 * members are left out.
 */
export type ActorMethods<A> = {
  [K in keyof A as K extends string
    ? K extends `_${string}` | `~${string}` | Reserved
      ? never
      : A[K] extends (...args: any[]) => any
        ? K
        : never
    : never]: A[K] extends (rpc: any, ...args: infer P) => infer R ? (...args: P) => Promise<Awaited<R>> : never;
};

/**
 * The events an actor class declares (`Actor<State, ConnParams, ConnState, Events>`), as a
 * contract's `serverEvents`; `any` (untyped) when it declares none.
 */
export type ActorEventsContract<A> = A extends { readonly "~events"?: infer E }
  ? IsAny<E> extends true
    ? any
    : unknown extends E
      ? any
      : { readonly "~contract"?: { serverEvents: { [K in keyof Exclude<E, undefined> & string]: Payload<Exclude<E, undefined>[K]> } } }
  : any;

/** What every handle has besides the actor's methods; `C` types its events. */
export interface ActorHandleBase<C = any> {
  /** The underlying client (state, reconnection, `emit`, `waitForConnection`...). */
  readonly client: WarrenClient;
  /**
   * Calls a method by name: for names the handle reserves (`on`, `close`...) or not known to the
   * type. `call("increment", 5)` is `increment(5)`.
   */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
  /**
   * Listens to an event the actor sends (`this._broadcast`, `conn.send`) or a lifecycle event;
   * typed by the class's `Events` type argument when it has one.
   */
  on<E extends ListenName<C>>(event: E, listener: (data: ListenData<C, E>) => void): () => void;
  once<E extends ListenName<C>>(event: E, listener: (data: ListenData<C, E>) => void): () => void;
  off<E extends ListenName<C>>(event: E, listener: (data: ListenData<C, E>) => void): void;
  /** Closes the connection for good (see {@link WarrenClient.close}). */
  close(): void;
}

/** A handle on one actor: its public methods and its events, plus {@link ActorHandleBase}. */
export type ActorClient<A> = ActorMethods<A> & ActorHandleBase<ActorEventsContract<A>>;

/** Options of {@link actorClient}: the client's, and the timeout of method calls. */
export interface ActorClientOptions extends WarrenClientOptions {
  /** Milliseconds a method call waits for its reply. @default 10000 (the client's call default) */
  callTimeout?: number;
}

/** Any method name, for handles created without a type argument. */
type Untyped = Record<string, (...args: any[]) => any>;

/**
 * Connects to one actor and returns a handle whose methods call it.
 * @param url the actor's URL, `ws://host/actors/<kind>/<key>` (see {@link actorUrl}).
 * @example
 * import type { Counter } from "../server/counter";
 * const counter = actorClient<Counter>(actorUrl("ws://127.0.0.1:8787", "counter", "abc"), { params: { token } });
 * counter.on("countUpdated", ({ count }) => render(count));
 * const count = await counter.increment(5);
 * counter.close();
 */
export function actorClient<A = Untyped>(url: string, options: ActorClientOptions = {}): ActorClient<A> {
  const { callTimeout, ...clientOptions } = options;
  const client = new WarrenClient(url, clientOptions);
  const callOptions = callTimeout === undefined ? {} : { timeout: callTimeout };
  const call = <T>(method: string, ...args: unknown[]) => client.call<T>(method, args, callOptions);
  const base: ActorHandleBase<any> = {
    client,
    call,
    on: (event, listener) => client.on(event, listener),
    once: (event, listener) => client.once(event, listener),
    off: (event, listener) => client.off(event, listener),
    close: () => client.close(),
  };
  const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  return new Proxy(base, {
    get(target, property, receiver) {
      // Symbols, the base's members and Object.prototype's (toString, valueOf...) stay what they are.
      if (typeof property !== "string" || property in target) return Reflect.get(target, property, receiver);
      // Not methods: `then` (a handle must not look like a promise), `toJSON`, private-looking names.
      if (property === "then" || property === "toJSON" || property.startsWith("_") || property.startsWith("#")) {
        return undefined;
      }
      let method = methods.get(property);
      if (method === undefined) {
        method = (...args: unknown[]) => call(property, ...args);
        methods.set(property, method);
      }
      return method;
    },
  }) as ActorClient<A>;
}

/**
 * The URL of an actor: `actorUrl("ws://127.0.0.1:8787", "counter", "room 1")` is
 * `ws://127.0.0.1:8787/actors/counter/room%201`.
 */
export function actorUrl(base: string, kind: string, key: string): string {
  return `${base.replace(/\/+$/, "")}/actors/${encodeURIComponent(kind)}/${encodeURIComponent(key)}`;
}
