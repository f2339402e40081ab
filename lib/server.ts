/**
 * `createServer`: one warren server — a native WebSocket server whose events are routed to
 * the connection definitions given here.
 *
 * A server object is kept referenced from `live` from `listen` until `close` resolves: the
 * native server must not be garbage-collected while it serves, even when the user drops it.
 */

import type { IncomingMessage, Server as HttpServer } from "node:http";
import type { Duplex } from "node:stream";
import { Server as TlsServer } from "node:tls";
import { defineActor } from "./definitions/actor";
import { isConnectionDefinition } from "./definitions/connection";
import { isRoomDefinition } from "./definitions/room";
import { WarrenError } from "./errors";
import { isWarrenLogger, serverLog, type Logger } from "./log";
import { descriptorOf, refuseOnSocket, requestHead } from "./runtime/attach";
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
  TlsOptions,
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
    ...((options.connections ?? []) as ReadonlyArray<ConnectionDefinition<any, any>>),
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

/** PEM text as the native core takes it: bytes. */
function pem(value: unknown, name: string): Buffer {
  if (typeof value === "string") return Buffer.from(value);
  if (Buffer.isBuffer(value)) return value;
  throw new WarrenError("invalid_option", `tls.${name} must be a PEM string or Buffer`);
}

/** `tls` checked and converted; the native core checks the certificate and key themselves. */
function tlsOf(tls: TlsOptions | undefined, what: string): { cert: Buffer; key: Buffer; ca?: Buffer } | undefined {
  if (tls === undefined) return undefined;
  if (tls === null || typeof tls !== "object") {
    throw new WarrenError("invalid_option", `${what}: tls must be { cert, key, ca? }`);
  }
  const ca = tls.ca === undefined ? undefined : Array.isArray(tls.ca) ? tls.ca : [tls.ca];
  return {
    cert: pem(tls.cert, "cert"),
    key: pem(tls.key, "key"),
    ca: ca === undefined ? undefined : Buffer.concat(ca.flatMap((c) => [pem(c, "ca"), Buffer.from("\n")])),
  };
}

/** An HTTP server warren answers upgrades on, and its listener. */
interface Attachment {
  readonly server: HttpServer;
  readonly onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
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

function clusterOf(options: ServerOptions): { redis: string; nodeId?: string; leaseMs?: number } | undefined {
  const cluster = options.cluster;
  if (cluster === undefined) return undefined;
  if (cluster === null || typeof cluster !== "object" || typeof cluster.redis !== "string") {
    throw new WarrenError("invalid_option", 'createServer: cluster must be { redis: "redis://host:port", nodeId?: string }');
  }
  if (cluster.nodeId !== undefined && typeof cluster.nodeId !== "string") {
    throw new WarrenError("invalid_option", "createServer: cluster.nodeId must be a string");
  }
  const leaseMs = cluster.leaseMs;
  if (leaseMs !== undefined && (typeof leaseMs !== "number" || !Number.isInteger(leaseMs) || leaseMs < 0 || leaseMs > 0xffff_ffff)) {
    throw new WarrenError("invalid_option", "createServer: cluster.leaseMs must be an integer number of milliseconds");
  }
  return { redis: cluster.redis, nodeId: cluster.nodeId, leaseMs };
}

export class WarrenServer {
  readonly #native: NativeServer;
  readonly #runtime: Runtime;
  readonly #definitions: ReadonlyArray<ConnectionDefinition<any, any>>;
  #address: ListeningAddress | null = null;
  /** HTTP servers whose upgrades warren answers (`attach`). */
  readonly #attachments: Attachment[] = [];
  /** Set once a socket may be served: listening, attached, or a socket handed over. */
  #serving = false;
  #tls: boolean;
  /** Where hand-over failures are reported (the server's logger, module `warren:attach`). */
  readonly #attachLog: Logger;
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
    this.#attachLog = logs("attach");
    this.#definitions = [...connections];
    let runtime: Runtime | undefined;
    this.#native = batchSends(createNative(
      {
        endpoints: this.#definitions.map((d) => ({
          name: d.name,
          path: d.websocketPath,
          authenticates: d.extractMeta !== undefined || d.onBeforeConnect !== undefined || d.keyFromPath === true,
          prefix: d.keyFromPath === true,
          raw: d.messages === "raw",
        })),
        maxPayloadBytes: positiveInteger(options, "maxPayloadBytes"),
        maxFragments: positiveInteger(options, "maxFragments"),
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
        tls: tlsOf(options.tls, "createServer"),
        metrics: options.metrics,
        inspector: options.inspector,
      },
      () => runtime?.wake(),
    ), logs("outgoing"));
    this.#tls = options.tls !== undefined;
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
    this.#startServing();
    const urlHost = bound.host === "0.0.0.0" || bound.host === "::" ? "localhost" : bound.host.includes(":") ? `[${bound.host}]` : bound.host;
    this.#address = {
      port: bound.port,
      host: bound.host,
      url: `${this.#tls ? "wss" : "ws"}://${urlHost}:${bound.port}${this.#definitions[0]!.websocketPath}`,
    };
    return this.#address;
  }

  /** From the first socket on, the server is kept alive (and keeps the process alive unless unref'd). */
  #startServing(): void {
    if (this.#serving) return;
    this.#serving = true;
    live.add(this);
    if (this.#referenced) this.#native.setRef(true);
  }

  /**
   * Answers the WebSocket upgrades of an HTTP server you run (Express, Fastify, Next.js, plain
   * `node:http`) for warren's socket paths; its other requests and other paths' upgrades stay
   * with it (when no other `upgrade` listener is registered, those get 404). Each accepted
   * socket is handed to the native core, which serves it like one of its own listener. `close()`
   * detaches from it and leaves it running. Unix only; an https server cannot be attached
   * (`socket_not_adoptable`): use `createServer({ tls })` or a TLS proxy in front.
   * @example server.attach(app.listen(3000));
   */
  attach(httpServer: HttpServer): this {
    if (this.#closing) throw new WarrenError("server_closed", "attach: the server is closed");
    if (httpServer instanceof TlsServer) {
      throw new WarrenError(
        "socket_not_adoptable",
        "attach: warren cannot take TLS sockets from an https server; attach to a plain http server behind your TLS proxy, or give createServer a tls option",
      );
    }
    if (this.#attachments.some((a) => a.server === httpServer)) {
      throw new WarrenError("already_attached", "attach: the server is already attached to this HTTP server");
    }
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      let taken: boolean;
      try {
        taken = this.handleUpgrade(req, socket, head);
      } catch (error) {
        this.#attachLog.error(`the upgrade for ${req.url} could not be handed over:`, error);
        refuseOnSocket(socket, 500, "Internal Server Error", "the socket could not be handed over");
        return;
      }
      // Alone on the server, nobody else will answer this upgrade.
      if (!taken && httpServer.listenerCount("upgrade") === 1) refuseOnSocket(socket, 404, "Not Found", "not found");
    };
    httpServer.on("upgrade", onUpgrade);
    this.#attachments.push({ server: httpServer, onUpgrade });
    this.#startServing();
    return this;
  }

  /**
   * Takes an upgrade request for one of warren's socket paths, for servers that route upgrades
   * themselves: returns true when warren took the socket (Node's handle is closed then, the
   * connection lives on in the native core), false when the path is not warren's or the server
   * is closed (the socket is untouched: answer or destroy it). Throws `socket_not_adoptable`,
   * leaving the socket untouched, when it has no file descriptor of its own (a TLS socket, or
   * not on Unix).
   * @example httpServer.on("upgrade", (req, socket, head) => { if (!server.handleUpgrade(req, socket, head)) socket.destroy(); });
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (this.#closing || !this.#native.serves(req.url ?? "/")) return false;
    const fd = descriptorOf(socket);
    this.#startServing();
    socket.pause();
    try {
      this.#native.adopt(fd, head.length === 0 ? requestHead(req) : Buffer.concat([requestHead(req), head]));
    } catch (error) {
      socket.resume();
      throw error;
    }
    // The core has its own descriptor now: closing Node's leaves the connection open.
    socket.destroy();
    return true;
  }

  /**
   * Serves a new certificate to `wss://` handshakes from now on, without a restart (open
   * sockets keep theirs). Throws `invalid_tls` (the certificate in use stays) for a bad one.
   */
  setTls(tls: TlsOptions): void {
    const converted = tlsOf(tls, "setTls");
    if (converted === undefined) throw new WarrenError("invalid_option", "setTls: tls must be { cert, key, ca? }");
    this.#native.setTls(converted);
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
    for (const { server, onUpgrade } of this.#attachments.splice(0)) server.off("upgrade", onUpgrade);
    if (this.#serving) {
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
    if (this.#serving && !this.#closing) this.#native.setRef(false);
    return this;
  }

  /** Undoes `unref`. */
  ref(): this {
    this.#referenced = true;
    if (this.#serving && !this.#closing) this.#native.setRef(true);
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
    if (actor !== undefined) {
      // The state is wiped next: load it first, so `onDestroy` still sees it.
      void actor.cell;
      actor.destroyed = true;
    }
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
