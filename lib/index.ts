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
export { defineConnection, defineRawConnection } from "./definitions/connection";
export { createRoomHandler } from "./definitions/room";
export { createServer, WarrenServer } from "./server";
export { HttpError, PayloadError, UserError, WarrenError } from "./errors";
export type { ErrorCode, PayloadIssue } from "./errors";
export type { LogFn, WarrenLogger } from "./log";
export { defineContract, isContract, payload } from "../client/contract";
export type {
  CallSpec,
  Contract,
  ContractOf,
  ContractSpec,
  In,
  Out,
  Payload,
  Spec,
  StandardIssue,
  StandardResult,
  StandardSchemaProps,
  StandardSchemaV1,
} from "../client/contract";
export type {
  ActorContext,
  ActorEmit,
  ActorHandle,
  ConnectionContext,
  ConnectionDefinition,
  ConnectionMeta,
  ConnectionOptions,
  RawConnectionContext,
  RawConnectionDefinition,
  RawConnectionOptions,
  RawData,
  DestroyContext,
  DestroyReason,
  DisconnectInfo,
  Emit,
  Handler,
  TypeSpec,
  ListenOptions,
  TlsOptions,
  ListeningAddress,
  RoomContext,
  RoomDefinition,
  RoomDestroyReason,
  RoomHookContext,
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
  UpgradeHeaders,
  UpgradeRequest,
  UserTarget,
} from "./types";
