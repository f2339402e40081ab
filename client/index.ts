/**
 * `warren/client`: the public entry of the client package, re-exports only. Works in browsers
 * (ESM bundle `client/index.mjs`) and in Node (CJS `client/index.js`).
 *
 * Layout:
 * - `client.ts`       `WarrenClient`, the connection state machine
 * - `actor-client.ts` `actorClient<A>()`, a typed handle on one `Actor` class
 * - `contract.ts`     `defineContract`, `payload()`, Standard Schema: one declaration for both ends
 * - `protocol.ts`     wire frames, decode (never throws) and encode
 * - `options.ts`      option types, defaults, validation, the connection URL with `params`
 * - `backoff.ts`      reconnect delays with jitter
 * - `queue.ts`        the bounded offline queue
 * - `heartbeat.ts`    ping / pong deadline for one open socket
 * - `calls.ts`        calls waiting for their reply
 * - `emitter.ts`      listeners with isolated exceptions
 * - `errors.ts`       `WarrenClientError` and its codes
 * - `waiters.ts`      promises of `waitForConnection()`
 * - `types.ts`        public types: states, lifecycle event arguments, call options
 */

export { DEFAULT_CALL_TIMEOUT, WarrenClient, WarrenClient as VeraniClient } from "./client";
export {
  defineContract,
  isContract,
  payload,
  type CallSpec,
  type Contract,
  type ContractOf,
  type ContractSpec,
  type In,
  type Out,
  type Payload,
  type Spec,
  type StandardIssue,
  type StandardResult,
  type StandardSchemaProps,
  type StandardSchemaV1,
} from "./contract";
export {
  actorClient,
  actorUrl,
  type ActorClient,
  type ActorEventsContract,
  type ActorClientOptions,
  type ActorHandleBase,
  type ActorMethods,
} from "./actor-client";
export { DEFAULT_RECONNECTION, type ReconnectionOptions } from "./backoff";
export { WarrenClientError, type ClientErrorCode } from "./errors";
export {
  DEFAULT_OPTIONS,
  MAX_PARAMS_BYTES,
  type WarrenClientOptions,
  type WarrenClientOptions as VeraniClientOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./options";
export type {
  CallFrame,
  ClientFrame,
  EventFrame,
  PingFrame,
  PongFrame,
  ReplyError,
  ReplyFrame,
  ServerEventFrame,
  ServerFrame,
} from "./protocol";
export type {
  CallArgs,
  CallNameOf,
  CallOptions,
  CallResultOf,
  EmitArgs,
  EmitName,
  ListenData,
  ListenName,
  ParamsFor,
  ClientState,
  CloseInfo,
  ConnectedInfo,
  ConnectionSnapshot,
  EventData,
  LifecycleEvents,
  ReconnectingInfo,
  StateListener,
} from "./types";
