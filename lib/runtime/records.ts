/**
 * What the runtime keeps in the JS heap for each actor, session and room it has loaded: the
 * state cell, the hook ordering, the context user code receives, and the flags the runtime needs
 * (destroyed, handlers in flight). A record lives from the moment the native core hands the
 * actor or room to JS until it hibernates, is evicted or destroyed; the native core owns the
 * rest (sockets, membership, storage) and a record never mirrors it.
 *
 * The functions behind `ctx.emit`, `ctx.actor` and `ctx.schedule` are built (in `context.ts`) on
 * a record's first use of them and cached here, so an idle socket pays for none.
 */

import type { StateCell, StateOwner } from "../state";
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
import { Ordering } from "./ordering";

/** Resolves room names for a connection definition (implemented by the rooms runtime). */
export interface RoomPort {
  /** The index of the room handler serving `roomName`; throws a clear error when none does. */
  handlerFor(definition: ConnectionDefinition<any, any>, roomName: string): number;
}

/** An actor in the JS heap: its state and the JS side of its sessions. */
export class ActorRecord implements StateOwner {
  readonly kind = StateKind.Actor;
  readonly sessions = new Map<number, SessionRecord>();
  readonly ordering = new Ordering();
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
    this.context = actorContext(this, undefined);
  }

  /** `ctx.emit` and `ctx.broadcast` of actor-level hooks: one function for both. */
  get emit(): ActorEmit {
    return (this.#emit ??= actorEmit(this));
  }

  /** `ctx.actor` of actor-level hooks. */
  get handle(): ActorHandle {
    return (this.#handle ??= actorHandle(this));
  }

  /** `ctx.schedule`, shared by the actor's context and its sessions' contexts. */
  get schedule(): Scheduler {
    return (this.#schedule ??= scheduler(this.native, this.endpoint, this.key));
  }

  destroyContext(reason: DestroyReason): DestroyContext<any> {
    return actorContext(this, reason) as DestroyContext<any>;
  }
}

/** A session in the JS heap: its meta and its context. */
export class SessionRecord {
  readonly context: ConnectionContext<any, any>;
  /** `ctx.emit` and `ctx.actor`, built on first use. */
  #emit: Emit | undefined;
  #handle: ActorHandle | undefined;

  constructor(
    readonly id: number,
    readonly actor: ActorRecord,
    readonly meta: ConnectionMeta,
    readonly native: NativeServer,
  ) {
    this.context = sessionContext(this);
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
