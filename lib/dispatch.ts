/**
 * The JS end of the bridge. When the native core has events it calls `wake`; we take every
 * queued batch (one `JSON.parse` each) and route each event to the hooks and handlers of its
 * actor or room. User code always runs guarded (`attempt`, or its try/catch inline on the hot
 * path of messages and calls): a throw reaches `onError` (or the call's error reply, or a 1011
 * close) and never the process.
 *
 * Actors enter the heap when created or woken (state loaded from storage) and leave it when
 * they hibernate, are evicted or destroyed; the native core decides when and tells us here.
 */

import type { NativeServer } from "../native";
import type { ConnectionDefinition, ConnectionMeta, DestroyReason } from "./connection";
import { ActorRecord, SessionRecord } from "./context";
import { messageOf, UserError } from "./errors";
import { attempt, isThenable, reportTo, settled } from "./hooks";
import { Persistence } from "./persistence";
import type { RoomContext, RoomDefinition } from "./room";
import { RoomRuntime } from "./room-runtime";
import { authenticate } from "./upgrade";
import {
  Tag,
  type CallEntry,
  type CloseEntry,
  type Entry,
  type MessageEntry,
  type OpenEntry,
  type ScheduledEntry,
  type WakeEntry,
} from "./protocol";

/** Batches taken per wake-up before yielding to the event loop (pending promises, I/O). */
const MAX_BATCHES_PER_WAKE = 64;

export class Runtime {
  readonly #native: NativeServer;
  readonly #definitions: ReadonlyArray<ConnectionDefinition<any, any>>;
  readonly #actors = new Map<number, ActorRecord>();
  readonly #sessions = new Map<number, SessionRecord>();
  readonly persistence: Persistence;
  readonly rooms: RoomRuntime;
  /** Called once the native core reports that shutdown finished. */
  onShutdown: (() => void) | null = null;

  readonly #exposeErrors: boolean;

  constructor(
    native: NativeServer,
    definitions: ReadonlyArray<ConnectionDefinition<any, any>>,
    roomDefinitions: ReadonlyArray<RoomDefinition>,
    options: { exposeErrors?: boolean } = {},
  ) {
    this.#native = native;
    this.#exposeErrors = options.exposeErrors === true;
    this.#definitions = definitions;
    this.persistence = new Persistence(native);
    this.rooms = new RoomRuntime(native, this.persistence, definitions, roomDefinitions);
  }

  room(name: string): RoomContext {
    return this.rooms.room(name);
  }

  /** Takes and routes every queued batch. Given (late-bound) as the native wake-up callback. */
  wake(): void {
    for (let i = 0; i < MAX_BATCHES_PER_WAKE; i++) {
      const text = this.#native.takeBatch();
      if (text === null) return;
      const batch = JSON.parse(text) as Entry[];
      for (const entry of batch) this.#handle(entry);
    }
  }

  #handle(entry: Entry): void {
    switch (entry[0]) {
      case Tag.Upgrade: {
        const [, request, endpoint, url, remoteAddress, headers] = entry;
        return authenticate(this.#native, this.#definitions[endpoint]!, request, url, remoteAddress, headers);
      }
      case Tag.Open:
        return this.#open(entry);
      case Tag.Message:
        return this.#message(entry);
      case Tag.Call:
        return this.#call(entry);
      case Tag.Close:
        return this.#close(entry);
      case Tag.Evict:
        return this.#leaveHeap(entry[1], "evicted");
      case Tag.Destroyed:
        return this.#leaveHeap(entry[1], "destroyed");
      case Tag.Hibernate:
        return this.#hibernate(entry[1]);
      case Tag.Wake:
        return this.#wake(entry);
      case Tag.RoomJoin: {
        const [, room, , handler, name, userId, metadata] = entry;
        return this.rooms.joined(room, handler, name, userId, metadata);
      }
      case Tag.RoomLeave:
        return this.rooms.left(entry[1], entry[2]);
      case Tag.RoomEvict:
        return this.rooms.leaveHeap(entry[1], "evicted");
      case Tag.RoomHibernate:
        return this.rooms.leaveHeap(entry[1], "hibernated");
      case Tag.RoomDestroyed:
        return this.rooms.leaveHeap(entry[1], "destroyed");
      case Tag.Scheduled:
        return this.#scheduled(entry);
      case Tag.Shutdown:
        this.onShutdown?.();
        return;
    }
  }

  #report(definition: ConnectionDefinition<any, any>, error: unknown, ctx: unknown): void {
    reportTo(definition, error, ctx);
  }

  /** Brings an actor into the heap: state loaded from storage, then `onInit` (gating). */
  #enter(actorId: number, endpoint: number, key: string): ActorRecord {
    const definition = this.#definitions[endpoint]!;
    let actor!: ActorRecord;
    const cell = this.persistence.cell(0, definition.name, key, definition.state, definition.persistedKeys, () => actor);
    actor = new ActorRecord(actorId, definition, endpoint, key, this.#native, this.rooms, cell);
    this.#actors.set(actorId, actor);
    const onStateChange = definition.onStateChange;
    if (onStateChange) {
      actor.stateChanged = () => {
        cell.readOnly(`cannot change the state of ${definition.name} "${key}" inside onStateChange`);
        try {
          attempt(() => onStateChange(actor.context, cell.state), (e) => this.#report(definition, e, actor.context));
        } finally {
          cell.readOnly(null);
        }
      };
    }
    if (definition.onInit) {
      actor.gate.run(
        () => attempt(() => definition.onInit!(actor.context), (e) => this.#report(definition, e, actor.context)),
        true,
      );
    }
    return actor;
  }

  #open([, sessionId, actorId, , endpoint, key, meta]: OpenEntry): void {
    const actor = this.#actors.get(actorId) ?? this.#enter(actorId, endpoint, key);
    const definition = actor.definition;
    const session = new SessionRecord(sessionId, actor, meta as ConnectionMeta, this.#native);
    this.#sessions.set(sessionId, session);
    actor.gate.run(() => {
      actor.sessions.set(sessionId, session);
      if (!definition.onConnect) return undefined;
      return attempt(
        () => definition.onConnect!(session.context),
        (error) => {
          this.#report(definition, error, session.context);
          this.#native.closeSession(sessionId, 1011, "Connection handler error", true);
        },
      );
    }, true);
  }

  /** A hibernated actor wakes: `onInit`, its sessions back from their attachments, then
   * `onHibernationRestore`, all before the event that woke it. */
  #wake([, actorId, endpoint, key, sessions]: WakeEntry): void {
    if (this.#actors.has(actorId)) return;
    const actor = this.#enter(actorId, endpoint, key);
    for (const [sessionId, meta] of sessions) {
      const session = new SessionRecord(sessionId, actor, meta as ConnectionMeta, this.#native);
      this.#sessions.set(sessionId, session);
      actor.sessions.set(sessionId, session);
    }
    const restore = actor.definition.onHibernationRestore;
    if (restore) {
      actor.gate.run(
        () => attempt(() => restore(actor.context), (e) => this.#report(actor.definition, e, actor.context)),
        true,
      );
    }
  }

  /** Runs a handler in its actor's order, counting it in flight while its promise is pending. */
  #run(actor: ActorRecord, step: () => unknown): void {
    actor.gate.run(() => {
      this.#track(actor, step());
      return undefined;
    }, false);
  }

  /** Counts a handler's promise as in flight until it settles. */
  #track(actor: ActorRecord, result: unknown): void {
    if (isThenable(result)) {
      actor.inflight++;
      const done = () => void actor.inflight--;
      result.then(done, done);
    }
  }

  // Messages and calls are the hot path: one closure each (the step the gate runs), the rest
  // are methods, and a handler that returns synchronously allocates nothing more.

  #message([, sessionId, type, data]: MessageEntry): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    const routed = (data as { type?: unknown } | null)?.type;
    const event = typeof routed === "string" && routed.length > 0 ? routed : type;
    session.actor.gate.run(() => this.#deliver(session, event, data), false);
  }

  /** Runs the handler of an event frame (or `onMessage`); a throw or rejection goes to `onError`. */
  #deliver(session: SessionRecord, event: string, data: unknown): undefined {
    const actor = session.actor;
    const definition = actor.definition;
    const handler = definition.handlers.get(event);
    let result: unknown;
    try {
      if (handler !== undefined) result = handler(session.context, data);
      else if (definition.onMessage) result = definition.onMessage(session.context, { type: event, data });
      else return undefined;
    } catch (error) {
      this.#report(definition, error, session.context);
      return undefined;
    }
    if (isThenable(result)) {
      this.#track(actor, Promise.resolve(result).then(undefined, (error) => this.#report(definition, error, session.context)));
    }
    return undefined;
  }

  #call([, sessionId, callId, event, data]: CallEntry): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    session.actor.gate.run(() => this.#answer(session, callId, event, data), false);
  }

  /** Runs a call's handler and sends its one reply (an error reply when it throws or rejects). */
  #answer(session: SessionRecord, callId: number, event: string, data: unknown): undefined {
    const actor = session.actor;
    const handler = actor.definition.handlers.get(event);
    if (handler === undefined) {
      this.#native.replyError(session.id, callId, "unknown_event", `no handler for "${event}"`, undefined);
      return undefined;
    }
    let result: unknown;
    try {
      result = handler(session.context, data);
    } catch (error) {
      this.#fail(session, callId, error);
      return undefined;
    }
    if (!isThenable(result)) {
      this.#succeed(session, callId, result);
      return undefined;
    }
    this.#track(
      actor,
      Promise.resolve(result).then(
        (value) => this.#succeed(session, callId, value),
        (error) => this.#fail(session, callId, error),
      ),
    );
    return undefined;
  }

  #succeed(session: SessionRecord, callId: number, value: unknown): void {
    let json: string | undefined;
    try {
      json = value === undefined ? undefined : JSON.stringify(value);
    } catch (error) {
      this.#native.replyError(session.id, callId, "bad_reply", "the handler's result is not JSON-serialisable", undefined);
      this.#report(session.actor.definition, error, session.context);
      return;
    }
    this.#native.reply(session.id, callId, json);
  }

  #fail(session: SessionRecord, callId: number, error: unknown): void {
    if (error instanceof UserError) {
      let meta: string | undefined;
      try {
        meta = error.meta === undefined ? undefined : JSON.stringify(error.meta);
      } catch {
        meta = undefined;
      }
      this.#native.replyError(session.id, callId, error.code, error.message, meta);
      return;
    }
    const message = this.#exposeErrors ? messageOf(error) : "internal error";
    this.#native.replyError(session.id, callId, "internal_error", message, undefined);
    this.#report(session.actor.definition, error, session.context);
  }

  /** A scheduled event is due: its actor's handler runs with the actor-level context. */
  #scheduled([, actorId, endpoint, key, , event, data]: ScheduledEntry): void {
    const actor = this.#actors.get(actorId) ?? this.#enter(actorId, endpoint, key);
    const definition = actor.definition;
    const report = (e: unknown) => this.#report(definition, e, actor.context);
    this.#run(actor, () => {
      const handler = definition.handlers.get(event);
      if (handler !== undefined) return attempt(() => handler(actor.context as any, data), report);
      report(new Error(`no handler for the scheduled event "${event}"`));
      return undefined;
    });
  }

  #close([, sessionId, code, reason]: CloseEntry): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    this.#sessions.delete(sessionId);
    const actor = session.actor;
    const definition = actor.definition;
    actor.gate.run(() => {
      actor.sessions.delete(sessionId);
      if (!definition.onDisconnect) return undefined;
      return attempt(
        () => definition.onDisconnect!(session.context, { code, reason }),
        (e) => this.#report(definition, e, session.context),
      );
    }, false);
  }

  /** An idle actor with open sessions leaves the heap (state committed first), unless busy. */
  #hibernate(actorId: number): void {
    const actor = this.#actors.get(actorId);
    if (actor === undefined) return;
    if (actor.inflight > 0) {
      this.#native.keepAwake(actorId);
      return;
    }
    this.#forget(actor);
    actor.gate.run(() => this.persistence.commit(), false);
  }

  /** An actor leaves the heap for good: `onDestroy` with the reason, then its state is
   * committed (evicted) or discarded (destroyed: storage was wiped already). */
  #leaveHeap(actorId: number, reason: DestroyReason): void {
    const actor = this.#actors.get(actorId);
    if (actor === undefined) return;
    if (reason === "destroyed") actor.destroyed = true;
    this.#forget(actor);
    actor.gate.run(() => {
      const done = this.#runDestroy(actor, reason);
      this.persistence.commit();
      return done;
    }, false);
  }

  #forget(actor: ActorRecord): void {
    this.#actors.delete(actor.id);
    for (const id of actor.sessions.keys()) this.#sessions.delete(id);
  }

  #runDestroy(actor: ActorRecord, reason: DestroyReason): unknown {
    const definition = actor.definition;
    if (!definition.onDestroy) return undefined;
    const ctx = actor.destroyContext(reason);
    return attempt(() => definition.onDestroy!(ctx), (e) => this.#report(definition, e, ctx));
  }

  /** Calls `onDestroy` of every actor and room still in the heap (server shutdown), then
   * commits what they changed. */
  async destroyAll(reason: DestroyReason & ("shutdown" | "evicted")): Promise<void> {
    const pending = [
      ...this.rooms.destroyAll(reason),
      ...[...this.#actors.values()].map((actor) => settled(actor.gate, () => this.#runDestroy(actor, reason))),
    ];
    this.#actors.clear();
    this.#sessions.clear();
    await Promise.all(pending);
    this.persistence.commit();
  }

  /** The in-heap actor of a user, if any (for `server.hibernate`, tests). */
  actorOf(endpoint: number, key: string): ActorRecord | undefined {
    for (const actor of this.#actors.values()) if (actor.endpoint === endpoint && actor.key === key) return actor;
    return undefined;
  }
}
