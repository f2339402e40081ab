/**
 * The actors side of the runtime: connection actors in the JS heap and their sessions, and
 * every hook and handler of a connection definition. An actor enters the heap when it is created
 * or woken (state loaded from storage, `onInit`) and leaves it when it hibernates, is evicted or
 * destroyed; the native core decides when and `events.ts` says so here.
 *
 * User code always runs guarded (`attempt`, or its try/catch inline on the hot path of messages
 * and calls): a throw reaches `onError` (or the call's error reply, or a 1011 close) and never
 * the process.
 */

import { validatorsOf } from "../definitions/connection";
import { messageOf, UserError, type PayloadError } from "../errors";
import type { LogFactory, Logger } from "../log";
import type { Persistence } from "../state";
import type { ConnectionDefinition, ConnectionMeta, DestroyReason, Handler, RawData } from "../types";
import type { NativeServer } from "./bridge";
import { attempt, isThenable, reportTo, settled } from "./guard";
import { ActorRecord, SessionRecord, type ActorHost, type RoomPort } from "./records";
import type { CallEntry, CloseEntry, MessageEntry, OpenEntry, ScheduledEntry, WakeEntry } from "./tags";
import { check } from "./validate";

export class ActorRuntime {
  readonly #native: NativeServer;
  readonly #definitions: ReadonlyArray<ConnectionDefinition<any, any>>;
  readonly #persistence: Persistence;
  readonly #exposeErrors: boolean;
  readonly #log: Logger;
  readonly #hooks: Logger;
  /** What every actor record shares. */
  readonly #host: ActorHost;
  readonly #actors = new Map<number, ActorRecord>();
  readonly #sessions = new Map<number, SessionRecord>();

  constructor(
    native: NativeServer,
    definitions: ReadonlyArray<ConnectionDefinition<any, any>>,
    persistence: Persistence,
    rooms: RoomPort,
    exposeErrors: boolean,
    logs: LogFactory,
  ) {
    this.#log = logs("actors");
    this.#hooks = logs("hooks");
    this.#native = native;
    this.#definitions = definitions;
    this.#persistence = persistence;
    this.#exposeErrors = exposeErrors;
    this.#host = {
      native,
      rooms,
      persistence,
      logs,
      report: (definition, error, ctx) => this.#report(definition, error, ctx),
    };
  }

  #report(definition: ConnectionDefinition<any, any>, error: unknown, ctx: unknown, event?: string): void {
    reportTo(this.#hooks, definition, error, ctx, event);
  }

  /** Brings an actor into the heap, then runs `onInit` (holding later steps). Its state is loaded
   * from storage when first used (at once when the inspector is on: it shows every actor's). */
  #enter(actorId: number, endpoint: number, key: string): ActorRecord {
    const definition = this.#definitions[endpoint]!;
    if (this.#log.enabled) this.#log.debug(`${definition.name} "${key}" enters the heap (actor ${actorId})`);
    const actor = new ActorRecord(actorId, definition, endpoint, key, this.#host);
    if (this.#persistence.inspects) void actor.cell;
    this.#actors.set(actorId, actor);
    if (definition.onInit) {
      actor.run(
        () => attempt(() => definition.onInit!(actor.context), (e) => this.#report(definition, e, actor.context)),
        true,
      );
    }
    return actor;
  }

  open([, sessionId, actorId, , endpoint, key, meta]: OpenEntry): void {
    const actor = this.#actors.get(actorId) ?? this.#enter(actorId, endpoint, key);
    const definition = actor.definition;
    const session = new SessionRecord(sessionId, actor, meta as ConnectionMeta);
    this.#sessions.set(sessionId, session);
    actor.run(() => {
      actor.addSession(session);
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
  wake([, actorId, endpoint, key, sessions]: WakeEntry): void {
    if (this.#actors.has(actorId)) return;
    const actor = this.#enter(actorId, endpoint, key);
    for (const [sessionId, meta] of sessions) {
      const session = new SessionRecord(sessionId, actor, meta as ConnectionMeta);
      this.#sessions.set(sessionId, session);
      actor.addSession(session);
    }
    const restore = actor.definition.onHibernationRestore;
    if (restore) {
      actor.run(
        () => attempt(() => restore(actor.context), (e) => this.#report(actor.definition, e, actor.context)),
        true,
      );
    }
  }

  /** Runs a handler in its actor's order, counting it in flight while its promise is pending. */
  #run(actor: ActorRecord, step: () => unknown): void {
    actor.run(() => {
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

  // Messages and calls are the hot path: one closure each (the step the ordering runs), the rest
  // are methods, and a handler that returns synchronously allocates nothing more.

  message([, sessionId, type, data]: MessageEntry): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    const routed = (data as { type?: unknown } | null)?.type;
    const event = typeof routed === "string" && routed.length > 0 ? routed : type;
    session.actor.run(() => this.#deliver(session, event, data), false);
  }

  /** Validates an event frame's data when the contract has a schema for it, then handles it. */
  #deliver(session: SessionRecord, event: string, data: unknown): undefined {
    const schema = validatorsOf(session.actor.definition)?.events.get(event);
    if (schema === undefined) return this.#handle(session, event, data);
    const pass = (value: unknown) => this.#handle(session, event, value);
    this.#track(session.actor, check(schema, event, data, pass, (error) => this.#refuseEvent(session, error)));
    return undefined;
  }

  /** An event's data failed its schema: the client hears `system:error`, `onError` the error. */
  #refuseEvent(session: SessionRecord, error: PayloadError): void {
    const { code, message, event, issues } = error;
    session.context.emit("system:error", { code, message, event, issues });
    this.#report(session.actor.definition, error, session.context, event);
  }

  /** Runs the handler of an event frame (or `onMessage`); a throw or rejection goes to `onError`. */
  #handle(session: SessionRecord, event: string, data: unknown): undefined {
    const actor = session.actor;
    const definition = actor.definition;
    const handler = definition.handlers.get(event);
    let result: unknown;
    try {
      if (handler !== undefined) result = handler(session.context, data);
      else if (definition.onMessage) result = definition.onMessage(session.context, { type: event, data });
      else return undefined;
    } catch (error) {
      this.#report(definition, error, session.context, event);
      return undefined;
    }
    if (isThenable(result)) {
      this.#track(actor, Promise.resolve(result).then(undefined, (error) => this.#report(definition, error, session.context, event)));
    }
    return undefined;
  }

  /** A raw endpoint's message: to `onMessage` as it arrived, in the actor's order. */
  rawMessage(sessionId: number, data: RawData): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    session.actor.run(() => this.#handleRaw(session, data), false);
  }

  #handleRaw(session: SessionRecord, data: RawData): undefined {
    const definition = session.actor.definition;
    const onMessage = definition.onMessage as ((ctx: unknown, data: RawData) => unknown) | undefined;
    if (onMessage === undefined) return undefined;
    let result: unknown;
    try {
      result = onMessage(session.context, data);
    } catch (error) {
      this.#report(definition, error, session.context);
      return undefined;
    }
    if (isThenable(result)) {
      this.#track(session.actor, Promise.resolve(result).then(undefined, (error) => this.#report(definition, error, session.context)));
    }
    return undefined;
  }

  call([, sessionId, callId, event, data]: CallEntry): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    session.actor.run(() => this.#answer(session, callId, event, data), false);
  }

  /** Runs a call's handler and sends its one reply (an error reply when it throws or rejects). */
  #answer(session: SessionRecord, callId: number, event: string, data: unknown): undefined {
    const actor = session.actor;
    const handler = actor.definition.handlers.get(event);
    if (handler === undefined) {
      this.#native.replyError(session.id, callId, "unknown_event", `no handler for "${event}"`, undefined);
      return undefined;
    }
    const schema = validatorsOf(actor.definition)?.calls.get(event);
    if (schema !== undefined) {
      const pass = (value: unknown) => this.#invoke(session, callId, handler, value, event);
      this.#track(actor, check(schema, event, data, pass, (error) => this.#refuseCall(session, callId, error)));
      return undefined;
    }
    return this.#invoke(session, callId, handler, data, event);
  }

  /** A call's argument failed its schema: a `bad_payload` reply with the issues in `meta`. */
  #refuseCall(session: SessionRecord, callId: number, error: PayloadError): void {
    const meta = JSON.stringify({ event: error.event, issues: error.issues });
    this.#native.replyError(session.id, callId, error.code, error.message, meta);
    this.#report(session.actor.definition, error, session.context);
  }

  #invoke(session: SessionRecord, callId: number, handler: Handler<any, any>, data: unknown, event: string): undefined {
    const actor = session.actor;
    let result: unknown;
    try {
      result = handler(session.context, data);
    } catch (error) {
      this.#fail(session, callId, error, event);
      return undefined;
    }
    if (!isThenable(result)) {
      this.#succeed(session, callId, result, event);
      return undefined;
    }
    this.#track(
      actor,
      Promise.resolve(result).then(
        (value) => this.#succeed(session, callId, value, event),
        (error) => this.#fail(session, callId, error, event),
      ),
    );
    return undefined;
  }

  #succeed(session: SessionRecord, callId: number, value: unknown, event: string): void {
    let json: string | undefined;
    try {
      json = value === undefined ? undefined : JSON.stringify(value);
    } catch (error) {
      this.#native.replyError(session.id, callId, "bad_reply", "the handler's result is not JSON-serialisable", undefined);
      this.#report(session.actor.definition, error, session.context, event);
      return;
    }
    this.#native.reply(session.id, callId, json);
  }

  #fail(session: SessionRecord, callId: number, error: unknown, event: string): void {
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
    this.#report(session.actor.definition, error, session.context, event);
  }

  /** A scheduled event is due: its actor's handler runs with the actor-level context. */
  scheduled([, actorId, endpoint, key, , event, data]: ScheduledEntry): void {
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

  close([, sessionId, code, reason]: CloseEntry): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    this.#sessions.delete(sessionId);
    const actor = session.actor;
    const definition = actor.definition;
    actor.run(() => {
      actor.removeSession(session);
      if (!definition.onDisconnect) return undefined;
      return attempt(
        () => definition.onDisconnect!(session.context, { code, reason }),
        (e) => this.#report(definition, e, session.context),
      );
    }, false);
  }

  /** An idle actor with open sessions leaves the heap (state committed first), unless busy. */
  hibernate(actorId: number): void {
    const actor = this.#actors.get(actorId);
    if (actor === undefined) return;
    if (actor.inflight > 0) {
      this.#native.keepAwake(actorId);
      return;
    }
    this.#forget(actor);
    actor.run(() => this.#persistence.commit(), false);
  }

  /** An actor leaves the heap for good: `onDestroy` with the reason, then its state is
   * committed (evicted) or discarded (destroyed: storage was wiped already). */
  leaveHeap(actorId: number, reason: DestroyReason): void {
    const actor = this.#actors.get(actorId);
    if (actor === undefined) return;
    if (reason === "destroyed") actor.destroyed = true;
    this.#forget(actor);
    actor.run(() => {
      const done = this.#runDestroy(actor, reason);
      this.#persistence.commit();
      return done;
    }, false);
  }

  #forget(actor: ActorRecord): void {
    if (this.#log.enabled) this.#log.debug(`${actor.definition.name} "${actor.key}" leaves the heap (actor ${actor.id})`);
    this.#actors.delete(actor.id);
    for (const { id } of actor.sessions) this.#sessions.delete(id);
  }

  #runDestroy(actor: ActorRecord, reason: DestroyReason): unknown {
    const definition = actor.definition;
    if (!definition.onDestroy) return undefined;
    const ctx = actor.destroyContext(reason);
    return attempt(() => definition.onDestroy!(ctx), (e) => this.#report(definition, e, ctx));
  }

  /** Runs `onDestroy` of every actor still in the heap (server shutdown) and forgets them all;
   * the promises settle when each hook has. */
  destroyAll(reason: DestroyReason & ("shutdown" | "evicted")): Promise<void>[] {
    const pending = [...this.#actors.values()].map((actor) => settled(actor, () => this.#runDestroy(actor, reason)));
    this.#actors.clear();
    this.#sessions.clear();
    return pending;
  }

  /** The in-heap actor of a user, if any (for `server.hibernate`, tests). */
  actorOf(endpoint: number, key: string): ActorRecord | undefined {
    for (const actor of this.#actors.values()) if (actor.endpoint === endpoint && actor.key === key) return actor;
    return undefined;
  }
}
