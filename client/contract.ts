/**
 * Contracts: one declaration of what travels on a connection, read by both ends. A contract
 * names the events the client sends (`clientEvents`), the events the server sends
 * (`serverEvents`), the calls with their argument and result (`calls`) and the connection
 * `params`; each entry is a type marker (`payload<T>()`, nothing at run time) or a Standard
 * Schema (zod, valibot, arktype... anything with a `~standard` member), whose types are inferred
 * and which the server runs on what clients send when the contract is given to
 * `defineConnection`.
 *
 * This file is types plus three tiny functions and no imports, so a front-end package can import
 * a contract module (and `warren/client`) without pulling in the server. The type helpers below
 * treat a section that is left out as untyped (any name, `any` data), so a contract can type
 * only part of a connection; a section that is given is closed: other names do not compile.
 */

// ---- Standard Schema (https://standardschema.dev), the subset warren reads ----

/** The interface zod (≥ 3.24), valibot (≥ 1) and arktype implement under `~standard`. */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly "~standard": StandardSchemaProps<Input, Output>;
}

export interface StandardSchemaProps<Input = unknown, Output = Input> {
  readonly version: 1;
  readonly vendor: string;
  /** Validates a value; may return a promise (async refinements). */
  readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
  /** Types only: the schema's input and output. */
  readonly types?: { readonly input: Input; readonly output: Output } | undefined;
}

export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<StandardIssue> };

export interface StandardIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

// ---- what a contract is made of ----

/** A type marker made by {@link payload}: declares a payload's type, checks nothing at run time. */
export interface Payload<T> {
  readonly "~payload"?: T;
}

/** One entry of a contract: a type marker or a Standard Schema. */
export type Spec = Payload<any> | StandardSchemaV1<any, any>;

/** A call: the type of its argument (`data`) and of its result (the handler's return value). */
export interface CallSpec {
  args?: Spec;
  result?: Spec;
}

/** What {@link defineContract} takes. Every section may be left out (it is then untyped). */
export interface ContractSpec {
  /** Events the client emits; the server's `on(event)` handlers receive them. */
  clientEvents?: Readonly<Record<string, Spec>>;
  /** Events the server sends (`ctx.emit`, `toRoom`, `toUser`, room `emit`); the client's `on` hears them. */
  serverEvents?: Readonly<Record<string, Spec>>;
  /** Calls the client makes (`client.call`), answered by the handler's return value. */
  calls?: Readonly<Record<string, CallSpec>>;
  /** The client's connection params (`params` option), as `req.params` sees them. */
  params?: Spec;
  /** Accepted for Verani's contracts (`verani/typed`) and unused: every frame is on "default". */
  channels?: ReadonlyArray<string>;
}

/** A contract: the spec as given, marked so that both ends can read its types. */
export type Contract<S extends ContractSpec = ContractSpec> = S & { readonly "~contract"?: S };

const CONTRACT = Symbol.for("warren.contract");

/**
 * Declares a connection's events, calls and params once, for the server (`defineConnection({
 * contract })`, `createRoomHandler({ contract })`) and the client (`new WarrenClient<typeof
 * contract>(url)`).
 * @example
 * export const chat = defineContract({
 *   clientEvents: { "chat.send": payload<{ text: string }>() },
 *   serverEvents: { "chat.message": payload<{ from: string; text: string }>() },
 *   calls: { "count.get": { result: payload<number>() } },
 * });
 */
export function defineContract<const S extends ContractSpec>(spec: S): Contract<S> {
  if (spec === null || typeof spec !== "object") throw new TypeError("defineContract needs an object");
  return Object.defineProperty({ ...spec }, CONTRACT, { value: true }) as Contract<S>;
}

/** Whether `value` was made by {@link defineContract}. */
export function isContract(value: unknown): value is Contract {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[CONTRACT] === true;
}

/**
 * A type-only entry: `payload<{ text: string }>()`. Nothing is checked at run time; use a
 * schema for that.
 */
export function payload<T>(): Payload<T> {
  return {};
}

// ---- reading a contract's types (shared by the server and the client) ----

/** Whether `T` is `any`. */
export type IsAny<T> = 0 extends 1 & T ? true : false;

/** What a value of this entry is after validation (handlers, listeners). */
export type Out<S> = S extends StandardSchemaV1<any, infer O> ? O : S extends Payload<infer T> ? T : unknown;

/** What a sender of this entry passes (before validation). */
export type In<S> = S extends StandardSchemaV1<infer I, any> ? I : S extends Payload<infer T> ? T : unknown;

/** The contract of `T`: a contract, a connection definition made with one, or anything with `~contract`. */
export type ContractOf<T> = IsAny<T> extends true
  ? any
  : T extends { readonly "~contract"?: infer C }
    ? IsAny<C> extends true
      ? any
      : C extends ContractSpec
        ? C
        : any
    : any;

type Section = "clientEvents" | "serverEvents" | "calls";

/** The entries of one section, or `undefined` when the contract leaves it out (untyped). */
type SectionOf<C, K extends Section> = IsAny<C> extends true
  ? undefined
  : C extends { readonly [P in K]: infer M }
    ? M extends object
      ? M
      : undefined
    : undefined;

/** Names of a section: any string when it is untyped. */
export type NamesOf<C, K extends Section> = SectionOf<C, K> extends infer M ? (M extends object ? keyof M & string : string) : never;

/** Arguments after the event name: `data` optional when it may be undefined, required otherwise. */
export type DataArgs<T> = IsAny<T> extends true ? [data?: any] : undefined extends T ? [data?: T] : [data: T];

// server → client events

export type ServerEventName<C> = NamesOf<C, "serverEvents">;
export type ServerEventData<C, E extends string> = SectionOf<C, "serverEvents"> extends infer M
  ? M extends object
    ? E extends keyof M
      ? Out<M[E]>
      : never
    : any
  : never;
/** What `emit(event, ...)` takes after the name on the sending side (server). */
export type ServerEmitArgs<C, E extends string> = SectionOf<C, "serverEvents"> extends object
  ? DataArgs<ServerEventData<C, E>>
  : [data?: object];

// client → server events and calls

export type ClientEventName<C> = NamesOf<C, "clientEvents">;
export type CallName<C> = NamesOf<C, "calls">;

/** The sender's view (client `emit`) of a client event's data. */
export type ClientEventInput<C, E extends string> = SectionOf<C, "clientEvents"> extends infer M
  ? M extends object
    ? E extends keyof M
      ? In<M[E]>
      : never
    : any
  : never;

type CallSpecOf<C, E extends string> = SectionOf<C, "calls"> extends infer M
  ? M extends object
    ? E extends keyof M
      ? M[E]
      : never
    : undefined
  : never;

/** The sender's view (client `call`) of a call's argument: nothing or `{}` when it declares none. */
export type CallInput<C, E extends string> = CallSpecOf<C, E> extends infer S
  ? S extends { args: infer A }
    ? In<A>
    : S extends object
      ? undefined | Record<string, never>
      : any
  : never;

/** What a call resolves with: the declared result (unknown when it declares none). */
export type CallResult<C, E extends string> = CallSpecOf<C, E> extends { result: infer R } ? Out<R> : unknown;

/** Names a server handler may be registered for: client events and calls (any string when either is untyped). */
export type InboundName<C> = ClientEventName<C> | CallName<C>;

/** Keys of a section the contract declares (none when it leaves the section out). */
type DeclaredNames<C, K extends Section> = SectionOf<C, K> extends infer M ? (M extends object ? keyof M & string : never) : never;

/**
 * What a server handler of `E` receives, validated: the event's data and/or the call's argument
 * (`unknown` for a call that declares none); `any` for a name no declared section has.
 */
export type InboundData<C, E extends string> = IsAny<C> extends true
  ? any
  : E extends DeclaredNames<C, "clientEvents"> | DeclaredNames<C, "calls">
    ?
        | (E extends DeclaredNames<C, "clientEvents"> ? Out<NonNullable<SectionOf<C, "clientEvents">>[E]> : never)
        | (E extends DeclaredNames<C, "calls"> ? (CallSpecOf<C, E> extends { args: infer A } ? Out<A> : unknown) : never)
    : any;

/** What a server handler of `E` may return: the call's declared result (anything otherwise). */
export type InboundResult<C, E extends string> = CallSpecOf<C, E> extends { result: infer R }
  ? Out<R> | PromiseLike<Out<R>>
  : unknown;

/** The connection params of a contract, as the server sees them (`req.params`). */
export type ParamsOf<C> = IsAny<C> extends true ? unknown : C extends { readonly params: infer P } ? Out<P> : unknown;

/** The connection params of a contract, as the client sends them. */
export type ParamsInput<C> = IsAny<C> extends true ? unknown : C extends { readonly params: infer P } ? In<P> : unknown;
