/**
 * The rooms side of the runtime: room records in the JS heap (created on first use, loaded
 * from storage, dropped when the native core says the room hibernated, was evicted or was
 * destroyed), their hooks, and name resolution through the connections' `rooms` maps.
 */

import { bindingFor } from "../definitions/room";
import { WarrenError } from "../errors";
import type { LogFactory, Logger } from "../log";
import type { Persistence } from "../state";
import type { ConnectionDefinition, RoomContext, RoomDefinition, RoomDestroyReason, RoomMember } from "../types";
import { StateKind, type NativeServer } from "./bridge";
import { roomContext } from "./context";
import { attempt, reportTo, settled } from "./guard";
import { RoomRecord, type RoomPort } from "./records";
import type { RoomMembersEntry } from "./tags";

export class RoomRuntime implements RoomPort {
  readonly #native: NativeServer;
  readonly #persistence: Persistence;
  readonly #connections: ReadonlyArray<ConnectionDefinition<any, any>>;
  readonly #definitions: ReadonlyArray<RoomDefinition>;
  readonly #byId = new Map<number, RoomRecord>();
  readonly #byName = new Map<string, RoomRecord>();
  readonly #log: Logger;
  readonly #hooks: Logger;
  /** `fetchMembers()` requests waiting for the native core's answer, by request id. */
  readonly #asked = new Map<number, { resolve: (members: RoomMember[]) => void; reject: (error: Error) => void }>();

  constructor(
    native: NativeServer,
    persistence: Persistence,
    connections: ReadonlyArray<ConnectionDefinition<any, any>>,
    definitions: ReadonlyArray<RoomDefinition>,
    logs: LogFactory,
  ) {
    this.#log = logs("rooms");
    this.#hooks = logs("hooks");
    this.#native = native;
    this.#persistence = persistence;
    this.#connections = connections;
    this.#definitions = definitions;
  }

  handlerFor(definition: ConnectionDefinition<any, any>, roomName: string): number {
    if (typeof roomName !== "string" || roomName.length === 0) {
      throw new WarrenError("unknown_room", "room names are non-empty strings");
    }
    const index = this.#handlerIndex(definition, roomName);
    if (index < 0) {
      const configured = Object.keys(definition.rooms ?? {});
      throw new WarrenError(
        "unknown_room",
        `${definition.name} has no room "${roomName}"; configured rooms: ${
          configured.length ? configured.map((r) => `${r}, ${r}:*`).join(", ") : "none (set rooms in defineConnection)"
        }`,
      );
    }
    return index;
  }

  /** The index of the room handler that `definition`'s `rooms` map names for `roomName`; -1: none. */
  #handlerIndex(definition: ConnectionDefinition<any, any>, roomName: string): number {
    const binding = bindingFor(definition.rooms, roomName);
    return binding === undefined ? -1 : this.#definitions.findIndex((r) => r.name === binding);
  }

  /** The room context for `server.room(name)`, resolved through every connection's rooms. */
  room(name: string): RoomContext {
    let handler = -1;
    for (const definition of this.#connections) {
      handler = this.#handlerIndex(definition, name);
      if (handler >= 0) break;
    }
    if (handler < 0) {
      throw new WarrenError("unknown_room", `no connection definition has a room "${name}" in its rooms map`);
    }
    const found = handler;
    return roomContext(
      name,
      this.#native,
      () => this.#open(name, found),
      () => this.#destroy(name, found),
      () => this.fetchMembers(name, found),
    );
  }

  /** The room's live members as its owner has them (in cluster mode, asked of the node that owns it). */
  fetchMembers(name: string, handler: number): Promise<RoomMember[]> {
    const request = this.#native.fetchRoomMembers(name, handler);
    return new Promise((resolve, reject) => this.#asked.set(request, { resolve, reject }));
  }

  /** The native core's answer to a `fetchMembers` request. */
  membersAnswered(entry: RoomMembersEntry): void {
    const waiting = this.#asked.get(entry[1]);
    if (waiting === undefined) return;
    this.#asked.delete(entry[1]);
    if (entry[2] !== null) waiting.resolve(entry[2]);
    else waiting.reject(new WarrenError(entry[3], entry[4]));
  }

  #open(name: string, handler: number): RoomRecord {
    const known = this.#byName.get(name);
    if (known !== undefined) return known;
    const { id } = this.#native.openRoom(name, handler);
    return this.ensure(id, handler, name);
  }

  #destroy(name: string, handler: number): void {
    const definition = this.#definitions[handler]!;
    const known = this.#byName.get(name);
    if (known !== undefined) known.destroyed = true;
    this.#native.destroyRoom(definition.name, name);
  }

  /** The record of room `id`, created (state loaded, `onInit` run) when not in the heap. */
  ensure(id: number, handler: number, name: string): RoomRecord {
    const known = this.#byId.get(id);
    if (known !== undefined) return known;
    const definition = this.#definitions[handler]!;
    if (this.#log.enabled) this.#log.debug(`room "${name}" (${definition.name}) enters the heap`);
    let room!: RoomRecord;
    const cell = this.#persistence.cell(StateKind.Room, definition.name, name, definition.state, definition.persistedKeys, () => room);
    room = new RoomRecord(
      id,
      definition,
      name,
      this.#native,
      cell,
      () => this.#destroy(name, handler),
      () => this.fetchMembers(name, handler),
    );
    this.#byId.set(id, room);
    const onStateChange = definition.onStateChange;
    if (onStateChange) {
      const reason = `cannot change the state of room "${name}" inside onStateChange`;
      room.stateChanged = () =>
        void cell.readOnly(reason, () => attempt(() => onStateChange(room.context, cell.state), (e) => this.#report(room, e)));
    }
    this.#byName.set(name, room);
    if (definition.onInit) {
      room.ordering.run(() => attempt(() => definition.onInit!(room.context), (e) => this.#report(room, e)), true);
    }
    return room;
  }

  #report(room: RoomRecord, error: unknown): void {
    reportTo(this.#hooks, room.definition, error, room.context);
  }

  joined(id: number, handler: number, name: string, userId: string, metadata: Record<string, unknown>): void {
    const room = this.ensure(id, handler, name);
    const onJoin = room.definition.onJoin;
    if (!onJoin) return;
    room.ordering.run(() => attempt(() => onJoin(room.context, userId, metadata), (e) => this.#report(room, e)), false);
  }

  left(id: number, userId: string): void {
    const room = this.#byId.get(id);
    const onLeave = room?.definition.onLeave;
    if (room === undefined || !onLeave) return;
    room.ordering.run(() => attempt(() => onLeave(room.context, userId), (e) => this.#report(room, e)), false);
  }

  /** The room leaves the heap after `onDestroy` (evicted, destroyed) or silently (hibernated). */
  leaveHeap(id: number, reason: RoomDestroyReason | "hibernated"): void {
    const room = this.#byId.get(id);
    if (room === undefined) return;
    this.#byId.delete(id);
    if (this.#log.enabled) this.#log.debug(`room "${room.name}" leaves the heap (${reason})`);
    if (this.#byName.get(room.name) === room) this.#byName.delete(room.name);
    if (reason === "destroyed") room.destroyed = true;
    room.ordering.run(() => {
      const done = reason === "hibernated" ? undefined : this.#runDestroy(room, reason);
      this.#persistence.commit();
      return done;
    }, false);
  }

  #runDestroy(room: RoomRecord, reason: RoomDestroyReason): unknown {
    const onDestroy = room.definition.onDestroy;
    if (!onDestroy) return undefined;
    const ctx = room.destroyContext(reason);
    return attempt(() => onDestroy(ctx), (e) => this.#report(room, e));
  }

  /** `onDestroy` for every room in the heap (server shutdown); unanswered `fetchMembers()` reject. */
  destroyAll(reason: RoomDestroyReason): Promise<void>[] {
    for (const waiting of this.#asked.values()) waiting.reject(new WarrenError("server_closed", "the server was closed"));
    this.#asked.clear();
    const pending = [...this.#byId.values()].map((room) => settled(room.ordering, () => this.#runDestroy(room, reason)));
    this.#byId.clear();
    this.#byName.clear();
    return pending;
  }
}
