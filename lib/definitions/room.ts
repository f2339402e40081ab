/**
 * `createRoomHandler`: a room definition. A room instance exists per full room name
 * (`chat`, `conversation:123`); its members are users of the bound connection definition, and
 * every session of a member receives what is sent to the room. Membership and fan-out live in
 * the native core; this file holds the definition and its validation.
 */

import type { ContractSpec } from "../../client/contract";
import { WarrenError } from "../errors";
import type { RoomDefinition, RoomOptions } from "../types";
import { brand, isBranded, validateCommon } from "./validation";

const ROOM_DEFINITION = Symbol.for("warren.room");

/** The name of a room handler that gives none (Verani's). */
const DEFAULT_NAME = "VeraniRoomDO";

/** The options that must be functions when given. */
const HOOKS = ["onInit", "onJoin", "onLeave", "onDestroy", "onError", "onStateChange"] as const;

/**
 * Defines a room handler. Its hooks get the room first (`ctx`, which is also the room's state:
 * Verani's `onJoin(roomState, userId, metadata)` works as written, and so does warren's
 * `ctx.state`); writes to either are persisted.
 * @example
 * const ChatRoom = createRoomHandler({
 *   name: "ChatRoom",
 *   connectionBinding: "UserConnection",
 *   state: { totalJoins: 0 },
 *   onJoin(ctx, userId) { ctx.state.totalJoins++; },
 * });
 */
export function createRoomHandler<State extends object = Record<string, any>, C extends ContractSpec = any>(
  options: RoomOptions<State, C>,
): RoomDefinition<State, C> {
  const { name, where } = validateCommon("createRoomHandler", options, HOOKS, () => DEFAULT_NAME);
  const binding = options.connectionBinding;
  if (binding !== undefined && (typeof binding !== "string" || binding.length === 0)) {
    throw new WarrenError("invalid_option", `${where}: connectionBinding must name a connection definition`);
  }
  return brand({ ...options, name }, ROOM_DEFINITION);
}

export function isRoomDefinition(value: unknown): value is RoomDefinition {
  return isBranded(value, ROOM_DEFINITION);
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
