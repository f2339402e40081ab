/**
 * A room instance in the JS heap (its state and hook ordering), and the room context that
 * hooks and `server.room(name)` use. Membership is read from and changed in the native core.
 */

import type { NativeServer } from "../native";
import { Gate } from "./gate";
import { encodePayload } from "./protocol";
import type { StateOwner } from "./context";
import type { RoomContext, RoomDefinition, RoomDestroyReason, RoomMember } from "./room";
import type { StateCell } from "./state";

export class RoomRecord implements StateOwner {
  readonly kind = 1;
  readonly gate = new Gate();
  readonly context: RoomContext;
  readonly owner: string;
  destroyed = false;
  stateChanged?: () => void;

  constructor(
    readonly id: number,
    readonly definition: RoomDefinition,
    readonly name: string,
    native: NativeServer,
    readonly cell: StateCell,
    destroy: () => void,
  ) {
    this.owner = definition.name;
    this.context = roomContext(name, native, () => this, destroy);
  }

  destroyContext(reason: RoomDestroyReason): RoomContext & { readonly reason: RoomDestroyReason } {
    return Object.assign(Object.create(this.context), { reason });
  }
}

/**
 * A room context by name. `current` returns the room's record (opening the instance when it
 * is not in memory), so a context kept by user code never holds on to an evicted instance.
 */
export function roomContext(
  name: string,
  native: NativeServer,
  current: () => RoomRecord,
  destroy: () => void,
): RoomContext {
  const members = (): RoomMember[] => JSON.parse(native.roomMembers(name));
  return {
    name,
    get state() {
      return current().cell.state;
    },
    set state(value) {
      current().cell.replace(value);
    },
    destroy,
    members,
    memberCount: () => members().length,
    hasMember: (userId: string) => members().some((m) => m.userId === userId),
    updateMemberMetadata(userId: string, patch: Record<string, unknown>) {
      if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
        throw new TypeError("updateMemberMetadata: patch must be a plain object");
      }
      const member = members().find((m) => m.userId === userId);
      if (member === undefined) return false;
      return native.setMemberMetadata(name, userId, JSON.stringify({ ...member.metadata, ...patch }));
    },
    emit: (event: string, data?: object) => native.emitToRoom(name, event, encodePayload(data), undefined),
    broadcast: (event: string, data?: object) => native.emitToRoom(name, event, encodePayload(data), undefined),
  };
}
