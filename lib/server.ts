/**
 * `createServer`: one warren server — a native WebSocket server whose events are routed to
 * the connection definitions given here.
 *
 * A server object is kept referenced from `live` from `listen` until `close` resolves: the
 * native server must not be garbage-collected while it serves, even when the user drops it.
 */

import { defineActor } from "./definitions/actor";
import { isConnectionDefinition } from "./definitions/connection";
import { isRoomDefinition } from "./definitions/room";
import { WarrenError } from "./errors";
import { isWarrenLogger, serverLog } from "./log";
import { createNative, type NativeServer } from "./runtime/bridge";
import { Runtime } from "./runtime/events";
import { batchSends } from "./runtime/outgoing";
import type {
  ConnectionDefinition,
  ListenOptions,
  ListeningAddress,
  RoomContext,
  RoomDefinition,
  ServerOptions,
  ServerStats,
} from "./types";

/** The connection definitions served, the `actors` classes' included, checked. */
function connectionsOf(options: ServerOptions): ConnectionDefinition<any, any>[] {
  if (options.connections !== undefined && !Array.isArray(options.connections)) {
    throw new WarrenError("invalid_option", "createServer: connections must be an array of defineConnection(...) results");
  }
  if (options.actors !== undefined && (options.actors === null || typeof options.actors !== "object")) {
    throw new WarrenError("invalid_option", "createServer: actors must map actor kinds to Actor classes");
  }
  const connections = [
    ...(options.connections ?? []),
    ...Object.entries(options.actors ?? {}).map(([kind, actorClass]) => defineActor(kind, actorClass)),
  ];
  if (connections.length === 0) {
    throw new WarrenError("invalid_option", "createServer: connections (or actors) must list at least one defineConnection(...)");
  }
  for (const definition of connections) {
    if (!isConnectionDefinition(definition)) {
      throw new WarrenError("invalid_option", "createServer: connections may only hold defineConnection(...) results");
    }
  }
  requireUnique(connections, "connection definitions");
  const paths = new Set<string>();
  for (const { websocketPath } of connections) {
    if (paths.has(websocketPath)) {
      throw new WarrenError("invalid_option", `createServer: two connection definitions serve the path "${websocketPath}"`);
    }
    paths.add(websocketPath);
  }
  return connections;
}

/** The room handlers served, checked against the connections they bind and that name them. */
function roomsOf(options: ServerOptions, connections: ReadonlyArray<ConnectionDefinition<any, any>>): RoomDefinition[] {
  const rooms = options.rooms ?? [];
  if (!Array.isArray(rooms)) throw new WarrenError("invalid_option", "createServer: rooms must be an array");
  for (const room of rooms) {
    if (!isRoomDefinition(room)) {
      throw new WarrenError("invalid_option", "createServer: rooms may only hold createRoomHandler(...) results");
    }
  }
  requireUnique(rooms, "room handlers");
  for (const room of rooms) {
    if (room.connectionBinding === undefined) {
      // Unbound (Verani's optional binding): one definition at most may name it, since members
      // are keyed by user id and two definitions' users would share ids.
      const naming = connections.filter((d) => Object.values(d.rooms ?? {}).includes(room.name));
      if (naming.length > 1) {
        throw new WarrenError(
          "invalid_option",
          `createServer: room handler "${room.name}" is named by ${naming.map((d) => d.name).join(" and ")}; set its connectionBinding`,
        );
      }
    } else if (!connections.some((definition) => definition.name === room.connectionBinding)) {
      throw new WarrenError(
        "invalid_option",
        `createServer: room handler "${room.name}" binds connection "${room.connectionBinding}", which is not in connections`,
      );
    }
  }
  for (const definition of connections) {
    for (const [roomName, handlerName] of Object.entries(definition.rooms ?? {})) {
      const handler = rooms.find((r) => r.name === handlerName);
      if (handler === undefined) {
        throw new WarrenError(
          "invalid_option",
          `createServer: ${definition.name}.rooms.${roomName} names room handler "${handlerName}", which is not in rooms`,
        );
      }
      if (handler.connectionBinding !== undefined && handler.connectionBinding !== definition.name) {
        throw new WarrenError(
          "invalid_option",
          `createServer: room handler "${handlerName}" binds "${handler.connectionBinding}", not ${definition.name}`,
        );
      }
    }
  }
  return rooms;
}

/** Throws when two of `definitions` share a name (rooms and actors address them by it). */
function requireUnique(definitions: ReadonlyArray<{ readonly name: string }>, what: string): void {
  const names = new Set<string>();
  for (const { name } of definitions) {
    if (names.has(name)) throw new WarrenError("invalid_option", `createServer: two ${what} are named "${name}"`);
    names.add(name);
  }
}

/** Checks the options that are single values (the integers are checked as they are read). */
/**
 * Option types the native binding cannot convert. Their values (the allowed words, the empty
 * storage path, the limits' minimums) are checked once, by the native core, which throws
 * `invalid_option` naming the option.
 */
function checkScalars(options: ServerOptions): void {
  for (const name of ["backpressure", "storage", "durability", "static"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "string") {
      throw new WarrenError("invalid_option", `createServer: ${name} must be a string`);
    }
  }
}

/** Servers between `listen` and the end of `close`: kept reachable so they cannot be collected. */
const live = new Set<WarrenServer>();

function positiveInteger(options: ServerOptions, name: keyof ServerOptions, max = 0xffff_ffff): number | undefined {
  const value = options[name];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new WarrenError("invalid_option", `createServer: ${name} must be an integer between 0 and ${max}`);
  }
  return value;
}

function clusterOf(options: ServerOptions): { redis: string; nodeId?: string } | undefined {
  const cluster = options.cluster;
  if (cluster === undefined) return undefined;
  if (cluster === null || typeof cluster !== "object" || typeof cluster.redis !== "string") {
    throw new WarrenError("invalid_option", 'createServer: cluster must be { redis: "redis://host:port", nodeId?: string }');
  }
  if (cluster.nodeId !== undefined && typeof cluster.nodeId !== "string") {
    throw new WarrenError("invalid_option", "createServer: cluster.nodeId must be a string");
  }
  return { redis: cluster.redis, nodeId: cluster.nodeId };
}

export class WarrenServer {
  readonly #native: NativeServer;
  readonly #runtime: Runtime;
  readonly #definitions: ReadonlyArray<ConnectionDefinition<any, any>>;
  #address: ListeningAddress | null = null;
  #closing: Promise<void> | null = null;
  #referenced = true;

  constructor(options: ServerOptions) {
    if (options === null || typeof options !== "object") {
      throw new WarrenError("invalid_option", "createServer needs an options object");
    }
    const connections = connectionsOf(options);
    const rooms = roomsOf(options, connections);
    checkScalars(options);
    if (options.logger !== undefined && !isWarrenLogger(options.logger)) {
      throw new WarrenError("invalid_option", "createServer: logger must be pino-compatible: trace, debug, info, warn, error, fatal and child methods");
    }
    for (const name of ["metrics", "inspector"] as const) {
      if (options[name] !== undefined && typeof options[name] !== "boolean") {
        throw new WarrenError("invalid_option", `createServer: ${name} must be a boolean`);
      }
    }
    const logs = serverLog(options.logger);
    this.#definitions = [...connections];
    let runtime: Runtime | undefined;
    this.#native = batchSends(createNative(
      {
        endpoints: this.#definitions.map((d) => ({
          name: d.name,
          path: d.websocketPath,
          authenticates: d.extractMeta !== undefined || d.onBeforeConnect !== undefined || d.keyFromPath === true,
          prefix: d.keyFromPath === true,
        })),
        maxPayloadBytes: positiveInteger(options, "maxPayloadBytes"),
        maxBackpressure: positiveInteger(options, "maxBackpressure"),
        backpressure: options.backpressure,
        handshakeTimeoutMs: positiveInteger(options, "handshakeTimeoutMs"),
        closeTimeoutMs: positiveInteger(options, "closeTimeoutMs"),
        hibernateAfterMs: positiveInteger(options, "hibernateAfterMs"),
        resumeWindowMs: positiveInteger(options, "resumeWindowMs"),
        resumeBufferBytes: positiveInteger(options, "resumeBufferBytes"),
        maxSessions: positiveInteger(options, "maxSessions"),
        maxPendingHandshakes: positiveInteger(options, "maxPendingHandshakes"),
        staticDir: options.static,
        roomHandlers: rooms.map((r) => r.name),
        storage: options.storage ?? "./.warren",
        durability: options.durability,
        callTimeoutMs: positiveInteger(options, "callTimeoutMs"),
        adminToken: options.adminToken,
        cluster: clusterOf(options),
        metrics: options.metrics,
        inspector: options.inspector,
      },
      () => runtime?.wake(),
    ), logs("outgoing"));
    runtime = new Runtime(this.#native, this.#definitions, rooms, { exposeErrors: options.exposeErrors, logs });
    this.#runtime = runtime;
    // Nothing is served before listen(): do not keep the process alive until then.
    this.#native.setRef(false);
  }

  /** The address once listening, else null. */
  get address(): ListeningAddress | null {
    return this.#address;
  }

  /**
   * Starts accepting connections.
   * @example const { port, url } = await server.listen({ port: 0, host: "127.0.0.1" });
   */
  async listen(options: ListenOptions = {}): Promise<ListeningAddress> {
    if (this.#closing) throw new WarrenError("server_closed", "listen: the server is closed");
    if (this.#address) throw new WarrenError("already_listening", "listen: the server is already listening");
    const port = options.port ?? 0;
    const host = options.host ?? "127.0.0.1";
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new WarrenError("invalid_option", `listen: port must be an integer between 0 and 65535, got ${port}`);
    }
    const bound = this.#native.listen(host, port);
    live.add(this);
    if (this.#referenced) this.#native.setRef(true);
    const urlHost = bound.host === "0.0.0.0" || bound.host === "::" ? "localhost" : bound.host.includes(":") ? `[${bound.host}]` : bound.host;
    this.#address = {
      port: bound.port,
      host: bound.host,
      url: `ws://${urlHost}:${bound.port}${this.#definitions[0]!.websocketPath}`,
    };
    return this.#address;
  }

  /**
   * Stops accepting, closes every socket with 1001, runs `onDisconnect` for each session and
   * `onDestroy` (reason "shutdown") for each actor, then releases everything; the process can
   * then exit on its own. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    if (this.#address !== null) {
      const finished = new Promise<void>((resolve) => {
        this.#runtime.onShutdown = resolve;
      });
      this.#native.setRef(true);
      this.#native.shutdown();
      await finished;
      await this.#runtime.destroyAll("shutdown");
    }
    this.#native.shutdown();
    live.delete(this);
    this.#native.release();
  }

  /** Lets the process exit while the server is listening (like `net.Server#unref`). */
  unref(): this {
    this.#referenced = false;
    if (this.#address && !this.#closing) this.#native.setRef(false);
    return this;
  }

  /** Undoes `unref`. */
  ref(): this {
    this.#referenced = true;
    if (this.#address && !this.#closing) this.#native.setRef(true);
    return this;
  }

  /**
   * A room by its full name, for code outside handlers.
   * @example server.room("chat").emit("notice", { text: "maintenance at noon" });
   */
  room(name: string): RoomContext {
    return this.#runtime.room(name);
  }

  /**
   * Hibernates the actor of a user now, as if it had been idle for `hibernateAfterMs`: it
   * leaves the JS heap while its sockets stay open. Returns false when it is not awake with a
   * session. Meant for tests and tools.
   * @param kind the connection definition's name
   */
  hibernate(kind: string, userId: string): boolean {
    return this.#native.hibernate(this.#endpointOf(kind), userId);
  }

  /**
   * Destroys the actor of a user, in memory or only in storage: it leaves its rooms, its
   * sessions close with 1000 "Actor destroyed", `onDestroy` runs (reason "destroyed") and its
   * state is wiped. Returns whether the actor existed.
   * @param kind the connection definition's name
   */
  destroyActor(kind: string, userId: string): boolean {
    const actor = this.#runtime.actorOf(this.#endpointOf(kind), userId);
    if (actor !== undefined) actor.destroyed = true;
    return this.#native.destroyActorByKey(this.#endpointOf(kind), userId);
  }

  #endpointOf(kind: string): number {
    const index = this.#definitions.findIndex((d) => d.name === kind);
    if (index < 0) {
      throw new WarrenError(
        "unknown_kind",
        `no connection definition named "${kind}"; defined: ${this.#definitions.map((d) => d.name).join(", ")}`,
      );
    }
    return index;
  }

  /** Counts of open sessions, actors and rooms in memory, and TCP connections. */
  stats(): ServerStats {
    return this.#native.stats();
  }

  /**
   * The server's metrics in the Prometheus text format: what `GET /metrics` serves with
   * `metrics: true`, available whatever the option (for a route of your own).
   * @example res.setHeader("Content-Type", "text/plain; version=0.0.4"); res.end(server.metrics());
   */
  metrics(): string {
    return this.#native.metrics();
  }
}

/**
 * Creates a server for the given connection definitions.
 * @example
 * const server = createServer({ connections: [UserConnection] });
 * const { url } = await server.listen({ port: 8787 });
 */
export function createServer(options: ServerOptions): WarrenServer {
  return new WarrenServer(options);
}
