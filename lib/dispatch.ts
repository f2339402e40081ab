/**
 * The JS end of the bridge. When the native core has events it calls `wake`; we take every
 * queued batch (one `JSON.parse` each) and route each event to the hooks and handlers of its
 * actor. User code is always called here, inside try/catch: a throw reaches `onError` (or the
 * call's error reply, or a 1011 close) and never the process.
 */

import type { NativeServer } from "../native";
import type { ConnectionDefinition, ConnectionMeta, DestroyReason } from "./connection";
import { ActorRecord, SessionRecord, type RoomPort } from "./context";
import { messageOf, WarrenError } from "./errors";
import type { Gate } from "./gate";
import { bindingFor, type RoomContext, type RoomDefinition, type RoomDestroyReason } from "./room";
import { RoomRecord, roomContext } from "./room-record";
import {
  Tag,
  type CallEntry,
  type CloseEntry,
  type Entry,
  type EvictEntry,
  type MessageEntry,
  type OpenEntry,
  type RoomEvictEntry,
  type RoomJoinEntry,
  type RoomLeaveEntry,
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

export class Runtime implements RoomPort {
  #native: NativeServer | null = null;
  readonly #definitions: ReadonlyArray<ConnectionDefinition<any, any>>;
  readonly #roomDefinitions: ReadonlyArray<RoomDefinition>;
  readonly #actors = new Map<number, ActorRecord>();
  readonly #sessions = new Map<number, SessionRecord>();
  readonly #rooms = new Map<number, RoomRecord>();
  readonly #roomsByName = new Map<string, RoomRecord>();
  /** Called once the native core reports that shutdown finished. */
  onShutdown: (() => void) | null = null;

  constructor(
    definitions: ReadonlyArray<ConnectionDefinition<any, any>>,
    roomDefinitions: ReadonlyArray<RoomDefinition> = [],
  ) {
    this.#definitions = definitions;
    this.#roomDefinitions = roomDefinitions;
  }

  handlerFor(definition: ConnectionDefinition<any, any>, roomName: string): number {
    if (typeof roomName !== "string" || roomName.length === 0) {
      throw new WarrenError("unknown_room", "room names are non-empty strings");
    }
    const binding = bindingFor(definition.rooms, roomName);
    const index = binding === undefined ? -1 : this.#roomDefinitions.findIndex((r) => r.name === binding);
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

  /** The room context for `server.room(name)`, resolved through every connection's rooms. */
  room(name: string): RoomContext {
    const native = this.#requireNative();
    let handler = -1;
    for (const definition of this.#definitions) {
      const binding = bindingFor(definition.rooms, name);
      handler = binding === undefined ? -1 : this.#roomDefinitions.findIndex((r) => r.name === binding);
      if (handler >= 0) break;
    }
    if (handler < 0) {
      throw new WarrenError("unknown_room", `no connection definition has a room "${name}" in its rooms map`);
    }
    const found = handler;
    return roomContext(name, native, () => this.#openRoom(native, name, found));
  }

  #requireNative(): NativeServer {
    if (this.#native === null) throw new WarrenError("server_closed", "the server is not running");
    return this.#native;
  }

  #openRoom(native: NativeServer, name: string, handler: number): RoomRecord {
    const known = this.#roomsByName.get(name);
    if (known !== undefined) return known;
    const { id } = native.openRoom(name, handler);
    return this.#ensureRoom(native, id, handler, name);
  }

  #ensureRoom(native: NativeServer, id: number, handler: number, name: string): RoomRecord {
    const known = this.#rooms.get(id);
    if (known !== undefined) return known;
    const definition = this.#roomDefinitions[handler]!;
    const room = new RoomRecord(id, definition, name, native);
    this.#rooms.set(id, room);
    this.#roomsByName.set(name, room);
    if (definition.onInit) {
      room.gate.run(() => attempt(() => definition.onInit!(room.context), (e) => this.#reportRoom(room, e)), true);
    }
    return room;
  }

  #reportRoom(room: RoomRecord, error: unknown): void {
    const definition = room.definition;
    if (definition.onError) {
      try {
        const handled = definition.onError(error, room.context);
        if (isThenable(handled)) handled.then(undefined, (again) => logError(definition, again));
        return;
      } catch (again) {
        logError(definition, again);
        return;
      }
    }
    logError(definition, error);
  }

  #roomJoin(native: NativeServer, [, roomId, , handler, name, userId, metadata]: RoomJoinEntry): void {
    const room = this.#ensureRoom(native, roomId, handler, name);
    const onJoin = room.definition.onJoin;
    if (!onJoin) return;
    room.gate.run(() => attempt(() => onJoin(room.context, userId, metadata), (e) => this.#reportRoom(room, e)), false);
  }

  #roomLeave([, roomId, userId]: RoomLeaveEntry): void {
    const room = this.#rooms.get(roomId);
    const onLeave = room?.definition.onLeave;
    if (room === undefined || !onLeave) return;
    room.gate.run(() => attempt(() => onLeave(room.context, userId), (e) => this.#reportRoom(room, e)), false);
  }

  #roomEvict([, roomId]: RoomEvictEntry): void {
    const room = this.#rooms.get(roomId);
    if (room === undefined) return;
    this.#forgetRoom(room);
    room.gate.run(() => this.#destroyRoom(room, "evicted"), false);
  }

  #forgetRoom(room: RoomRecord): void {
    this.#rooms.delete(room.id);
    if (this.#roomsByName.get(room.name) === room) this.#roomsByName.delete(room.name);
  }

  #destroyRoom(room: RoomRecord, reason: RoomDestroyReason): unknown {
    const onDestroy = room.definition.onDestroy;
    if (!onDestroy) return undefined;
    const ctx = room.destroyContext(reason);
    return attempt(() => onDestroy(ctx), (e) => this.#reportRoom(room, e));
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
      case Tag.RoomJoin:
        return this.#roomJoin(native, entry);
      case Tag.RoomLeave:
        return this.#roomLeave(entry);
      case Tag.RoomEvict:
        return this.#roomEvict(entry);
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
      const created = new ActorRecord(actorId, definition, endpoint, key, native, this);
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

  /** Calls `onDestroy` of every actor and room still in memory (server shutdown). */
  async destroyAll(reason: DestroyReason & RoomDestroyReason): Promise<void> {
    const pending = [
      ...[...this.#rooms.values()].map((room) => settled(room.gate, () => this.#destroyRoom(room, reason))),
      ...[...this.#actors.values()].map((actor) => settled(actor.gate, () => this.#destroy(actor, reason))),
    ];
    this.#rooms.clear();
    this.#roomsByName.clear();
    this.#actors.clear();
    this.#sessions.clear();
    await Promise.all(pending);
  }
}

/** Runs `step` in `gate` order; resolves once it (and any promise it returns) has settled. */
function settled(gate: Gate, step: () => unknown): Promise<void> {
  return new Promise<void>((resolve) => {
    gate.run(() => {
      const result = step();
      if (isThenable(result)) result.then(() => resolve(), () => resolve());
      else resolve();
      return result;
    }, false);
  });
}

function logError(definition: { name: string }, error: unknown): void {
  console.error(`[warren] ${definition.name}:`, error);
}
