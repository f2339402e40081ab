/**
 * The client's public types: its states and what its lifecycle events and methods carry. Types
 * only, so the state machine in `client.ts` reads without them.
 */

import type {
  CallInput,
  CallName,
  CallResult,
  ClientEventInput,
  ClientEventName,
  ContractOf,
  DataArgs,
  IsAny,
  ParamsInput,
  ServerEventData,
  ServerEventName,
} from "./contract";
import type { WarrenClientError } from "./errors";

/**
 * Where the client is:
 * - `connecting`: an attempt is in progress.
 * - `connected`: the socket is open; emits and calls are written at once.
 * - `reconnecting`: the connection was lost; the next attempt waits for its backoff delay.
 * - `disconnected`: stopped until `reconnect()`: after `disconnect()`/`close()`, a server close
 *   with 1000 "Actor destroyed", or any close when reconnection is disabled.
 * - `error`: `reconnection.maxAttempts` attempts in a row failed; stopped until `reconnect()`.
 */
export type ClientState = "connecting" | "connected" | "disconnected" | "reconnecting" | "error";

/** How a socket ended, given to `close` and `disconnected` listeners. */
export interface CloseInfo {
  /** The WebSocket close code; 4000 after a pong timeout, 1006 after a connect timeout. */
  code: number;
  reason: string;
  /** Whether the closing handshake completed. */
  wasClean: boolean;
}

/** Given to `connected` listeners. */
export interface ConnectedInfo {
  /**
   * Whether the server resumed the earlier session: every event missed while offline was
   * replayed before this, in order. `false` on the first connection and whenever resume was not
   * possible (the app should re-sync then).
   */
  resumed: boolean;
}

/** Given to `reconnecting` listeners. */
export interface ReconnectingInfo {
  /** 1 for the first attempt after a loss, counting up while attempts fail. */
  attempt: number;
  /** Milliseconds until this attempt starts, jitter included. */
  delay: number;
}

/** Options of {@link WarrenClient.call}. */
export interface CallOptions {
  /**
   * Milliseconds to wait for the reply, queued time included; `0` waits forever.
   * @default 10000
   */
  timeout?: number;
}

/** What {@link WarrenClient.getConnectionState} reports. */
export interface ConnectionSnapshot {
  state: ClientState;
  isConnected: boolean;
  isConnecting: boolean;
  /** Failed attempts since the last successful open. */
  reconnectAttempts: number;
  /** Sockets created so far; the current one has this number. */
  connectionId: number;
}

/** Arguments of the client's own events. */
export interface LifecycleEvents {
  open: undefined;
  connected: ConnectedInfo;
  close: CloseInfo;
  disconnected: CloseInfo;
  reconnecting: ReconnectingInfo;
  error: WarrenClientError;
}

/** The argument a listener of `E` receives: typed for lifecycle events, the server's payload otherwise. */
export type EventData<E extends string> = E extends keyof LifecycleEvents ? LifecycleEvents[E] : any;

// ---- typed from a contract (`WarrenClient<typeof contract>`, `WarrenClient<typeof Definition>`) ----

/** Names `on` accepts: lifecycle events, and the contract's server events (any name when untyped). */
export type ListenName<T> = (keyof LifecycleEvents & string) | ServerEventName<ContractOf<T>>;

/** What a listener of `E` receives: lifecycle arguments, the contract's payload, or `any` when untyped. */
export type ListenData<T, E extends string> = E extends keyof LifecycleEvents
  ? LifecycleEvents[E]
  : ServerEventData<ContractOf<T>, E>;

/** Names `emit` accepts: the contract's client events (any name when untyped). */
export type EmitName<T> = ClientEventName<ContractOf<T>>;

/** What `emit(event, ...)` takes after the name. */
export type EmitArgs<T, E extends string> = IsAny<ClientEventInput<ContractOf<T>, E>> extends true
  ? [data?: unknown]
  : DataArgs<ClientEventInput<ContractOf<T>, E>>;

/** Names `call` accepts: the contract's calls. */
export type CallNameOf<T> = CallName<ContractOf<T>>;

/** What `call(event, ...)` takes after the name: the argument, then {@link CallOptions}. */
export type CallArgs<T, E extends string> = [...DataArgs<CallInput<ContractOf<T>, E>>, options?: CallOptions];

/**
 * What `call(event)` resolves with: the contract's result for that call, else the return type of
 * the handler registered for it in a chain on the definition `T`, else `unknown`.
 */
export type CallResultOf<T, E extends string> = unknown extends CallResult<ContractOf<T>, E>
  ? T extends { readonly "~results"?: infer R }
    ? E extends keyof R
      ? R[E]
      : unknown
    : unknown
  : CallResult<ContractOf<T>, E>;

/** `unknown` (callable) when the contract leaves calls untyped, `never` otherwise. */
export type UntypedCalls<T> = string extends CallName<ContractOf<T>> ? unknown : never;

/** The `params` a client of `T` sends. */
export type ParamsFor<T> = ParamsInput<ContractOf<T>>;

/** A listener of `onStateChange`. */
export type StateListener = (state: ClientState, previous: ClientState) => void;
