/**
 * The options of `createServer` and `listen`, what `listen` resolves to, and `stats()`: the
 * server's side of the public types (`types.ts` re-exports them). Types only.
 */

import type { ActorClass } from "./definitions/actor";
import type { WarrenLogger } from "./log";
import type { ConnectionDefinition, RawConnectionDefinition, RoomDefinition } from "./types";

export interface ServerOptions {
  /** Connection definitions, each on its own `websocketPath`. */
  connections?: ReadonlyArray<ConnectionDefinition<any, any> | RawConnectionDefinition<any, any>>;
  /**
   * `Actor` classes by kind, each served at `/actors/<kind>/<key>` (one actor per key); they
   * join `connections` under the name `kind`.
   * @example createServer({ actors: { counter: Counter } })
   */
  actors?: Readonly<Record<string, ActorClass>>;
  /** Room handlers (`createRoomHandler`) that the connections' `rooms` maps name. */
  rooms?: ReadonlyArray<RoomDefinition>;
  /** Largest inbound message; past it the socket is closed with 1009. @default 1048576 */
  maxPayloadBytes?: number;
  /**
   * Frames one inbound message may be split into (pings between them do not count); past it
   * the socket is closed with 1009 "too many fragments". @default 4096
   */
  maxFragments?: number;
  /** Bytes of frames queued for one session before it is a slow consumer. @default 1048576 */
  maxBackpressure?: number;
  /** Slow consumers are closed with 1008 (`"close"`) or lose frames (`"drop"`). @default "close" */
  backpressure?: "close" | "drop";
  /** Time from TCP accept to the upgrade, `extractMeta` included. @default 10000 */
  handshakeTimeoutMs?: number;
  /** Time a closing socket gets to complete the close handshake. @default 5000 */
  closeTimeoutMs?: number;
  /** Idle time after which an actor without sessions leaves memory. @default 30000 */
  hibernateAfterMs?: number;
  /**
   * How long a session whose socket dropped waits for its client to resume it (the warren client
   * does, with its token and the number of the last frame it got). Within the window the client
   * gets every frame it missed, in order, and the server runs neither `onDisconnect` nor
   * `onConnect` for the blip; after it, `onDisconnect` runs (code 1006). `0` turns resume off.
   * @default 120000
   */
  resumeWindowMs?: number;
  /** Bytes of sent frames a resumable session keeps until its client acknowledges them. @default 1048576 */
  resumeBufferBytes?: number;
  /** Sessions, open or waiting for a resume; more upgrades are answered 503. @default 100000 */
  maxSessions?: number;
  /**
   * Connections whose handshake (request head, `extractMeta`, 101) is in progress; past it the
   * server stops accepting until one finishes (new connections wait in the kernel's backlog).
   * @default 1024
   */
  maxPendingHandshakes?: number;
  /**
   * Where state is kept: a directory (created if missing; one process owns it at a time), or
   * `":memory:"` for a temporary store that is gone after `close()` (tests).
   * @default "./.warren"
   */
  storage?: string;
  /**
   * `"strict"`: frames sent after a handler changed persisted state leave only once that state
   * is on disk (a client that was told something can rely on it surviving a crash).
   * `"relaxed"`: frames leave at once; state is flushed in the background.
   * @default "strict"
   */
  durability?: "strict" | "relaxed";
  /** Time a call may take before the caller gets a `timeout` error. @default 60000 */
  callTimeoutMs?: number;
  /**
   * Send the messages of unexpected errors thrown by call handlers to clients (as
   * `internal_error`); off, clients only see "internal error". `UserError`s always reach them.
   * @default false
   */
  exposeErrors?: boolean;
  /**
   * Enables the admin HTTP API with this bearer token: `DELETE /actors/<kind>/<userId>`
   * destroys an actor (204; 404 when there is none; 401 without the token).
   */
  adminToken?: string;
  /**
   * A directory served over plain GET on the same port, for paths that are not socket paths
   * (`/` serves `index.html`). Paths leaving the directory are refused with 404.
   */
  static?: string;
  /**
   * Run as one node of several processes sharing one Redis 7: room messages and messages to a
   * user reach the sessions on every node. See the README's "Running several processes".
   */
  cluster?: ClusterOptions;
  /**
   * Serve `wss://` on warren's own listener (`listen`) with this certificate (rustls; TLS 1.2
   * and 1.3). A bad certificate or key throws `invalid_tls` here. `server.setTls` replaces it
   * without a restart. Not used by `attach`, whose server does its own TLS (or has a proxy).
   */
  tls?: TlsOptions;
  /**
   * Serves `GET /metrics` in the Prometheus text format (with `adminToken`, only to
   * `Authorization: Bearer <adminToken>`). `server.metrics()` returns the same text either way.
   * @default false
   */
  metrics?: boolean;
  /**
   * Serves the inspector at `/_warren/inspector#token=<adminToken>`: live actors, sessions,
   * rooms, an actor's state and recent events, destroy and hibernate. Requires `adminToken`.
   * @default false
   */
  inspector?: boolean;
  /**
   * Where warren logs: a pino-compatible logger (`trace`…`fatal` taking `(obj, msg)` or
   * `(msg)`, and `child`). Each module logs through `logger.child({ module: "warren:<module>" })`;
   * errors of user code carry `definition`, `key`, `event` and `err`. By default debug lines go
   * to stderr when `DEBUG=warren:*` enables them, warnings and errors always.
   */
  logger?: WarrenLogger;
}

/** `createServer({ tls })`: PEM text (strings or Buffers). */
export interface TlsOptions {
  /** The certificate, optionally followed by its chain. */
  cert: string | Buffer;
  /** Its private key (PKCS #8, PKCS #1 or SEC1), unencrypted. */
  key: string | Buffer;
  /** Further chain (intermediate) certificates, sent after `cert`'s. */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
}

/** `createServer({ cluster })`. */
export interface ClusterOptions {
  /** `redis://host:port`. Under `durability: "strict"` Redis must run with `appendonly yes` and `appendfsync always`. */
  redis: string;
  /** This process's name among the nodes (letters, digits, `.`, `_`, `-`). @default a random id */
  nodeId?: string;
  /**
   * How long this node's lease in Redis lasts without renewal (renewed every third of it): a node
   * that could not renew it for this long stops serving, and another node may take its users
   * over after it. Between 300 and 600000. @default 10000
   */
  leaseMs?: number;
}

export interface ListenOptions {
  /** @default 0 (any free port) */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
}

export interface ListeningAddress {
  port: number;
  host: string;
  /** WebSocket URL of the first connection definition, e.g. `ws://127.0.0.1:8787/ws`. */
  url: string;
}

export interface ServerStats {
  sessions: number;
  actors: number;
  /** Actors out of the JS heap whose sockets stay open. */
  hibernated: number;
  rooms: number;
  /** Frames waiting for a state flush (strict durability). */
  heldFrames: number;
  /** Bytes of those frames. */
  heldBytes: number;
  /** Commits and flushes the store refused (a full or failing disk); see "Durable state". */
  storageFailures: number;
  connections: number;
  /** Sessions whose socket dropped, waiting for their client to resume them (`resumeWindowMs`). */
  detached: number;
}
