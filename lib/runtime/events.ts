/**
 * The JS end of the bridge: when the native core has events it calls `wake`; we take every
 * queued batch (one `JSON.parse` each) and route each entry by its tag (`tags.ts`) to the
 * upgrade check, the actors or the rooms. This is the one place a batch is read; everything
 * past the switch is a method of the runtime that owns the entry's subject.
 */

import { logger, type LogFactory, type Logger } from "../log";
import { Persistence } from "../state";
import type { ConnectionDefinition, DestroyReason, RoomContext, RoomDefinition } from "../types";
import { ActorRuntime } from "./actors";
import type { NativeServer } from "./bridge";
import type { ActorRecord } from "./records";
import { RoomRuntime } from "./rooms";
import { Tag, type Entry } from "./tags";
import { authenticate } from "./upgrade";

/** Batches taken per wake-up before yielding to the event loop (pending promises, I/O). */
const MAX_BATCHES_PER_WAKE = 64;

export class Runtime {
  readonly #exposeErrors: boolean;
  readonly #native: NativeServer;
  readonly #definitions: ReadonlyArray<ConnectionDefinition<any, any>>;
  readonly #persistence: Persistence;
  readonly #actors: ActorRuntime;
  readonly #rooms: RoomRuntime;
  /** What the native core reports (storage and cluster trouble), under `warren:native`. */
  readonly #log: Logger;
  readonly #logs: LogFactory;
  /** Called once the native core reports that shutdown finished. */
  onShutdown: (() => void) | null = null;

  constructor(
    native: NativeServer,
    definitions: ReadonlyArray<ConnectionDefinition<any, any>>,
    roomDefinitions: ReadonlyArray<RoomDefinition>,
    options: { exposeErrors?: boolean; logs?: LogFactory } = {},
  ) {
    const logs = options.logs ?? logger;
    this.#logs = logs;
    this.#log = logs("native");
    this.#native = native;
    this.#definitions = definitions;
    this.#persistence = new Persistence(native, logs("state"));
    this.#rooms = new RoomRuntime(native, this.#persistence, definitions, roomDefinitions, logs);
    this.#exposeErrors = options.exposeErrors === true;
    this.#actors = new ActorRuntime(native, definitions, this.#persistence, this.#rooms, this.#exposeErrors, logs);
  }

  room(name: string): RoomContext {
    return this.#rooms.room(name);
  }

  /** Takes and routes every queued batch. Given (late-bound) as the native wake-up callback. */
  wake(): void {
    for (let i = 0; i < MAX_BATCHES_PER_WAKE; i++) {
      const text = this.#native.takeBatch();
      if (text === null) return;
      const batch = JSON.parse(text) as Entry[];
      for (const entry of batch) {
        // One entry that cannot be handled (its state unreadable while the store recovers, say)
        // must not take the others, or the process, with it.
        try {
          this.#route(entry);
        } catch (error) {
          this.#log.error(`an event of the native core could not be handled (tag ${entry[0]}):`, error);
        }
      }
    }
  }

  #route(entry: Entry): void {
    switch (entry[0]) {
      case Tag.Upgrade: {
        const [, request, endpoint, url, remoteAddress, headers] = entry;
        return authenticate(this.#native, this.#definitions[endpoint]!, request, url, remoteAddress, headers, this.#exposeErrors, this.#logs("upgrade"), this.#logs("hooks"));
      }
      case Tag.Open:
        return this.#actors.open(entry);
      case Tag.Message:
        return this.#actors.message(entry);
      case Tag.Call:
        return this.#actors.call(entry);
      case Tag.Close:
        return this.#actors.close(entry);
      case Tag.Evict:
        return this.#actors.leaveHeap(entry[1], "evicted");
      case Tag.Destroyed:
        return this.#actors.leaveHeap(entry[1], "destroyed");
      case Tag.Hibernate:
        return this.#actors.hibernate(entry[1]);
      case Tag.Wake:
        return this.#actors.wake(entry);
      case Tag.RoomJoin: {
        const [, room, , handler, name, userId, metadata] = entry;
        return this.#rooms.joined(room, handler, name, userId, metadata);
      }
      case Tag.RoomLeave:
        return this.#rooms.left(entry[1], entry[2]);
      case Tag.RoomEvict:
        return this.#rooms.leaveHeap(entry[1], "evicted");
      case Tag.RoomHibernate:
        return this.#rooms.leaveHeap(entry[1], "hibernated");
      case Tag.RoomDestroyed:
        return this.#rooms.leaveHeap(entry[1], "destroyed");
      case Tag.Scheduled:
        return this.#actors.scheduled(entry);
      case Tag.Shutdown:
        this.onShutdown?.();
        return;
      case Tag.RawText:
        return this.#actors.rawMessage(entry[1], entry[2]);
      case Tag.RawBinary:
        return this.#actors.rawMessage(entry[1], Buffer.from(entry[2], "base64"));
      case Tag.Log:
        if (entry[1] === "warn") this.#log.warn(entry[2]);
        else this.#log.error(entry[2]);
        return;
      case Tag.RoomMembers:
        return this.#rooms.membersAnswered(entry);
    }
  }

  /** Calls `onDestroy` of every room and actor still in the heap (server shutdown), then
   * commits what they changed. */
  async destroyAll(reason: DestroyReason & ("shutdown" | "evicted")): Promise<void> {
    const pending = [...this.#rooms.destroyAll(reason), ...this.#actors.destroyAll(reason)];
    await Promise.all(pending);
    this.#persistence.commit();
  }

  /** The in-heap actor of a user, if any (for `server.destroyActor`). */
  actorOf(endpoint: number, key: string): ActorRecord | undefined {
    return this.#actors.actorOf(endpoint, key);
  }
}
