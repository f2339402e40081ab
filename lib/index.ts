/**
 * warren: durable actors and realtime rooms for Node.js, with a Rust core.
 * The public API; everything else in `lib/` is internal.
 */

export { Actor, defineActor } from "./actor";
export type { ActorClass, ActorConnection, BeforeConnectOptions } from "./actor";
export { defineConnection } from "./connection";
export type {
  ConnectionDefinition,
  ConnectionMeta,
  ConnectionOptions,
  DestroyReason,
  DisconnectInfo,
  Handler,
  UnhandledFrame,
  UpgradeRequest,
} from "./connection";
export type {
  ActorContext,
  ActorEmit,
  ActorHandle,
  ConnectionContext,
  DestroyContext,
  Emit,
  RoomTarget,
  ScheduledEvent,
  Scheduler,
  SessionInfo,
  ToRoomOptions,
  UserTarget,
} from "./context";
export { createRoomHandler } from "./room";
export type { RoomContext, RoomDefinition, RoomDestroyReason, RoomMember, RoomOptions } from "./room";
export { createServer, WarrenServer } from "./server";
export type { ListenOptions, ListeningAddress, ServerOptions, ServerStats } from "./server";
export { HttpError, UserError, WarrenError } from "./errors";
export type { ErrorCode } from "./errors";
