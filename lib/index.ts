/**
 * warren: durable actors and realtime rooms for Node.js, with a Rust core.
 * The public API; everything else in `lib/` is internal.
 */

export { Actor, defineActor } from "./definitions/actor";
export type {
  ActorClass,
  ActorConnection,
  BeforeConnectOptions,
  Connection,
  OnBeforeConnectOptions,
  Rpc,
} from "./definitions/actor";
export { defineConnection } from "./definitions/connection";
export { createRoomHandler } from "./definitions/room";
export { createServer, WarrenServer } from "./server";
export { HttpError, UserError, WarrenError } from "./errors";
export type { ErrorCode } from "./errors";
export type {
  ActorContext,
  ActorEmit,
  ActorHandle,
  ConnectionContext,
  ConnectionDefinition,
  ConnectionMeta,
  ConnectionOptions,
  DestroyContext,
  DestroyReason,
  DisconnectInfo,
  Emit,
  Handler,
  ListenOptions,
  ListeningAddress,
  RoomContext,
  RoomDefinition,
  RoomDestroyReason,
  RoomMember,
  RoomOptions,
  RoomTarget,
  ScheduledEvent,
  Scheduler,
  ServerOptions,
  ClusterOptions,
  ServerStats,
  SessionInfo,
  ToRoomOptions,
  UnhandledFrame,
  UpgradeRequest,
  UserTarget,
} from "./types";
