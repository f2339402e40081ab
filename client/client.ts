/**
 * `WarrenClient`: the connection state machine of `warren/client` — connect, queue while offline,
 * reconnect with backoff, resume the session, keep alive, correlate calls. Runs unchanged in
 * browsers (no Node imports); in Node 20, pass `ws`'s `WebSocket` class as `options.WebSocket`.
 * The pieces it drives are one file each (see `index.ts`, the package entry).
 *
 * Invariants of the state machine:
 * - At most one socket is current. Handlers of any other socket (an older attempt, one abandoned on
 *   a timeout) find `socket !== this.#socket` and return, so a stale socket can neither reconnect
 *   nor deliver events.
 * - A socket is detached (made stale) before anything about its end is reported, and every way a
 *   socket ends without the user asking goes through `#lost` once. A failed socket fires `error`
 *   then `close`; only `close` counts, so one failure is one attempt (Verani counted two).
 * - User callbacks run synchronously in the middle of the machine. `#generation` changes whenever
 *   the user redirects it (`disconnect`, `reconnect`, `close`, a new attempt); after calling out,
 *   code compares it and stops if a callback took over.
 */

import { reconnectDelay } from "./backoff";
import { PendingCalls } from "./calls";
import { Emitter } from "./emitter";
import { closedError, disconnectedError, WarrenClientError } from "./errors";
import { Heartbeat } from "./heartbeat";
import {
  buildUrl,
  resolveOptions,
  resumeUrl,
  type ResolvedOptions,
  type WarrenClientOptions,
  type WebSocketLike,
} from "./options";
import { decodeServerFrame, encodeCall, encodeEvent, encodePing, toWire } from "./protocol";
import { BoundedQueue, type QueuedFrame } from "./queue";
import type {
  CallArgs,
  CallNameOf,
  CallOptions,
  CallResultOf,
  ClientState,
  CloseInfo,
  ConnectedInfo,
  ConnectionSnapshot,
  EmitArgs,
  EmitName,
  ListenData,
  ListenName,
  ParamsFor,
  ReconnectingInfo,
  StateListener,
  UntypedCalls,
} from "./types";
import { ConnectionWaiters } from "./waiters";

/** Default of {@link CallOptions.timeout}. */
export const DEFAULT_CALL_TIMEOUT = 10000;

const OPEN = 1;
const CLOSING = 2;

/** The reason a server gives when the user's actor was destroyed: reconnecting would be pointless. */
const ACTOR_DESTROYED = "Actor destroyed";

type Timer = ReturnType<typeof setTimeout>;

/**
 * A WebSocket connection to a warren (or Verani) server that reconnects with backoff, queues while
 * offline, keeps itself alive with pings, and correlates calls with their replies.
 *
 * It connects as soon as it is constructed. Listeners can be added at any time.
 *
 * **One event namespace.** Server events and the client's own lifecycle events (`open`,
 * `connected`, `close`, `disconnected`, `reconnecting`, `error`) share `on()`; a server event with
 * one of those names reaches the same listeners, so servers should not use them.
 *
 * Lifecycle events, in order:
 * - `open` (no argument) after a socket opens and the offline queue was written, then `connected`
 *   ({@link ConnectedInfo}) once the server said whether it resumed the session (with `resume`
 *   off: right after `open`); on a resumed session the missed events come right after it;
 * - `error` ({@link WarrenClientError}) when the socket reports an error (`socket_error`), an
 *   attempt times out (`connect_timeout`) or the client gives up (`reconnect_failed`);
 * - `close` ({@link CloseInfo}) whenever a socket of this client ends, including attempts that never
 *   opened; `disconnected` (same argument) only when the socket had been open;
 * - `reconnecting` ({@link ReconnectingInfo}) when the next attempt is scheduled.
 *
 * Reconnects after every close it did not request, a server restart (1001) included, except a
 * server close with 1000 "Actor destroyed".
 *
 * @example
 * import { WarrenClient } from "warren/client";
 *
 * const client = new WarrenClient("wss://example.com/ws", { params: { token } });
 * client.on("chat.message", (msg) => render(msg.from, msg.text));
 * client.onStateChange((state) => setBadge(state));
 * client.emit("chat.message", { text: "hi" });        // queued until connected
 * const count = await client.call("count.get", {});  // the server handler's return value
 * client.close();
 *
 * **Typed** by a contract: `new WarrenClient<typeof chat>(url)`, or `<typeof UserConnection>` with
 * `import type` (nothing of the server loads), checks `on`, `emit`, `call` and `params`.
 */
export class WarrenClient<T = any> {
  readonly #url: string;
  readonly #options: ResolvedOptions;
  readonly #events = new Emitter();
  readonly #stateEvents = new Emitter();
  readonly #queue: BoundedQueue<QueuedFrame>;
  readonly #calls = new PendingCalls();
  readonly #heartbeat: Heartbeat;
  readonly #waiters = new ConnectionWaiters();
  #state: ClientState = "disconnected";
  /** The one socket whose events count; `null` between attempts and after a stop. */
  #socket: WebSocketLike | null = null;
  #connectTimer: Timer | null = null;
  #reconnectTimer: Timer | null = null;
  /** Failed attempts since the last open; reset by an open, `reconnect()` and `disconnect()`. */
  #attempts = 0;
  #connectionId = 0;
  #generation = 0;
  #closed = false;
  /** The server's token for the current session, to resume it after a drop; null: none yet. */
  #resumeToken: string | null = null;
  /** Number of the last frame received in the current session (frames at or below it are repeats). */
  #lastSeq = 0;
  /** True from `open` until the server's `session` frame (or the first other frame) arrives. */
  #awaitingSession = false;

  /**
   * Creates the client and starts connecting.
   * @param url `ws://`, `wss://` (or `http(s)://`, mapped to ws) URL of the server's socket path,
   *   e.g. `ws://127.0.0.1:8787/ws`; relative URLs resolve against the page in browsers.
   * @throws Error for an invalid URL or option, naming it, and for `params` over 4 KiB encoded.
   */
  constructor(url: string, options: WarrenClientOptions & { params?: ParamsFor<T> } = {}) {
    this.#options = resolveOptions(options);
    this.#url = buildUrl(url, options.params, this.#options.encoding);
    this.#queue = new BoundedQueue(this.#options.maxQueueSize);
    this.#heartbeat = new Heartbeat(
      this.#options.pingInterval,
      this.#options.pongTimeout,
      () => this.#trySend(encodePing(this.#options.resume ? this.#lastSeq : 0)),
      () => this.#lost({ code: 4000, reason: "pong timeout", wasClean: false }),
    );
    this.#connect();
  }

  /** The URL each attempt connects to, `params` included. */
  get url(): string {
    return this.#url;
  }

  /** Whether an attempt is in progress (state `connecting`). */
  get isConnecting(): boolean {
    return this.#state === "connecting";
  }

  /** The current {@link ClientState}. */
  getState(): ClientState {
    return this.#state;
  }

  /** Whether the state is `connected` and the socket is open. */
  isConnected(): boolean {
    return this.#state === "connected" && this.#socket?.readyState === OPEN;
  }

  /** A snapshot of the connection, for debugging and status displays. */
  getConnectionState(): ConnectionSnapshot {
    return {
      state: this.#state,
      isConnected: this.isConnected(),
      isConnecting: this.isConnecting,
      reconnectAttempts: this.#attempts,
      connectionId: this.#connectionId,
    };
  }

  /**
   * Listens to a server event or a lifecycle event (see the class doc). A function is registered
   * once per event; registering it again keeps one copy. Exceptions are caught and reported with
   * `console.error`; the other listeners still run.
   * @returns A function that removes the listener.
   */
  on<E extends ListenName<T>>(event: E, listener: (data: ListenData<T, E>) => void): () => void {
    return this.#events.on(event, listener);
  }

  /** Like {@link on}, but the listener is removed after its first call. `off` takes the same function. */
  once<E extends ListenName<T>>(event: E, listener: (data: ListenData<T, E>) => void): () => void {
    return this.#events.on(event, listener, true);
  }

  /** Removes a listener added with {@link on} or {@link once}. */
  off<E extends ListenName<T>>(event: E, listener: (data: ListenData<T, E>) => void): void {
    this.#events.off(event, listener);
  }

  /** Same as `on("open", listener)`: works whenever it is registered. */
  onOpen(listener: () => void): () => void {
    return this.#events.on("open", listener);
  }

  /** Same as `on("close", listener)`. */
  onClose(listener: (info: CloseInfo) => void): () => void {
    return this.#events.on("close", listener);
  }

  /** Same as `on("error", listener)`. */
  onError(listener: (error: WarrenClientError) => void): () => void {
    return this.#events.on("error", listener);
  }

  /**
   * Calls `listener(state, previous)` on every real change of state (never twice for one state).
   * @returns A function that removes the listener.
   */
  onStateChange(listener: StateListener): () => void {
    return this.#stateEvents.on("change", listener);
  }

  /**
   * Sends `{"type": event, "data": data}`. When not connected the frame is queued (at most
   * `maxQueueSize`, oldest dropped) and written in order on the next open, before `open` fires.
   * Does nothing after {@link close}.
   * @throws TypeError if `event` is `ping` or `call` (protocol frame types) or `data` is not JSON.
   */
  emit<E extends EmitName<T>>(event: E, ...data: EmitArgs<T, E>): void;
  emit(event: string, ...[data]: unknown[]): void {
    if (this.#closed) return;
    const text = encodeEvent(event, data);
    if (!this.#trySend(text)) this.#enqueue({ text });
  }

  /**
   * Sends a call and resolves with the server handler's return value. Queued like {@link emit}
   * while offline; the timeout runs from this call, queued time included.
   *
   * Rejects with a {@link WarrenClientError} whose `code` (and `meta`) is the server's for an error
   * reply (e.g. `internal_error`), or `timeout`, `disconnected` (the socket closed before the reply
   * and the session was not resumed, or `disconnect()`), `queue_full` (dropped from the offline
   * queue) or `closed`. When the session resumes, a call sent before the drop gets its reply: the
   * server replays it, so the call is never answered twice nor silently lost.
   *
   * @example
   * const sum = await client.call<number>("add", { a: 1, b: 2 }, { timeout: 2000 });
   * const count = await typed.call("count.get"); // typed client: name, argument and result checked
   */
  call<E extends CallNameOf<T>>(event: E, ...args: CallArgs<T, E>): Promise<CallResultOf<T, E>>;
  call<R = unknown>(this: UntypedCalls<T>, event: string, data?: unknown, options?: CallOptions): Promise<R>;
  call(event: string, ...[data, options = {}]: any[]): Promise<any> {
    if (this.#closed) return Promise.reject(closedError());
    const timeout = options.timeout ?? DEFAULT_CALL_TIMEOUT;
    if (typeof timeout !== "number" || !(timeout >= 0)) {
      const message = `WarrenClient: call timeout must be a number ≥ 0, got ${String(timeout)}`;
      return Promise.reject(new TypeError(message));
    }
    const id = this.#calls.allocateId();
    let text: string;
    try {
      text = encodeCall(id, event, data);
    } catch (err) {
      return Promise.reject(err);
    }
    const reply = this.#calls.add(id, event, timeout, (timedOut) => {
      this.#queue.removeWhere((item) => item.callId === timedOut);
    });
    if (this.#trySend(text)) this.#calls.markSent(id, this.#connectionId);
    else this.#enqueue({ text, callId: id });
    return reply;
  }

  /**
   * Resolves once connected: at once if already. Rejects with code `disconnected` or `closed` when
   * the client is stopped, `reconnect_failed` when attempts run out, and `timeout` after `timeout`
   * milliseconds if given.
   * @param timeout Milliseconds to wait; omitted or `0` waits as long as the client keeps trying.
   */
  waitForConnection(timeout?: number): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.isConnected()) return Promise.resolve();
    if (this.#state === "disconnected" || this.#state === "error") {
      return Promise.reject(this.#stoppedError());
    }
    return this.#waiters.wait(timeout);
  }

  /**
   * Drops the current socket (close 1000) and connects again now, with the attempt count reset,
   * as a new session (`connected` says `resumed: false`).
   * Works from any state, including `disconnected` and `error`. Calls already sent on the old
   * socket reject with `disconnected`; queued frames are kept and written on open.
   * @throws WarrenClientError with code `closed` after {@link close}.
   */
  reconnect(): void {
    if (this.#closed) throw closedError();
    const { generation, wasOpen, socket } = this.#halt("reconnect");
    this.#calls.rejectSent(disconnectedError);
    if (socket) this.#reportClosed({ code: 1000, reason: "reconnect", wasClean: true }, wasOpen);
    if (generation !== this.#generation) return;
    this.#connect();
  }

  /**
   * Closes the socket with 1000 (the server ends the session: no resume) and stays
   * `disconnected`: no automatic reconnection until {@link reconnect}. Every pending call rejects with code `disconnected` (queued calls are
   * removed; queued events are kept for a later `reconnect()`). Idempotent.
   */
  disconnect(): void {
    if (this.#closed) return;
    this.#stop((event) => {
      const message = `disconnect() was called before the reply to "${event}"`;
      return new WarrenClientError("disconnected", message);
    });
  }

  /**
   * {@link disconnect}, then clears listeners, the queue and timers. The client cannot be used
   * again: `emit` does nothing, `call` and `waitForConnection` reject with `closed`, `reconnect`
   * throws. `close` and `disconnected` listeners still hear about the final close. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop(closedError);
    this.#queue.clear();
    this.#events.clear();
    this.#stateEvents.clear();
  }

  // ---- the state machine ----

  /** Opens a new socket and makes it current. */
  #connect(): void {
    this.#generation++;
    this.#connectionId++;
    let socket: WebSocketLike;
    const url = this.#options.resume ? resumeUrl(this.#url, this.#resumeToken, this.#lastSeq) : this.#url;
    try {
      socket = new this.#options.WebSocket(url);
    } catch (cause) {
      // Constructors throw synchronously for some failures (a port the browser blocks, CSP): that
      // is one failed attempt like any other, not an exception out of a timer.
      this.#setState("connecting");
      const error = new WarrenClientError("socket_error", "WebSocket constructor threw", { cause });
      this.#lost({ code: 1006, reason: error.message, wasClean: false }, error);
      return;
    }
    this.#socket = socket;
    if (this.#options.encoding === "msgpack") socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      if (socket === this.#socket) this.#opened(socket);
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (socket === this.#socket) this.#received(event.data);
    };
    // Kept on stale sockets too: with `ws`, an `error` without a listener is thrown by EventEmitter.
    socket.onerror = (event: unknown) => {
      if (socket === this.#socket) {
        const error = new WarrenClientError("socket_error", "WebSocket error", { cause: event });
        this.#events.emit("error", error);
      }
    };
    socket.onclose = (event: { code: number; reason: string; wasClean: boolean }) => {
      if (socket === this.#socket) {
        const { code, reason, wasClean } = event;
        this.#lost({ code, reason: String(reason ?? ""), wasClean: Boolean(wasClean) });
      }
    };
    if (this.#options.connectionTimeout > 0) {
      this.#connectTimer = setTimeout(() => {
        this.#connectTimer = null;
        if (socket !== this.#socket) return;
        const message = `connection attempt took longer than ${this.#options.connectionTimeout} ms`;
        const error = new WarrenClientError("connect_timeout", message);
        this.#lost({ code: 1006, reason: "connect timeout", wasClean: false }, error);
      }, this.#options.connectionTimeout);
    }
    // Last: a state listener may redirect the client, and the socket must already be current then.
    this.#setState("connecting");
  }

  /** The current socket opened: write the queue, then tell the world. */
  #opened(socket: WebSocketLike): void {
    this.#clearConnectTimer();
    this.#attempts = 0;
    // Before any listener runs, so that frames sent while offline precede anything sent on `open`.
    for (const item of this.#queue.drain()) {
      try {
        socket.send(toWire(item.text, this.#options.encoding === "msgpack"));
        if (item.callId !== undefined) this.#calls.markSent(item.callId, this.#connectionId);
      } catch (cause) {
        if (item.callId !== undefined) {
          this.#calls.reject(item.callId, new WarrenClientError("socket_error", "send failed", { cause }));
        }
      }
    }
    this.#heartbeat.start();
    this.#awaitingSession = this.#options.resume;
    const generation = this.#generation;
    this.#setState("connected");
    if (generation !== this.#generation) return;
    this.#events.emit("open");
    if (generation !== this.#generation || this.#options.resume) return;
    this.#events.emit("connected", { resumed: false } satisfies ConnectedInfo);
  }

  /** The server said whether this socket continues the session: a new one starts numbering afresh. */
  #sessionStarted(resumed: boolean, token: string | null): void {
    this.#awaitingSession = false;
    this.#resumeToken = token;
    if (!resumed) {
      this.#lastSeq = 0;
      // Calls written to earlier sockets waited for a resume that did not happen.
      this.#calls.rejectSent(disconnectedError, this.#connectionId);
    }
    this.#events.emit("connected", { resumed } satisfies ConnectedInfo);
  }

  /** The next connection starts a new session. */
  #forgetSession(): void {
    this.#resumeToken = null;
    this.#lastSeq = 0;
  }

  #received(raw: unknown): void {
    const inbound = decodeServerFrame(raw);
    if (inbound === null) return;
    if (inbound.kind === "session") {
      this.#sessionStarted(inbound.resumed, inbound.token);
      return;
    }
    const socket = this.#socket;
    // A server that does not speak resume sends no session frame: the first other frame says so.
    if (this.#awaitingSession) this.#sessionStarted(false, null);
    if (socket !== this.#socket) return;
    if (inbound.kind !== "pong" && inbound.seq !== undefined) {
      if (inbound.seq <= this.#lastSeq) return;
      this.#lastSeq = inbound.seq;
    }
    switch (inbound.kind) {
      case "pong":
        this.#heartbeat.pong();
        break;
      case "reply":
        this.#calls.resolveReply(inbound.frame);
        break;
      case "event":
        this.#events.emit(inbound.event, inbound.data);
        break;
    }
  }

  /**
   * The current socket ended without the user asking (closed, timed out, failed): reject what it
   * carried, report it, then reconnect or stop. Runs once per socket: the socket is detached first.
   */
  #lost(info: CloseInfo, error?: WarrenClientError): void {
    const wasOpen = this.#state === "connected";
    // Closes with info's code only if the socket is still connecting or open (the timeouts).
    this.#detach(info.code, info.reason);
    // With a session to resume, calls already sent wait: the server replays their replies.
    if (!this.#options.resume || this.#resumeToken === null) this.#calls.rejectSent(disconnectedError);
    const generation = this.#generation;
    if (error) this.#events.emit("error", error);
    if (generation !== this.#generation) return;
    this.#reportClosed(info, wasOpen);
    if (generation !== this.#generation) return;
    this.#scheduleReconnect(info);
  }

  #scheduleReconnect(info: CloseInfo): void {
    const policy = this.#options.reconnection;
    if (!policy.enabled || (info.code === 1000 && info.reason === ACTOR_DESTROYED)) {
      this.#calls.rejectSent(disconnectedError);
      this.#setState("disconnected");
      return;
    }
    if (policy.maxAttempts > 0 && this.#attempts >= policy.maxAttempts) {
      this.#calls.rejectSent(disconnectedError);
      const generation = this.#generation;
      this.#setState("error");
      if (generation !== this.#generation) return;
      const message = `gave up after ${this.#attempts} failed reconnection attempts`;
      this.#events.emit("error", new WarrenClientError("reconnect_failed", message));
      return;
    }
    const attempt = ++this.#attempts;
    const delay = reconnectDelay(attempt, policy);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      this.#connect();
    }, delay);
    const generation = this.#generation;
    this.#setState("reconnecting");
    if (generation !== this.#generation) return;
    this.#events.emit("reconnecting", { attempt, delay } satisfies ReconnectingInfo);
  }

  /** The user stops the client: no socket, no timer, no pending call. */
  #stop(makeError: (event: string) => WarrenClientError): void {
    const { generation, wasOpen, socket } = this.#halt("client disconnect");
    this.#calls.rejectAll(makeError);
    this.#queue.removeWhere((item) => item.callId !== undefined);
    this.#setState("disconnected");
    if (generation !== this.#generation || !socket) return;
    this.#reportClosed({ code: 1000, reason: "client disconnect", wasClean: true }, wasOpen);
  }

  /**
   * The user redirects the machine (`reconnect`, `disconnect`, `close`): a new generation, no
   * pending reconnect, attempts reset, the current socket closed with 1000 and `reason`, and the
   * session forgotten (the server ends it: no resume).
   */
  #halt(reason: string): { generation: number; wasOpen: boolean; socket: WebSocketLike | null } {
    const generation = ++this.#generation;
    this.#cancelReconnect();
    this.#attempts = 0;
    const wasOpen = this.#state === "connected";
    const socket = this.#detach(1000, reason);
    this.#forgetSession();
    return { generation, wasOpen, socket };
  }

  /**
   * Makes the current socket stale and stops its timers. A socket still connecting or open is
   * closed: with no code while connecting (there is no handshake to carry one), else with `code`.
   */
  #detach(code: number, reason: string): WebSocketLike | null {
    const socket = this.#socket;
    this.#socket = null;
    this.#awaitingSession = false;
    this.#clearConnectTimer();
    this.#heartbeat.stop();
    if (socket !== null && socket.readyState < CLOSING) {
      try {
        if (socket.readyState === OPEN) socket.close(code, reason);
        else socket.close();
      } catch {
        // close() throws only for codes browsers forbid (e.g. 1006 from a peer's close); the socket
        // is detached either way, and a throw here would stop the teardown half-way.
      }
    }
    return socket;
  }

  #reportClosed(info: CloseInfo, wasOpen: boolean): void {
    const generation = this.#generation;
    this.#events.emit("close", info);
    if (wasOpen && generation === this.#generation) this.#events.emit("disconnected", info);
  }

  #setState(next: ClientState): void {
    const previous = this.#state;
    if (next === previous) return;
    this.#state = next;
    if (next === "connected") this.#waiters.settle(null);
    else if (next === "disconnected" || next === "error") this.#waiters.settle(this.#stoppedError());
    this.#stateEvents.emit("change", next, previous);
  }

  #stoppedError(): WarrenClientError {
    if (this.#closed) return closedError();
    if (this.#state === "error") {
      return new WarrenClientError("reconnect_failed", "the client gave up reconnecting; call reconnect()");
    }
    return new WarrenClientError("disconnected", "the client is disconnected; call reconnect()");
  }

  #trySend(text: string): boolean {
    const socket = this.#socket;
    if (this.#state !== "connected" || socket === null || socket.readyState !== OPEN) return false;
    try {
      socket.send(toWire(text, this.#options.encoding === "msgpack"));
      return true;
    } catch {
      return false;
    }
  }

  #enqueue(item: QueuedFrame): void {
    for (const dropped of this.#queue.push(item)) {
      if (dropped.callId !== undefined) {
        const message = `call dropped from the offline queue (maxQueueSize ${this.#options.maxQueueSize})`;
        this.#calls.reject(dropped.callId, new WarrenClientError("queue_full", message));
      }
    }
  }

  #cancelReconnect(): void {
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
  }

  #clearConnectTimer(): void {
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
  }
}
