/**
 * The one module that imports the native binding (`native.js`, which loads the addon). Everything
 * else in `lib/` takes the `NativeServer` type and the store's numbers from here, so a change of
 * the binding's shape (a rename, a new facade over the Rust core) is absorbed in this file.
 */

import { NativeServer as Binding, type NativeOptions } from "../../native";

export type { NativeOptions, NativeStats, StateWrite } from "../../native";

/** The native server: sockets, sessions, rooms, storage and timers, all in Rust. */
export type NativeServer = Binding;

/**
 * Whose state a stored record is, as the native store numbers it (`loadState` and
 * `commitState`'s `kind`). The numbers are the Rust side's and must not change here alone.
 */
export enum StateKind {
  /** A connection actor's state, keyed by definition name and user id. */
  Actor = 0,
  /** A room's state, keyed by room handler name and full room name. */
  Room = 1,
}

/** Creates the native server; `onWake` is called (on the JS thread) when batches are queued. */
export function createNative(options: NativeOptions, onWake: () => void): NativeServer {
  return new Binding(options, onWake);
}
