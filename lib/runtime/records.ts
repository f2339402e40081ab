/**
 * What the runtime keeps in the JS heap for each actor, session and room it has loaded: the
 * state cell, the hook ordering, the context user code receives, and the flags the runtime needs
 * (destroyed, handlers in flight). A record lives from the moment the native core hands the
 * actor or room to JS until it hibernates, is evicted or destroyed; the native core owns the
 * rest (sockets, membership, storage) and a record never mirrors it.
 *
 * The functions behind `ctx.emit`, `ctx.actor` and `ctx.schedule` are built (in `context.ts`) on
 * a record's first use of them and cached here, so an idle socket pays for none. An actor's
 * state is loaded from storage on first use too, and its actor-level context is made when a
 * hook needs it: the connection actor of an idle socket is one small record, its session one
 * more, and their contexts. What every actor of a runtime shares (the native core, the loggers,
 * persistence) sits in one `ActorHost` instead of a field each.
 */

import type { LogFactory } from "../log";
import type { Persistence, StateCell, StateOwner } from "../state";
import type {
  ActorContext,
  ActorEmit,
  ActorHandle,
  ConnectionContext,
  ConnectionDefinition,
  ConnectionMeta,
  DestroyContext,
  DestroyReason,
  Emit,
  RoomContext,
  RoomDefinition,
  RoomDestroyReason,
  RoomMember,
  Scheduler,
} from "../types";
import { StateKind, type NativeServer } from "./bridge";
import {
  actorContext,
  actorEmit,
  actorHandle,
  roomContext,
  roomHookContext,
  scheduler,
  sessionContext,
  sessionEmit,
  sessionHandle,
} from "./context";
import { attempt } from "./guard";
import { Ordering } from "./ordering";

/** Resolves room names for a connection definition (implemented by the rooms runtime). */
export interface RoomPort {
  /** The index of the room handler serving `roomName`; throws a clear error when none does. */
  handlerFor(definition: ConnectionDefinition<any, any>, roomName: string): number;
}

/** What every actor record of one runtime shares. */
export interface ActorHost {
  readonly native: NativeServer;
  readonly rooms: RoomPort;
  readonly persistence: Persistence;
  /** The server's loggers, reached from an actor's context (`Actor#_log`). */
  readonly logs: LogFactory;
  /** Reports a throw of user code (a hook of `definition`, given `ctx`) to the log and `onError`. */
  report(definition: ConnectionDefinition<any, any>, error: unknown, ctx: unknown): void;
}

/** The parts of an actor's context built on first use (the actor of an idle socket has none). */
interface ActorParts {
  context?: ActorContext<any>;
  emit?: ActorEmit;
  handle?: ActorHandle;
  schedule?: Scheduler;
}

/**
 * An actor in the JS heap: its state, the JS side of its sessions, and the order of its hooks
 * (it is the `Ordering` its steps run in).
 */
export class ActorRecord extends Ordering implements StateOwner {
  destroyed = false;
  /** Handlers whose promise has not settled; a busy actor is not hibernated. */
  inflight = 0;
  /** Its sessions in the order they opened: none, one (nearly always), or an array of two or more. */
  #sessions: SessionRecord | SessionRecord[] | undefined = undefined;
  /** Loaded from storage on first use. */
  #cell: StateCell | undefined = undefined;
  #parts: ActorParts | undefined = undefined;

  constructor(
    readonly id: number,
    readonly definition: ConnectionDefinition<any, any>,
    readonly endpoint: number,
    readonly key: string,
    readonly host: ActorHost,
  ) {
    super();
  }

  get kind(): StateKind.Actor {
    return StateKind.Actor;
  }

  /** Where the state is stored: the definition's name and the actor's key. */
  get owner(): string {
    return this.definition.name;
  }

  get name(): string {
    return this.key;
  }

  get native(): NativeServer {
    return this.host.native;
  }

  get rooms(): RoomPort {
    return this.host.rooms;
  }

  /** The state cell, loaded from storage (defaults for what is not stored) on first use. */
  get cell(): StateCell {
    if (this.#cell === undefined) {
      const { definition, key } = this;
      this.#cell = this.host.persistence.cell(StateKind.Actor, definition.name, key, definition.state, definition.persistedKeys, () => this);
    }
    return this.#cell;
  }

  /** Whether the state was loaded (an actor whose state was never used has nothing to write). */
  get loaded(): boolean {
    return this.#cell !== undefined;
  }

  /** The `ctx` of actor-level hooks, made on first use. */
  get context(): ActorContext<any> {
    const parts = (this.#parts ??= {});
    return (parts.context ??= actorContext(this, undefined));
  }

  /** `ctx.emit` and `ctx.broadcast` of actor-level hooks: one function for both. */
  get emit(): ActorEmit {
    const parts = (this.#parts ??= {});
    return (parts.emit ??= actorEmit(this));
  }

  /** `ctx.actor` of actor-level hooks. */
  get handle(): ActorHandle {
    const parts = (this.#parts ??= {});
    return (parts.handle ??= actorHandle(this));
  }

  /** `ctx.schedule`, shared by the actor's context and its sessions' contexts. */
  get schedule(): Scheduler {
    const parts = (this.#parts ??= {});
    return (parts.schedule ??= scheduler(this.native, this.endpoint, this.key));
  }

  destroyContext(reason: DestroyReason): DestroyContext<any> {
    return actorContext(this, reason) as DestroyContext<any>;
  }

  /** Runs the definition's `onStateChange` (once per tick in which the state changed), read-only. */
  stateChanged(): void {
    const { definition, key } = this;
    const onStateChange = definition.onStateChange;
    if (onStateChange === undefined) return;
    const cell = this.cell;
    const ctx = this.context;
    const reason = `cannot change the state of ${definition.name} "${key}" inside onStateChange`;
    cell.readOnly(reason, () => attempt(() => onStateChange(ctx, cell.state), (e) => this.host.report(definition, e, ctx)));
  }

  /** The actor's sessions, in the order they opened (a new array). */
  get sessions(): SessionRecord[] {
    const sessions = this.#sessions;
    if (sessions === undefined) return [];
    return Array.isArray(sessions) ? [...sessions] : [sessions];
  }

  addSession(session: SessionRecord): void {
    const sessions = this.#sessions;
    if (sessions === undefined) this.#sessions = session;
    else if (Array.isArray(sessions)) sessions.push(session);
    else this.#sessions = [sessions, session];
  }

  removeSession(session: SessionRecord): void {
    const sessions = this.#sessions;
    if (sessions === session) {
      this.#sessions = undefined;
    } else if (Array.isArray(sessions)) {
      const index = sessions.indexOf(session);
      if (index >= 0) sessions.splice(index, 1);
      if (sessions.length === 1) this.#sessions = sessions[0];
    }
  }

  hasSession(session: SessionRecord): boolean {
    const sessions = this.#sessions;
    return sessions === session || (Array.isArray(sessions) && sessions.includes(session));
  }
}

/** A session in the JS heap: its meta and its context. */
export class SessionRecord {
  #context: ConnectionContext<any, any> | undefined = undefined;
  /** `ctx.emit` and `ctx.actor`, built on first use. */
  #emit: Emit | undefined = undefined;
  #handle: ActorHandle | undefined = undefined;

  constructor(
    readonly id: number,
    readonly actor: ActorRecord,
    readonly meta: ConnectionMeta,
  ) {}

  /** The session's `ctx`, made on first use and the same object from then on. */
  get context(): ConnectionContext<any, any> {
    return (this.#context ??= sessionContext(this));
  }

  get native(): NativeServer {
    return this.actor.host.native;
  }

  get emit(): Emit {
    return (this.#emit ??= sessionEmit(this));
  }

  get handle(): ActorHandle {
    return (this.#handle ??= sessionHandle(this));
  }
}

/**
 * A room instance in the JS heap: its state and hook ordering. Membership stays in the native
 * core. Its hooks get `context`, which is also the room's state (`RoomHookContext`).
 */
export class RoomRecord implements StateOwner {
  readonly kind = StateKind.Room;
  readonly ordering = new Ordering();
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
    fetchMembers: () => Promise<RoomMember[]>,
  ) {
    this.owner = definition.name;
    this.#plain = roomContext(name, native, () => this, destroy, fetchMembers);
    this.context = roomHookContext(this, this.#plain);
  }

  /** The room context without the state's keys on top (the prototype of `context`). */
  readonly #plain: RoomContext;

  destroyContext(reason: RoomDestroyReason): RoomContext & { readonly reason: RoomDestroyReason } {
    return roomHookContext(this, this.#plain, reason) as RoomContext & { readonly reason: RoomDestroyReason };
  }
}
