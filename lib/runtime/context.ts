/**
 * The objects user code receives: `ctx` (of a session, of an actor-level hook, of a room),
 * `ctx.emit` with its targets, `ctx.actor` and `ctx.schedule`.
 *
 * A context is built once per session (and once per actor, once per room) and reused for every
 * event, so a message costs no allocation here. It is one small object whose members (accessors
 * on its prototype) reach its record (`records.ts`), which builds the functions behind `emit`,
 * `actor` and `schedule` with the builders below on first use. Every emit is one native call:
 * the frame is encoded once in Rust, and fan-out, sender exclusion and counting happen there.
 */

import { inspect } from "node:util";
import type {
  ActorContext,
  ActorEmit,
  ActorHandle,
  ConnectionContext,
  ConnectionMeta,
  DestroyReason,
  RawData,
  Emit,
  RoomContext,
  RoomMember,
  RoomTarget,
  Scheduler,
  SessionInfo,
  ToRoomOptions,
  UserTarget,
} from "../types";
import { contextLogs, type LogFactory } from "../log";
import type { NativeServer } from "./bridge";
import { encodePayload } from "./outgoing";
import type { ActorRecord, RoomRecord, SessionRecord } from "./records";

/**
 * An actor-level `ctx`. Its members live on the prototype and reach the actor record, which
 * builds the functions behind them on first use: an actor costs this one small object here.
 */
class ActorContextObject {
  readonly #actor: ActorRecord;
  /** Set on `onDestroy`'s context only. */
  declare readonly reason?: DestroyReason;

  constructor(actor: ActorRecord, reason: DestroyReason | undefined) {
    this.#actor = actor;
    if (reason !== undefined) Object.defineProperty(this, "reason", { value: reason, enumerable: true });
  }

  get actor(): ActorHandle {
    return this.#actor.handle;
  }

  get state(): any {
    return this.#actor.cell.state;
  }

  set state(value: any) {
    this.#actor.cell.replace(value);
  }

  get emit(): ActorEmit {
    return this.#actor.emit;
  }

  get broadcast(): ActorEmit {
    return this.#actor.emit;
  }

  get schedule(): Scheduler {
    return this.#actor.schedule;
  }

  get [contextLogs](): LogFactory {
    return this.#actor.host.logs;
  }
}

/** A session's `ctx`: `meta` and `sessionId` are its own; the rest is built on first use. */
class SessionContextObject {
  readonly meta: ConnectionMeta;
  readonly sessionId: number;
  readonly #session: SessionRecord;

  constructor(session: SessionRecord) {
    this.meta = session.meta;
    this.sessionId = session.id;
    this.#session = session;
  }

  get actor(): ActorHandle {
    return this.#session.handle;
  }

  get state(): any {
    return this.#session.actor.cell.state;
  }

  set state(value: any) {
    this.#session.actor.cell.replace(value);
  }

  get emit(): Emit {
    return this.#session.emit;
  }

  get broadcast(): ActorEmit {
    return this.#session.actor.emit;
  }

  get schedule(): Scheduler {
    return this.#session.actor.schedule;
  }

  get [contextLogs](): LogFactory {
    return this.#session.actor.host.logs;
  }

  /** A raw endpoint's send: `data` as it is (a JSON session takes no raw message). */
  send(data: RawData): boolean {
    return this.#session.actor.native.sendRaw(this.sessionId, rawPayload(data));
  }

  sendToRoom(room: string, data: RawData, options?: { exceptSelf?: boolean }): number {
    const except = options?.exceptSelf === true ? this.sessionId : undefined;
    return this.#session.actor.native.broadcastRaw(room, rawPayload(data), except);
  }
}

/** A raw message for the native core: a string, or bytes (any `ArrayBufferView` is viewed as bytes). */
function rawPayload(data: RawData): string | Uint8Array {
  if (typeof data === "string" || data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) {
    const view = data as ArrayBufferView;
    return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  }
  throw new TypeError(`raw messages are strings or Uint8Arrays, got ${typeof data}`);
}

for (const prototype of [ActorContextObject.prototype, SessionContextObject.prototype]) {
  // Enumerable, as the members of a plain context object would be (`for…in`, logging).
  for (const key of ["actor", "state", "emit", "broadcast", "schedule"]) {
    Object.defineProperty(prototype, key, { ...Object.getOwnPropertyDescriptor(prototype, key), enumerable: true });
  }
}

/** The `ctx` of an actor's actor-level hooks; with a `reason`, `onDestroy`'s. */
export function actorContext(actor: ActorRecord, reason: DestroyReason | undefined): ActorContext<any> {
  return new ActorContextObject(actor, reason) as unknown as ActorContext<any>;
}

/** The `ctx` of a session's hooks and handlers. */
export function sessionContext(session: SessionRecord): ConnectionContext<any, any> {
  return new SessionContextObject(session) as unknown as ConnectionContext<any, any>;
}

/** `ctx.emit` (and `ctx.broadcast`) of actor-level hooks: every session of the actor. */
export function actorEmit(actor: ActorRecord): ActorEmit {
  const { native, endpoint, key } = actor;
  const toAll = (event: string, data?: object) => native.emitToUser(endpoint, key, event, encodePayload(data), undefined);
  return Object.assign(toAll, {
    emit: toAll,
    toUser: (userId: string) => userTarget(native, endpoint, userId),
    toRoom: (room: string) => roomTarget(actor, room, undefined),
  });
}

/** `ctx.emit` of a session: to that session, with targets that exclude it from room sends. */
export function sessionEmit(session: SessionRecord): Emit {
  const { id, actor, native } = session;
  // Frames to one session leave at the end of the tick (outgoing.ts); whether the session is
  // still there is known here.
  const toSession = (event: string, data?: object) => {
    return native.emit(id, event, encodePayload(data)) && actor.hasSession(session);
  };
  return Object.assign(toSession, {
    emit: toSession,
    toUser: (userId: string) => userTarget(native, actor.endpoint, userId),
    toRoom: (room: string, options?: ToRoomOptions) =>
      roomTarget(actor, room, options?.includeSelf === true ? undefined : id),
  });
}

/** `ctx.actor` of actor-level hooks: `close` closes every session. */
export function actorHandle(actor: ActorRecord): ActorHandle {
  return handle(actor, (code, reason) => {
    for (const { id } of actor.sessions) actor.native.closeSession(id, code, reason, false);
  });
}

/** `ctx.actor` of a session: `close` closes that session. */
export function sessionHandle(session: SessionRecord): ActorHandle {
  return handle(session.actor, (code, reason) => {
    session.native.closeSession(session.id, code, reason, false);
  });
}

function handle(actor: ActorRecord, close: (code: number, reason: string) => void): ActorHandle {
  return {
    key: actor.key,
    sessions: () => sessionInfos(actor),
    close(code = 1000, reason = "") {
      close(code, reason);
    },
    destroy: () => destroyActor(actor),
    joinRoom(room, metadata = {}) {
      const handler = actor.rooms.handlerFor(actor.definition, room);
      if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
        throw new TypeError("joinRoom: metadata must be a plain object");
      }
      return actor.native.joinRoom(actor.id, room, handler, JSON.stringify(metadata));
    },
    leaveRoom(room) {
      return actor.native.leaveRoom(actor.id, room);
    },
    getRooms() {
      return actor.native.roomsOf(actor.id);
    },
  };
}

/** `ctx.schedule` of an actor (stored in the native core, keyed by endpoint and actor key). */
export function scheduler(native: NativeServer, endpoint: number, key: string): Scheduler {
  const add = (at: number, event: string, data: unknown) => {
    if (typeof event !== "string" || event.length === 0) throw new TypeError("schedule: event must be a non-empty string");
    if (!Number.isFinite(at)) throw new TypeError("schedule: the time must be a finite number or a valid Date");
    const json = data === undefined ? "null" : JSON.stringify(data);
    if (json === undefined) throw new TypeError("schedule: data must be JSON-serialisable");
    return native.scheduleAdd(endpoint, key, Math.max(0, at), event, json);
  };
  return {
    after: (ms, event, data) => add(Date.now() + ms, event, data),
    at: (when, event, data) => add(when instanceof Date ? when.getTime() : when, event, data),
    list: () => JSON.parse(native.scheduleList(endpoint, key)),
    cancel: (id) => native.scheduleCancel(id),
  };
}

/**
 * A room context by name, for hooks and `server.room(name)`. `current` returns the room's record
 * (opening the instance when it is not in memory), so a context kept by user code never holds on
 * to an evicted instance.
 */
export function roomContext(
  name: string,
  native: NativeServer,
  current: () => RoomRecord,
  destroy: () => void,
  fetchMembers: () => Promise<RoomMember[]>,
): RoomContext {
  const members = (): RoomMember[] => JSON.parse(native.roomMembers(name));
  const emit = (event: string, data?: object) => native.emitToRoom(name, event, encodePayload(data), undefined);
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
    fetchMembers,
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
    emit,
    broadcast: emit,
    sendRaw: (data: RawData) => native.broadcastRaw(name, rawPayload(data), undefined),
  };
}

/**
 * The room context given to a room's hooks (`RoomHookContext`): one object that is both the
 * state and the context. A proxy whose own properties are the state's (read and written through
 * the state proxy, so writes are checked and persisted) and whose prototype is the room context
 * (`name`, `members()`, `emit()`...; plus `reason` for `onDestroy`). Assigning `state` replaces
 * the state, as on the plain context.
 */
export function roomHookContext(record: RoomRecord, context: RoomContext, reason?: string): RoomContext {
  const base: RoomContext = reason === undefined ? context : Object.create(context, { reason: { value: reason } });
  const state = (): Record<string | symbol, unknown> => record.cell.state;
  const own = (key: string | symbol) => Object.hasOwn(state(), key);
  const target = Object.create(base) as RoomContext;
  // `util.inspect` (console.log) looks at a proxy's target, not through its traps: show the state.
  Object.defineProperty(target, inspect.custom, { value: () => ({ ...state() }), configurable: true });
  return new Proxy(target, {
    get: (_target, key) => (own(key) ? state()[key] : Reflect.get(base, key)),
    set: (_target, key, value) => {
      if (key === "state" && !own(key)) {
        record.cell.replace(value);
        return true;
      }
      return Reflect.set(state(), key, value);
    },
    has: (_target, key) => own(key) || key in base,
    ownKeys: () => Reflect.ownKeys(state()),
    getOwnPropertyDescriptor: (_target, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(state(), key);
      // Reported as configurable: the proxy's target has no such property to be non-configurable.
      return descriptor === undefined ? undefined : { ...descriptor, configurable: true };
    },
    defineProperty: (_target, key, descriptor) => Reflect.defineProperty(state(), key, descriptor),
    deleteProperty: (_target, key) => Reflect.deleteProperty(state(), key),
    setPrototypeOf: () => false,
    preventExtensions: () => false,
  });
}

function destroyActor(actor: ActorRecord): void {
  if (actor.destroyed) return;
  // The state is wiped next: load it first, so `onDestroy` still sees it.
  void actor.cell;
  actor.destroyed = true;
  actor.native.destroyActor(actor.id);
}

function userTarget(native: NativeServer, endpoint: number, userId: string): UserTarget {
  if (typeof userId !== "string" || userId.length === 0) {
    throw new TypeError("toUser needs a non-empty userId");
  }
  return {
    emit: (event: string, data?: object) => native.emitToUser(endpoint, userId, event, encodePayload(data), undefined),
  };
}

function roomTarget(actor: ActorRecord, room: string, exceptSession: number | undefined): RoomTarget {
  actor.rooms.handlerFor(actor.definition, room);
  return {
    emit: (event: string, data?: object) => actor.native.emitToRoom(room, event, encodePayload(data), exceptSession),
  };
}

function sessionInfos(actor: ActorRecord): SessionInfo[] {
  return actor.sessions.map((s) => ({ sessionId: s.id, meta: s.meta }));
}
