/**
 * The JS end of the bridge. When the native core has events it calls `wake`; we take every
 * queued batch (one `JSON.parse` each) and route each event to the hooks and handlers of its
 * actor. User code is always called here, inside try/catch: a throw reaches `onError` (or the
 * call's error reply, or a 1011 close) and never the process.
 */

import type { NativeServer } from "../native";
import type { ConnectionDefinition, ConnectionMeta, DestroyReason } from "./connection";
import { ActorRecord, SessionRecord } from "./context";
import { messageOf } from "./errors";
import {
  Tag,
  type CallEntry,
  type CloseEntry,
  type Entry,
  type EvictEntry,
  type MessageEntry,
  type OpenEntry,
  type UpgradeEntry,
} from "./protocol";

/** Batches taken per wake-up before yielding to the event loop (pending promises, I/O). */
const MAX_BATCHES_PER_WAKE = 64;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

/** Runs user code; a throw or rejection goes to `onFailure`. Returns a promise if it is async. */
function attempt(run: () => unknown, onFailure: (error: unknown) => void): unknown {
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    onFailure(error);
    return undefined;
  }
  if (isThenable(result)) return Promise.resolve(result).then(undefined, onFailure);
  return result;
}

export class Runtime {
  #native: NativeServer | null = null;
  readonly #definitions: ReadonlyArray<ConnectionDefinition<any, any>>;
  readonly #actors = new Map<number, ActorRecord>();
  readonly #sessions = new Map<number, SessionRecord>();
  /** Called once the native core reports that shutdown finished. */
  onShutdown: (() => void) | null = null;

  constructor(definitions: ReadonlyArray<ConnectionDefinition<any, any>>) {
    this.#definitions = definitions;
  }

  attach(native: NativeServer): void {
    this.#native = native;
  }

  get actorCount(): number {
    return this.#actors.size;
  }

  /** The wake-up callback given to the native core. */
  readonly wake = (): void => {
    const native = this.#native;
    if (native === null) return;
    for (let i = 0; i < MAX_BATCHES_PER_WAKE; i++) {
      const text = native.takeBatch();
      if (text === null) return;
      const batch = JSON.parse(text) as Entry[];
      for (const entry of batch) this.#handle(native, entry);
    }
  };

  #handle(native: NativeServer, entry: Entry): void {
    switch (entry[0]) {
      case Tag.Upgrade:
        return this.#upgrade(native, entry);
      case Tag.Open:
        return this.#open(native, entry);
      case Tag.Message:
        return this.#message(entry);
      case Tag.Call:
        return this.#call(native, entry);
      case Tag.Close:
        return this.#close(entry);
      case Tag.Evict:
        return this.#evict(entry);
      case Tag.Shutdown:
        this.onShutdown?.();
        return;
    }
  }

  #report(definition: ConnectionDefinition<any, any>, error: unknown, ctx: unknown): void {
    if (definition.onError) {
      try {
        const handled = definition.onError(error, ctx as any);
        if (isThenable(handled)) handled.then(undefined, (again) => logError(definition, again));
        return;
      } catch (again) {
        logError(definition, again);
        return;
      }
    }
    logError(definition, error);
  }

  #upgrade(native: NativeServer, [, request, endpoint, url, remoteAddress, headers]: UpgradeEntry): void {
    const definition = this.#definitions[endpoint]!;
    const queryStart = url.indexOf("?");
    const path = queryStart < 0 ? url : url.slice(0, queryStart);
    const query = new URLSearchParams(queryStart < 0 ? "" : url.slice(queryStart + 1));
    const req = { url, path, query, headers, remoteAddress };
    const refuse = (error: unknown) => {
      const status = (error as { status?: unknown } | null)?.status;
      const code = typeof status === "number" && status >= 400 && status < 600 ? status : 401;
      native.rejectUpgrade(request, code, messageOf(error));
    };
    const admit = (meta: unknown) => {
      const userId = (meta as ConnectionMeta | null)?.userId;
      if (meta === null || typeof meta !== "object" || typeof userId !== "string" || userId.length === 0) {
        logError(definition, new TypeError("extractMeta must return an object with a non-empty string userId"));
        native.rejectUpgrade(request, 500, "invalid session meta");
        return;
      }
      let json: string;
      try {
        json = JSON.stringify(meta);
      } catch (error) {
        logError(definition, new TypeError(`extractMeta returned meta that is not JSON: ${messageOf(error)}`));
        native.rejectUpgrade(request, 500, "invalid session meta");
        return;
      }
      native.acceptUpgrade(request, userId, json);
    };
    let meta: unknown;
    try {
      meta = definition.extractMeta!(req);
    } catch (error) {
      refuse(error);
      return;
    }
    if (isThenable(meta)) meta.then(admit, refuse);
    else admit(meta);
  }

  #open(native: NativeServer, [, sessionId, actorId, , endpoint, key, meta]: OpenEntry): void {
    const definition = this.#definitions[endpoint]!;
    let actor = this.#actors.get(actorId);
    if (actor === undefined) {
      const created = new ActorRecord(actorId, definition, endpoint, key, native);
      actor = created;
      this.#actors.set(actorId, created);
      if (definition.onInit) {
        created.gate.run(
          () => attempt(() => definition.onInit!(created.context), (e) => this.#report(definition, e, created.context)),
          true,
        );
      }
    }
    const session = new SessionRecord(sessionId, actor, meta as ConnectionMeta, native);
    this.#sessions.set(sessionId, session);
    const owner = actor;
    owner.gate.run(() => {
      owner.sessions.set(sessionId, session);
      if (!definition.onConnect) return undefined;
      return attempt(
        () => definition.onConnect!(session.context),
        (error) => {
          this.#report(definition, error, session.context);
          native.closeSession(sessionId, 1011, "Connection handler error", true);
        },
      );
    }, true);
  }

  #message([, sessionId, type, data]: MessageEntry): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    const routed = (data as { type?: unknown } | null)?.type;
    const event = typeof routed === "string" && routed.length > 0 ? routed : type;
    const definition = session.actor.definition;
    session.actor.gate.run(() => {
      const handler = definition.handlers.get(event);
      if (handler !== undefined) {
        attempt(() => handler(session.context, data), (e) => this.#report(definition, e, session.context));
      } else if (definition.onMessage) {
        attempt(
          () => definition.onMessage!(session.context, { type: event, data }),
          (e) => this.#report(definition, e, session.context),
        );
      }
      return undefined;
    }, false);
  }

  #call(native: NativeServer, [, sessionId, callId, event, data]: CallEntry): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    const definition = session.actor.definition;
    session.actor.gate.run(() => {
      const handler = definition.handlers.get(event);
      if (handler === undefined) {
        native.replyError(sessionId, callId, "unknown_event", `no handler for "${event}"`, undefined);
        return undefined;
      }
      const fail = (error: unknown) => {
        native.replyError(sessionId, callId, "handler_error", messageOf(error), undefined);
        this.#report(definition, error, session.context);
      };
      const succeed = (value: unknown) => {
        let json: string | undefined;
        try {
          json = value === undefined ? undefined : JSON.stringify(value);
        } catch (error) {
          native.replyError(sessionId, callId, "bad_reply", "the handler's result is not JSON-serialisable", undefined);
          this.#report(definition, error, session.context);
          return;
        }
        native.reply(sessionId, callId, json);
      };
      let result: unknown;
      try {
        result = handler(session.context, data);
      } catch (error) {
        fail(error);
        return undefined;
      }
      if (isThenable(result)) result.then(succeed, fail);
      else succeed(result);
      return undefined;
    }, false);
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

  #evict([, actorId]: EvictEntry): void {
    const actor = this.#actors.get(actorId);
    if (actor === undefined) return;
    this.#actors.delete(actorId);
    actor.gate.run(() => this.#destroy(actor, "evicted"), false);
  }

  #destroy(actor: ActorRecord, reason: DestroyReason): unknown {
    const definition = actor.definition;
    if (!definition.onDestroy) return undefined;
    const ctx = actor.destroyContext(reason);
    return attempt(() => definition.onDestroy!(ctx), (e) => this.#report(definition, e, ctx));
  }

  /** Calls `onDestroy` of every actor still in memory (server shutdown) and forgets them. */
  async destroyAll(reason: DestroyReason): Promise<void> {
    const pending: unknown[] = [];
    for (const actor of this.#actors.values()) {
      pending.push(
        new Promise<void>((resolve) => {
          actor.gate.run(() => {
            const result = this.#destroy(actor, reason);
            if (isThenable(result)) result.then(() => resolve(), () => resolve());
            else resolve();
            return result;
          }, false);
        }),
      );
    }
    this.#actors.clear();
    this.#sessions.clear();
    await Promise.all(pending);
  }
}

function logError(definition: ConnectionDefinition<any, any>, error: unknown): void {
  console.error(`[warren] ${definition.name}:`, error);
}
