/**
 * The objects user code receives: `ctx`, `ctx.emit` and `ctx.actor`. A context is built once
 * per session (and once per actor for actor-level hooks) and reused for every event, so a
 * message costs no allocation here. A context is one small object whose members (accessors on
 * its prototype) reach its record; the functions behind `emit`, `actor` and `schedule` are
 * built on a record's first use of them, so an idle socket pays for none. Every emit is one native call: the frame is encoded once
 * in Rust and the fan-out, sender exclusion and counting happen there.
 */

import type { NativeServer } from "../native";
import type { ConnectionDefinition, ConnectionMeta, DestroyReason } from "./connection";
import { Gate } from "./gate";
import { encodePayload } from "./protocol";
import type { StateCell } from "./state";

/** Resolves room names for a connection definition (implemented by the runtime). */
export interface RoomPort {
  /** The index of the room handler serving `roomName`; throws a clear error when none does. */
  handlerFor(definition: ConnectionDefinition<any, any>, roomName: string): number;
}

export interface ToRoomOptions {
  /** Also send to the sending session. @default false */
  includeSelf?: boolean;
}

/** Sends to every session of every live member of a room. */
export interface RoomTarget {
  /** @returns how many sessions the event was queued for. */
  emit(event: string, data?: object): number;
}

/** Sends to every session of one user. */
export interface UserTarget {
  /** @returns how many sessions the event was queued for. */
  emit(event: string, data?: object): number;
}

/**
 * `ctx.emit`: callable (sends to the current session), with `ctx.emit.emit` as an alias and
 * `ctx.emit.toUser(userId)` for every session of another user of the same definition.
 */
export interface Emit {
  /** @returns false when the session has ended. */
  (event: string, data?: object): boolean;
  emit(event: string, data?: object): boolean;
  toUser(userId: string): UserTarget;
  /**
   * Every session of every live member of `room`, except the sending session unless
   * `includeSelf`. Encoded once; fan-out happens in the native core.
   * @example ctx.emit.toRoom("chat").emit("chat.message", { text });
   */
  toRoom(room: string, options?: ToRoomOptions): RoomTarget;
}

/** Sends from an actor-level hook: to every session of the actor. */
export interface ActorEmit {
  /** @returns how many sessions the event was queued for. */
  (event: string, data?: object): number;
  emit(event: string, data?: object): number;
  toUser(userId: string): UserTarget;
  toRoom(room: string): RoomTarget;
}

/** A pending scheduled event. */
export interface ScheduledEvent {
  id: string;
  /** Due time, epoch milliseconds. */
  at: number;
  event: string;
  data: unknown;
}

/**
 * `ctx.schedule`: events delivered later to this actor's `on(event)` handler (with an
 * actor-level ctx: no `meta`, no `sessionId`). Stored: they survive restarts, and wake a
 * hibernated or evicted actor. Each fires at most once.
 */
export interface Scheduler {
  /** @returns the schedule's id. */
  after(ms: number, event: string, data?: unknown): string;
  at(when: Date | number, event: string, data?: unknown): string;
  /** Pending schedules, soonest first. */
  list(): ScheduledEvent[];
  /** @returns false when it already fired or does not exist. */
  cancel(id: string): boolean;
}

export interface SessionInfo {
  sessionId: number;
  meta: ConnectionMeta;
}

/** The actor as hooks see it. */
export interface ActorHandle {
  /** The actor's key: `meta.userId` of its sessions. */
  readonly key: string;
  /** The actor's open sessions, in connection order. */
  sessions(): SessionInfo[];
  /**
   * Closes the current session (in an actor-level hook: every session of the actor).
   * @param code 1000 or 3000–4999. @default 1000
   */
  close(code?: number, reason?: string): void;
  /**
   * Joins a room: every session of this user receives its messages while the user has a
   * session. Joining a room already joined is a no-op. @returns false for that no-op.
   */
  joinRoom(room: string, metadata?: Record<string, unknown>): boolean;
  /** Leaves a room. @returns false when the room was not joined. */
  leaveRoom(room: string): boolean;
  /** Rooms joined and not left, including while the user has no session. */
  getRooms(): string[];
  /**
   * Destroys the actor: it leaves its rooms, its sessions close with 1000 "Actor destroyed",
   * `onDestroy` runs with `ctx.reason === "destroyed"` and its stored state is wiped. The
   * user's next session starts from the defaults.
   */
  destroy(): void;
}

export interface ActorContext<State> {
  readonly actor: ActorHandle;
  state: State;
  readonly emit: ActorEmit;
  /** Sends an event to every session of this actor; returns how many. */
  broadcast(event: string, data?: object): number;
  readonly schedule: Scheduler;
}

export interface ConnectionContext<Meta extends ConnectionMeta, State> {
  readonly meta: Meta;
  readonly sessionId: number;
  readonly actor: ActorHandle;
  state: State;
  readonly emit: Emit;
  /** Sends an event to every session of this actor (every tab and device of the user). */
  broadcast(event: string, data?: object): number;
  readonly schedule: Scheduler;
}

export type DestroyContext<State> = ActorContext<State> & { readonly reason: DestroyReason };

/** Whatever owns persisted state (an actor or a room): where its state is stored. */
export interface StateOwner {
  /** 0: connection actor, 1: room (the native store's kinds). */
  readonly kind: 0 | 1;
  /** Definition name (actors) or room handler name (rooms). */
  readonly owner: string;
  /** userId (actors) or full room name (rooms). */
  readonly name: string;
  readonly cell: StateCell;
  /** Set once destroyed: its state is gone and must never be written again. */
  destroyed: boolean;
  /** Runs the definition's `onStateChange`, once per tick in which the state changed. */
  stateChanged?: () => void;
}

/** An actor in the JS heap: its state and the JS side of its sessions. */
export class ActorRecord implements StateOwner {
  readonly kind = 0;
  readonly sessions = new Map<number, SessionRecord>();
  readonly gate = new Gate();
  readonly context: ActorContext<any>;
  readonly owner: string;
  readonly name: string;
  destroyed = false;
  stateChanged?: () => void;
  /** Handlers whose promise has not settled; a busy actor is not hibernated. */
  inflight = 0;
  /** The parts of `context` built on first use (most actors of an idle socket never use them). */
  #emit: ActorEmit | undefined;
  #handle: ActorHandle | undefined;
  #schedule: Scheduler | undefined;

  constructor(
    readonly id: number,
    readonly definition: ConnectionDefinition<any, any>,
    readonly endpoint: number,
    readonly key: string,
    readonly native: NativeServer,
    readonly rooms: RoomPort,
    readonly cell: StateCell,
  ) {
    this.owner = definition.name;
    this.name = key;
    this.context = new ActorContextObject(this, undefined) as unknown as ActorContext<any>;
  }

  /** `ctx.emit` and `ctx.broadcast` of actor-level hooks: one function for both. */
  get emit(): ActorEmit {
    if (this.#emit !== undefined) return this.#emit;
    const { native, endpoint, key } = this;
    const actor = this;
    const toAll = (event: string, data?: object) => native.emitToUser(endpoint, key, event, encodePayload(data), undefined);
    return (this.#emit = Object.assign(toAll, {
      emit: toAll,
      toUser: (userId: string) => userTarget(native, endpoint, userId),
      toRoom: (room: string) => roomTarget(actor, room, undefined),
    }));
  }

  /** `ctx.actor` of actor-level hooks. */
  get handle(): ActorHandle {
    if (this.#handle !== undefined) return this.#handle;
    const actor = this;
    return (this.#handle = {
      key: this.key,
      sessions: () => sessionInfos(actor),
      close(code = 1000, reason = "") {
        for (const id of actor.sessions.keys()) actor.native.closeSession(id, code, reason, false);
      },
      destroy: () => destroyActor(actor),
      ...roomMembership(actor),
    });
  }

  /** `ctx.schedule`, shared by the actor's context and its sessions' contexts. */
  get schedule(): Scheduler {
    return (this.#schedule ??= scheduler(this.native, this.endpoint, this.key));
  }

  destroyContext(reason: DestroyReason): DestroyContext<any> {
    return new ActorContextObject(this, reason) as unknown as DestroyContext<any>;
  }
}

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
}

/** A session in the JS heap: its meta and its context. */
export class SessionRecord {
  readonly context: ConnectionContext<any, any>;
  readonly #native: NativeServer;
  /** `ctx.emit` and `ctx.actor`, built on first use. */
  #emit: Emit | undefined;
  #handle: ActorHandle | undefined;

  constructor(
    readonly id: number,
    readonly actor: ActorRecord,
    readonly meta: ConnectionMeta,
    native: NativeServer,
  ) {
    this.#native = native;
    this.context = new SessionContextObject(this) as unknown as ConnectionContext<any, any>;
  }

  get emit(): Emit {
    if (this.#emit !== undefined) return this.#emit;
    const { id, actor } = this;
    const native = this.#native;
    // Frames to one session leave at the end of the tick (lib/outgoing.ts); whether the session
    // is still there is known here.
    const toSession = (event: string, data?: object) => {
      return native.emit(id, event, encodePayload(data)) && actor.sessions.has(id);
    };
    return (this.#emit = Object.assign(toSession, {
      emit: toSession,
      toUser: (userId: string) => userTarget(native, actor.endpoint, userId),
      toRoom: (room: string, options?: ToRoomOptions) =>
        roomTarget(actor, room, options?.includeSelf === true ? undefined : id),
    }));
  }

  get handle(): ActorHandle {
    if (this.#handle !== undefined) return this.#handle;
    const session = this;
    const actor = this.actor;
    return (this.#handle = {
      key: actor.key,
      sessions: () => sessionInfos(actor),
      close(code = 1000, reason = "") {
        actor.native.closeSession(session.id, code, reason, false);
      },
      destroy: () => destroyActor(actor),
      ...roomMembership(actor),
    });
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
}

for (const prototype of [ActorContextObject.prototype, SessionContextObject.prototype]) {
  // Enumerable, as the members of a plain context object would be (`for…in`, logging).
  for (const key of ["actor", "state", "emit", "broadcast", "schedule"]) {
    Object.defineProperty(prototype, key, { ...Object.getOwnPropertyDescriptor(prototype, key), enumerable: true });
  }
}

/** Adds `state` to a context: the owner's persisted-state proxy; assigning replaces it. */
export function withState<T extends object>(context: T, owner: { cell: StateCell }): T & { state: any } {
  return Object.defineProperty(context, "state", {
    enumerable: true,
    get: () => owner.cell.state,
    set: (value) => owner.cell.replace(value),
  }) as T & { state: any };
}

function scheduler(native: NativeServer, endpoint: number, key: string): Scheduler {
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

function destroyActor(actor: ActorRecord): void {
  if (actor.destroyed) return;
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
    emit: (event: string, data?: object) =>
      actor.native.emitToRoom(room, event, encodePayload(data), exceptSession),
  };
}

function roomMembership(actor: ActorRecord): Pick<ActorHandle, "joinRoom" | "leaveRoom" | "getRooms"> {
  return {
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

function sessionInfos(actor: ActorRecord): SessionInfo[] {
  return [...actor.sessions.values()].map((s) => ({ sessionId: s.id, meta: s.meta }));
}
