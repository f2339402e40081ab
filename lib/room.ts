/**
 * `createRoomHandler`: a room definition. A room instance exists per full room name
 * (`chat`, `conversation:123`); its members are users of the bound connection definition, and
 * every session of a member receives what is sent to the room. Membership and fan-out live in
 * the native core; this file holds the definition and its validation.
 */

import { messageOf, WarrenError } from "./errors";
import { StateCell } from "./state";

/** A live member of a room. */
export interface RoomMember {
  userId: string;
  /** Milliseconds since the epoch when the user (re-)became a live member. */
  joinedAt: number;
  metadata: Record<string, unknown>;
}

/** A room as hooks and `server.room(name)` see it. */
export interface RoomContext<State = any> {
  /** The full room name, e.g. `conversation:123`. */
  readonly name: string;
  /** Room state (cloned from the definition's `state` when the room instance is created). */
  state: State;
  /** Live members, in join order. */
  members(): RoomMember[];
  memberCount(): number;
  hasMember(userId: string): boolean;
  /** Shallow-merges `patch` into a member's metadata; false when the user is not a member. */
  updateMemberMetadata(userId: string, patch: Record<string, unknown>): boolean;
  /**
   * Sends an event to every session of every member.
   * @returns how many sessions it was queued for.
   */
  emit(event: string, data?: object): number;
  /** The same as `emit`: every session of every member. */
  broadcast(event: string, data?: object): number;
  /**
   * Destroys the room: every member leaves (`onLeave`) and drops it from its room list,
   * `onDestroy` runs with `reason === "destroyed"`, and its stored state is wiped.
   */
  destroy(): void;
}

export type RoomDestroyReason = "evicted" | "shutdown" | "destroyed";

export interface RoomOptions<State extends object = {}> {
  name: string;
  /** Name of the connection definition whose users join this room. */
  connectionBinding: string;
  state?: State;
  /** Keys of `state` that are persisted. @default every key of `state` */
  persistedKeys?: Array<keyof State & string>;
  /** The room instance was created. Holds its later hooks while it runs. */
  onInit?(ctx: RoomContext<State>): unknown;
  /** A user became a live member (joined, or came back with a new session). */
  onJoin?(ctx: RoomContext<State>, userId: string, metadata: Record<string, unknown>): unknown;
  /** A user stopped being a live member (left, or closed its last session). */
  onLeave?(ctx: RoomContext<State>, userId: string): unknown;
  /** Persisted room state changed (once per tick); the state is read-only inside. */
  onStateChange?(ctx: RoomContext<State>, state: State): unknown;
  /** The room instance leaves memory (`reason`: "evicted" when idle, "shutdown", or "destroyed"). */
  onDestroy?(ctx: RoomContext<State> & { readonly reason: RoomDestroyReason }): unknown;
  /** A hook threw. Without it, errors are logged with console.error. */
  onError?(error: unknown, ctx: RoomContext<State>): unknown;
}

const ROOM_DEFINITION = Symbol.for("warren.room");

export interface RoomDefinition<State extends object = any> extends Readonly<RoomOptions<State>> {}

/**
 * Defines a room handler.
 * @example
 * const ChatRoom = createRoomHandler({
 *   name: "ChatRoom",
 *   connectionBinding: "UserConnection",
 *   state: { totalJoins: 0 },
 *   onJoin(ctx, userId) { ctx.state.totalJoins++; },
 * });
 */
export function createRoomHandler<State extends object = {}>(options: RoomOptions<State>): RoomDefinition<State> {
  if (options === null || typeof options !== "object") {
    throw new WarrenError("invalid_option", "createRoomHandler needs an options object");
  }
  if (typeof options.name !== "string" || options.name.length === 0) {
    throw new WarrenError("invalid_option", "createRoomHandler: name must be a non-empty string");
  }
  if (typeof options.connectionBinding !== "string" || options.connectionBinding.length === 0) {
    throw new WarrenError(
      "invalid_option",
      `createRoomHandler(${options.name}): connectionBinding must name a connection definition`,
    );
  }
  for (const hook of ["onInit", "onJoin", "onLeave", "onDestroy", "onError", "onStateChange"] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== "function") {
      throw new WarrenError("invalid_option", `createRoomHandler(${options.name}): ${hook} must be a function`);
    }
  }
  if (options.state !== undefined && (options.state === null || typeof options.state !== "object")) {
    throw new WarrenError("invalid_option", `createRoomHandler(${options.name}): state must be an object`);
  }
  if (
    options.persistedKeys !== undefined &&
    (!Array.isArray(options.persistedKeys) || !options.persistedKeys.every((key) => typeof key === "string"))
  ) {
    throw new WarrenError("invalid_option", `createRoomHandler(${options.name}): persistedKeys must be an array of key names`);
  }
  if (options.state !== undefined) {
    try {
      new StateCell(options.state, options.persistedKeys, null, () => {});
    } catch (error) {
      throw new WarrenError("invalid_option", `createRoomHandler(${options.name}): state cannot be persisted: ${messageOf(error)}`);
    }
  }
  const definition = { ...options };
  Object.defineProperty(definition, ROOM_DEFINITION, { value: true });
  return definition;
}

export function isRoomDefinition(value: unknown): value is RoomDefinition {
  return typeof value === "object" && value !== null && (value as any)[ROOM_DEFINITION] === true;
}

/**
 * Which room handler serves a room name, from a connection's `rooms` map: the exact name
 * first, then the prefix before the first `:` (`conversation:123` → `conversation`).
 */
export function bindingFor(rooms: Readonly<Record<string, string>> | undefined, roomName: string): string | undefined {
  if (rooms === undefined) return undefined;
  if (Object.hasOwn(rooms, roomName)) return rooms[roomName];
  const colon = roomName.indexOf(":");
  if (colon > 0) {
    const prefix = roomName.slice(0, colon);
    if (Object.hasOwn(rooms, prefix)) return rooms[prefix];
  }
  return undefined;
}
