// The browser/Node client (client/) against real sockets: a small `ws` fixture that plays the
// server side of the protocol (and misbehaves on request), and the warren server once it is built.
// Tests wait for events; every wait has a safety timeout so a broken test fails instead of hanging.

import assert from "node:assert/strict";
import { EventEmitter, once } from "node:events";
import net from "node:net";
import { describe, test, type TestContext } from "node:test";
import { WebSocket, WebSocketServer } from "ws";

import {
  DEFAULT_RECONNECTION,
  MAX_PARAMS_BYTES,
  WarrenClient,
  VeraniClient,
  WarrenClientError,
  type ClientState,
  type CloseInfo,
  type ReconnectingInfo,
  type WarrenClientOptions,
} from "../client/index";
import { reconnectDelay } from "../client/backoff";
import { createServer, defineConnection } from "../index.js";
import { freePort, listenForTest } from "./helpers.js";

const SAFETY_MS = 5000;

// ---- waiting helpers ----

function within<T>(promise: Promise<T>, label: string, ms = SAFETY_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function nextEvent<T = any>(client: WarrenClient, event: string, ms = SAFETY_MS): Promise<T> {
  return within(new Promise<T>((resolve) => client.once(event, resolve)), `client event "${event}"`, ms);
}

function untilState(client: WarrenClient, state: ClientState, ms = SAFETY_MS): Promise<void> {
  if (client.getState() === state) return Promise.resolve();
  return within(
    new Promise<void>((resolve) => {
      const off = client.onStateChange((next) => {
        if (next === state) {
          off();
          resolve();
        }
      });
    }),
    `state "${state}"`,
    ms,
  );
}

function settled<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: any }> {
  return within(
    promise.then(
      (value) => ({ ok: true as const, value }),
      (error) => ({ ok: false as const, error }),
    ),
    "a promise to settle",
  );
}


/** Options for tests: fast reconnects, no keepalive unless a test wants it. */
function fast(options: WarrenClientOptions = {}): WarrenClientOptions {
  return {
    WebSocket,
    pingInterval: 0,
    connectionTimeout: 2000,
    ...options,
    reconnection: { initialDelay: 20, maxDelay: 200, jitter: 0, ...options.reconnection },
  };
}

// ---- the protocol fixture ----

interface ServerClose {
  code: number;
  reason: string;
}

/**
 * Plays warren's side of the wire protocol (DESIGN §3), with switches to misbehave. Emits
 * "connection", "frame" (every parsed non-ping frame), "ping" and "socket-close" ({ code, reason }).
 */
class Fixture extends EventEmitter {
  readonly wss: WebSocketServer;
  readonly sockets = new Set<WebSocket>();
  readonly frames: any[] = [];
  readonly requestUrls: string[] = [];
  connections = 0;
  answerPings = true;
  /** Whether a client asking for resume (`?_resume=`) gets warren's `session` frame first. */
  sendSession = true;

  private constructor(wss: WebSocketServer) {
    super();
    this.wss = wss;
    wss.on("connection", (socket, req) => this.#accept(socket, req.url ?? ""));
  }

  static async start(port = 0): Promise<Fixture> {
    const wss = new WebSocketServer({ port, host: "127.0.0.1" });
    await once(wss, "listening");
    return new Fixture(wss);
  }

  get port(): number {
    return (this.wss.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Resolves with the first frame (already received or future) matching `predicate`. */
  frame(predicate: (frame: any) => boolean, label = "a frame"): Promise<any> {
    const seen = this.frames.find(predicate);
    if (seen) return Promise.resolve(seen);
    return within(
      new Promise((resolve) => {
        const onFrame = (frame: any) => {
          if (!predicate(frame)) return;
          this.off("frame", onFrame);
          resolve(frame);
        };
        this.on("frame", onFrame);
      }),
      `fixture ${label}`,
    );
  }

  /** Closes every socket with `code`, waits for them, and stops listening. */
  async close(code = 1001, reason = "server shutdown"): Promise<void> {
    const closed = [...this.sockets].map((socket) => {
      const done = once(socket, "close");
      socket.close(code, reason);
      return within(done, "a fixture socket to close").catch(() => socket.terminate());
    });
    await Promise.all(closed);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  #accept(socket: WebSocket, url: string): void {
    this.connections++;
    this.requestUrls.push(url);
    this.sockets.add(socket);
    socket.on("close", (code, reason) => {
      this.sockets.delete(socket);
      this.emit("socket-close", { code, reason: reason.toString() } satisfies ServerClose);
    });
    socket.on("message", (raw) => this.#handle(socket, JSON.parse(raw.toString())));
    if (this.sendSession && new URL(url, "ws://x").searchParams.has("_resume")) {
      socket.send(JSON.stringify({ type: "session", resumed: false, token: `fixture-${this.connections}` }));
    }
    this.emit("connection", socket);
  }

  #handle(socket: WebSocket, frame: any): void {
    if (frame.type === "ping") {
      this.emit("ping");
      if (this.answerPings) socket.send(JSON.stringify({ type: "pong" }));
      return;
    }
    this.frames.push(frame);
    this.emit("frame", frame);
    const event = (type: string, payload: object = {}) =>
      socket.send(JSON.stringify({ type: "event", channel: "default", data: { type, ...payload } }));
    const reply = (body: object) => socket.send(JSON.stringify({ type: "reply", id: frame.id, ...body }));

    if (frame.type === "call") {
      switch (frame.event) {
        case "add":
          return reply({ data: frame.data.a + frame.data.b });
        case "fail":
          return reply({ error: { code: "handler_error", message: "nope", meta: { field: "a" } } });
        case "late":
          setTimeout(() => {
            reply({ data: "too late" });
            this.emit("late-reply-sent");
          }, frame.data.afterMs);
          return;
        case "drop":
          return socket.close(4001, "dropped on purpose");
        default:
          return; // "never": no reply
      }
    }
    switch (frame.type) {
      case "echo":
        return event("echo", frame.data);
      case "tick-twice":
        event("tick", { n: 1 });
        event("tick", { n: 2 });
        return event("ticked");
      case "garbage": {
        const bad = ["not json", "42", "null", "[1,2]", '{"type":7}', '{"data":{}}', '{"type":"x","channel":5}'];
        for (const text of bad) socket.send(text);
        socket.send(Buffer.from([1, 2, 3]));
        socket.send(JSON.stringify({ type: "plain", data: { ok: true } }));
        return event("after-garbage");
      }
      case "destroy":
        return socket.close(1000, "Actor destroyed");
    }
  }
}

/** A TCP server that accepts connections and never answers the WebSocket handshake. */
async function silentServer(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function withFixture(t: TestContext, port = 0): Promise<Fixture> {
  const fixture = await Fixture.start(port);
  t.after(() => fixture.close());
  return fixture;
}

function client(t: TestContext, url: string, options?: WarrenClientOptions): WarrenClient {
  const c = new WarrenClient(url, fast(options));
  t.after(() => c.close());
  return c;
}

// ---- tests against the fixture ----

describe("WarrenClient states and listeners", () => {
  test("a new client is connecting, becomes connected, and becomes disconnected on disconnect()", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    assert.equal(c.getState(), "connecting");
    assert.equal(c.isConnected(), false);

    const states: ClientState[] = [];
    c.onStateChange((state) => states.push(state));
    await nextEvent(c, "connected");
    assert.equal(c.isConnected(), true);
    assert.deepEqual(c.getConnectionState(), {
      state: "connected",
      isConnected: true,
      isConnecting: false,
      reconnectAttempts: 0,
      connectionId: 1,
    });

    const serverSaw = once(fixture, "socket-close");
    const disconnected = nextEvent<CloseInfo>(c, "disconnected");
    c.disconnect();
    assert.equal(c.getState(), "disconnected");
    assert.equal((await disconnected).code, 1000);
    const [close] = (await within(serverSaw, "the server to see the close")) as [ServerClose];
    assert.equal(close.code, 1000);
    assert.deepEqual(states, ["connected", "disconnected"]);

    c.disconnect();
    assert.deepEqual(states, ["connected", "disconnected"], "a second disconnect() changes nothing");
  });

  test("the connected event carries { resumed: false } and follows open", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    const order: string[] = [];
    c.on("open", () => order.push("open"));
    const info = await nextEvent(c, "connected");
    order.push("connected");
    assert.deepEqual(info, { resumed: false });
    assert.deepEqual(order, ["open", "connected"]);
  });

  test("onOpen and onClose registered after construction and after the first open still fire", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    let early = 0;
    c.onOpen(() => early++);
    await nextEvent(c, "connected");
    assert.equal(early, 1);

    let late = 0;
    const closes: CloseInfo[] = [];
    c.onOpen(() => late++);
    c.onClose((info) => closes.push(info));
    const reopened = nextEvent(c, "connected");
    for (const socket of fixture.sockets) socket.close(1001, "going away");
    await reopened;
    assert.equal(late, 1);
    assert.equal(early, 2);
    assert.deepEqual(closes.map((info) => [info.code, info.reason]), [[1001, "going away"]]);
  });

  test("on() returns a function that removes exactly that listener", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    const first: number[] = [];
    const second: number[] = [];
    const off = c.on("tick", (data) => {
      first.push(data.n);
      off();
    });
    c.on("tick", (data) => second.push(data.n));
    const ticked = nextEvent(c, "ticked");
    c.emit("tick-twice");
    await ticked;
    assert.deepEqual(first, [1]);
    assert.deepEqual(second, [1, 2]);
  });

  test("once() runs a listener one time and off() removes a once listener by its original function", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    const seen: number[] = [];
    const removed: number[] = [];
    c.once("tick", (data) => seen.push(data.n));
    const never = (data: any) => removed.push(data.n);
    c.once("tick", never);
    c.off("tick", never);
    const ticked = nextEvent(c, "ticked");
    c.emit("tick-twice");
    await ticked;
    assert.deepEqual(seen, [1]);
    assert.deepEqual(removed, []);
  });

  test("a throwing listener is reported with console.error and the other listeners still run", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    const reported = t.mock.method(console, "error", () => {});
    const after: unknown[] = [];
    c.on("echo", () => {
      throw new Error("listener bug");
    });
    c.on("echo", (data) => after.push(data.text));
    const echoed = nextEvent(c, "echo");
    c.emit("echo", { text: "hi" });
    await echoed;
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(after, ["hi"]);
    assert.equal(reported.mock.callCount(), 1);
    assert.match(String(reported.mock.calls[0].arguments[0]), /"echo"/);
    assert.equal((reported.mock.calls[0].arguments[1] as Error).message, "listener bug");
  });

  test("server events are dispatched by data.type with the whole data object, and bad frames are dropped", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    const received: Array<[string, unknown]> = [];
    for (const name of ["plain", "x", "event", "undefined", "after-garbage"]) {
      c.on(name, (data) => received.push([name, data]));
    }
    const done = nextEvent(c, "after-garbage");
    c.emit("garbage");
    await done;
    assert.deepEqual(received, [
      ["plain", { ok: true }],
      ["after-garbage", { type: "after-garbage" }],
    ]);
    assert.equal(c.isConnected(), true);
  });

  test("VeraniClient is the same class as WarrenClient", () => {
    assert.equal(VeraniClient, WarrenClient);
  });
});

describe("WarrenClient options", () => {
  test("params are sent as URL-encoded JSON in the params query parameter", async (t) => {
    const fixture = await withFixture(t);
    const params = { token: "a b&c", n: [1, 2] };
    const c = client(t, `${fixture.url}?room=1`, { params });
    await nextEvent(c, "connected");
    const url = new URL(fixture.requestUrls[0], "ws://x");
    assert.equal(url.searchParams.get("room"), "1");
    assert.deepEqual(JSON.parse(url.searchParams.get("params")!), params);
    assert.ok(fixture.requestUrls[0].includes(`params=${encodeURIComponent(JSON.stringify(params))}`));
  });

  test("the constructor throws for params over 4 KiB encoded and for invalid options, naming them", () => {
    const big = { blob: "x".repeat(MAX_PARAMS_BYTES) };
    const url = "ws://127.0.0.1:1/ws";
    assert.throws(() => new WarrenClient(url, fast({ params: big })), /options\.params .*4096/);
    assert.throws(
      () => new WarrenClient(url, fast({ reconnection: { backoffMultiplier: 0.5 } })),
      /options\.reconnection\.backoffMultiplier/,
    );
    assert.throws(() => new WarrenClient(url, fast({ maxQueueSize: -1 })), /options\.maxQueueSize/);
    assert.throws(() => new WarrenClient("ftp://127.0.0.1/ws", fast()), /ws:, wss:/);
    // Without a WebSocket class in options or globally (Node 20; Node 22+ has a global one).
    const global = globalThis as { WebSocket?: unknown };
    const builtIn = global.WebSocket;
    delete global.WebSocket;
    try {
      assert.throws(() => new WarrenClient(url, {}), /options\.WebSocket/);
    } finally {
      if (builtIn !== undefined) global.WebSocket = builtIn;
    }
  });
});

describe("WarrenClient offline queue", () => {
  test("emits made before the socket opens are written in order before open listeners run", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    c.onOpen(() => c.emit("m", 4));
    for (const n of [1, 2, 3]) c.emit("m", n);
    await fixture.frame((f) => f.data === 4, "the emit from the open listener");
    assert.deepEqual(
      fixture.frames.map((f) => [f.type, f.data]),
      [
        ["m", 1],
        ["m", 2],
        ["m", 3],
        ["m", 4],
      ],
    );
  });

  test("the queue drops the oldest frames beyond maxQueueSize and rejects a dropped call with queue_full", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url, { maxQueueSize: 2 });
    const dropped = settled(c.call("never", {}));
    c.emit("m", "a");
    c.emit("m", "b");
    c.emit("m", "c");
    const result = await dropped;
    assert.equal(result.ok, false);
    assert.equal(result.ok === false && result.error.code, "queue_full");

    c.onOpen(() => c.emit("m", "end"));
    await fixture.frame((f) => f.data === "end", "the end marker");
    assert.deepEqual(
      fixture.frames.map((f) => f.data),
      ["b", "c", "end"],
    );
  });
});

describe("WarrenClient calls", () => {
  test("a call resolves with the server's reply, including a call made before the socket opened", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    const queued = c.call<number>("add", { a: 1, b: 2 });
    assert.equal(await within(queued, "the queued call"), 3);
    assert.equal(await within(c.call<number>("add", { a: 40, b: 2 }), "the second call"), 42);
    const ids = fixture.frames.filter((f) => f.type === "call").map((f) => f.id);
    assert.equal(ids.length, 2);
    assert.ok(Number.isInteger(ids[0]) && ids[1] > ids[0], `ids increase: ${ids}`);
  });

  test("a call rejects with the server's error code, message and meta", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    const result = await settled(c.call("fail", {}));
    assert.equal(result.ok, false);
    const error = (result as { error: WarrenClientError }).error;
    assert.ok(error instanceof WarrenClientError);
    assert.equal(error.code, "handler_error");
    assert.equal(error.message, "nope");
    assert.deepEqual(error.meta, { field: "a" });
  });

  test("a call rejects with timeout when no reply comes in time, and a late reply is ignored", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    await nextEvent(c, "connected");
    const lateSent = once(fixture, "late-reply-sent");
    const result = await settled(c.call("late", { afterMs: 150 }, { timeout: 30 }));
    assert.equal(result.ok === false && result.error.code, "timeout");
    await within(lateSent, "the late reply");
    assert.equal(await within(c.call<number>("add", { a: 2, b: 2 }), "a call after the late reply"), 4);
  });

  test("a call made while offline times out in the queue and is never sent afterwards", async (t) => {
    const port = await freePort();
    const c = client(t, `ws://127.0.0.1:${port}/ws`, { reconnection: { maxAttempts: 0, initialDelay: 10 } });
    const result = await settled(c.call("add", { a: 1, b: 1 }, { timeout: 30 }));
    assert.equal(result.ok === false && result.error.code, "timeout");
    const wait = await settled(c.waitForConnection(30));
    assert.equal(wait.ok === false && wait.error.code, "timeout");

    const fixture = await withFixture(t, port);
    c.onOpen(() => c.emit("marker"));
    await fixture.frame((f) => f.type === "marker", "the marker");
    assert.deepEqual(
      fixture.frames.map((f) => f.type),
      ["marker"],
    );
  });

  test("a call rejects with disconnected when the socket closes before the reply", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    const result = await settled(c.call("drop", {}));
    assert.equal(result.ok === false && result.error.code, "disconnected");
  });

  test("disconnect() rejects pending calls, sent or queued, with disconnected", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    await nextEvent(c, "connected");
    const sent = settled(c.call("never", {}));
    await fixture.frame((f) => f.event === "never", "the sent call");
    c.disconnect();
    const queued = settled(c.call("never", {}));
    c.reconnect();
    c.disconnect();
    for (const result of [await sent, await queued]) {
      assert.equal(result.ok === false && result.error.code, "disconnected");
    }
  });
});

describe("WarrenClient reconnection", () => {
  test("the client reconnects to a new server on the same port and flushes what was emitted meanwhile", async (t) => {
    const first = await Fixture.start();
    t.after(() => first.close());
    const port = first.port;
    const c = client(t, first.url);
    await nextEvent(c, "connected");

    const reconnecting = nextEvent<ReconnectingInfo>(c, "reconnecting");
    const lost = nextEvent<CloseInfo>(c, "disconnected");
    await first.close(1001, "server shutdown");
    assert.equal((await lost).code, 1001);
    assert.equal((await reconnecting).attempt, 1);
    c.emit("while-offline", { n: 1 });

    const second = await withFixture(t, port);
    await untilState(c, "connected");
    const frame = await second.frame((f) => f.type === "while-offline", "the queued emit");
    assert.deepEqual(frame.data, { n: 1 });
    assert.equal(second.connections, 1);
  });

  test("attempts against a closed port are counted once each and their delays grow within the jitter bounds", async (t) => {
    const port = await freePort();
    const sockets: number[] = [];
    class CountingWebSocket extends WebSocket {
      constructor(url: string) {
        super(url);
        sockets.push(performance.now());
      }
    }
    const maxAttempts = 4;
    const reconnection = { initialDelay: 40, backoffMultiplier: 2, maxDelay: 10000, jitter: 0.25, maxAttempts };
    const c = new WarrenClient(`ws://127.0.0.1:${port}/ws`, {
      ...fast({ reconnection }),
      WebSocket: CountingWebSocket,
    });
    t.after(() => c.close());

    const scheduled: Array<ReconnectingInfo & { at: number }> = [];
    const started: number[] = [];
    const errors: string[] = [];
    c.on("reconnecting", (info) => scheduled.push({ ...info, at: performance.now() }));
    c.onStateChange((state) => {
      if (state === "connecting") started.push(performance.now());
    });
    c.on("error", (error) => errors.push(error.code));
    await untilState(c, "error", 10000);

    assert.equal(sockets.length, 1 + maxAttempts, "one socket per attempt");
    assert.deepEqual(
      scheduled.map((s) => s.attempt),
      [1, 2, 3, 4],
      "each failure schedules exactly one attempt",
    );
    assert.equal(errors.filter((code) => code === "reconnect_failed").length, 1);
    for (const [i, s] of scheduled.entries()) {
      const base = 40 * 2 ** i;
      // ±1 for rounding; -2 ms because timers may fire up to a millisecond early after rounding.
      const inBounds = s.delay >= base * 0.75 - 1 && s.delay <= base * 1.25 + 1;
      assert.ok(inBounds, `delay ${s.delay} vs ${base} ± 25 %`);
      const waited = started[i] - s.at;
      assert.ok(waited >= s.delay - 2, `attempt ${s.attempt} waited ${waited} ms, delay ${s.delay}`);
      if (i > 0) assert.ok(s.delay > scheduled[i - 1].delay, "delays grow");
    }
  });

  test("the reconnect delay formula caps at maxDelay before jitter and stays within the jitter fraction", () => {
    const options = { ...DEFAULT_RECONNECTION, maxAttempts: 0 };
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => reconnectDelay(n, options, () => 0.5)),
      [1000, 1500, 2250, 3375],
    );
    assert.equal(reconnectDelay(50, options, () => 0.5), 30000);
    assert.equal(reconnectDelay(50, options, () => 0), 24000);
    assert.equal(reconnectDelay(50, options, () => 0.999999), 36000);
  });

  test("after maxAttempts failures the state is error, waitForConnection rejects, and reconnect() starts over", async (t) => {
    const port = await freePort();
    const c = client(t, `ws://127.0.0.1:${port}/ws`, { reconnection: { maxAttempts: 2, initialDelay: 10 } });
    const waiting = settled(c.waitForConnection());
    await untilState(c, "error");
    const result = await waiting;
    assert.equal(result.ok === false && result.error.code, "reconnect_failed");
    const again = await settled(c.waitForConnection());
    assert.equal(again.ok === false && again.error.code, "reconnect_failed");

    await withFixture(t, port);
    c.reconnect();
    await within(c.waitForConnection(), "waitForConnection after reconnect()");
    assert.equal(c.getConnectionState().reconnectAttempts, 0);
    await within(c.waitForConnection(), "waitForConnection while connected");
  });

  test("a connection attempt that exceeds connectionTimeout counts as one failure and is abandoned", async (t) => {
    const silent = await silentServer();
    t.after(() => silent.close());
    const c = client(t, `ws://127.0.0.1:${silent.port}/ws`, {
      connectionTimeout: 50,
      reconnection: { maxAttempts: 2, initialDelay: 10 },
    });
    const errors: string[] = [];
    const attempts: number[] = [];
    c.on("error", (error) => errors.push(error.code));
    c.on("reconnecting", (info) => attempts.push(info.attempt));
    await untilState(c, "error");
    assert.deepEqual(attempts, [1, 2]);
    assert.deepEqual(errors, ["connect_timeout", "connect_timeout", "connect_timeout", "reconnect_failed"]);
    assert.equal(silent.accepted(), 3);
  });

  test("disconnect() stops reconnection until reconnect() is called", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url, { reconnection: { initialDelay: 5 } });
    await nextEvent(c, "connected");
    c.disconnect();
    const waiting = await settled(c.waitForConnection());
    assert.equal(waiting.ok === false && waiting.error.code, "disconnected");

    // A negative claim needs a wait: 40 times the reconnect delay with no new connection.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(fixture.connections, 1);
    assert.equal(c.getState(), "disconnected");

    c.reconnect();
    await nextEvent(c, "connected");
    assert.equal(fixture.connections, 2);
  });

  test("a server close with 1000 Actor destroyed is not followed by a reconnect", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url);
    await nextEvent(c, "connected");
    const closed = nextEvent<CloseInfo>(c, "close");
    c.emit("destroy");
    assert.deepEqual(await closed, { code: 1000, reason: "Actor destroyed", wasClean: true });
    await untilState(c, "disconnected");
  });

  test("close() leaves the client unusable and clears its listeners", async (t) => {
    const fixture = await withFixture(t);
    const c = new WarrenClient(fixture.url, fast());
    await nextEvent(c, "connected");
    const finalClose = nextEvent<CloseInfo>(c, "close");
    let later = 0;
    c.on("echo", () => later++);
    c.close();
    assert.equal((await finalClose).code, 1000);
    assert.equal(c.getState(), "disconnected");
    c.emit("echo", {});
    const call = await settled(c.call("add", { a: 1, b: 1 }));
    assert.equal(call.ok === false && call.error.code, "closed");
    const wait = await settled(c.waitForConnection());
    assert.equal(wait.ok === false && wait.error.code, "closed");
    assert.throws(() => c.reconnect(), /closed/);
    assert.equal(later, 0);
  });
});

describe("WarrenClient keepalive", () => {
  test("a missing pong closes the socket with 4000 pong timeout and the client reconnects", async (t) => {
    const fixture = await withFixture(t);
    fixture.answerPings = false;
    const c = client(t, fixture.url, { pingInterval: 30, pongTimeout: 60 });
    await nextEvent(c, "connected");

    const serverSaw = once(fixture, "socket-close");
    const clientSaw = nextEvent<CloseInfo>(c, "close");
    const reconnected = nextEvent(c, "connected");
    const [close] = (await within(serverSaw, "the server to see the pong-timeout close")) as [ServerClose];
    assert.deepEqual(close, { code: 4000, reason: "pong timeout" });
    assert.deepEqual(await clientSaw, { code: 4000, reason: "pong timeout", wasClean: false });
    await reconnected;
    assert.equal(fixture.connections, 2);
  });

  test("a connection whose pongs arrive stays open across many pings", async (t) => {
    const fixture = await withFixture(t);
    const c = client(t, fixture.url, { pingInterval: 10, pongTimeout: 40 });
    let closes = 0;
    c.on("close", () => closes++);
    await nextEvent(c, "connected");
    let pings = 0;
    await within(
      new Promise<void>((resolve) => {
        fixture.on("ping", () => {
          if (++pings === 10) resolve();
        });
      }),
      "ten pings",
    );
    assert.equal(closes, 0);
    assert.equal(c.isConnected(), true);
    assert.equal(fixture.connections, 1);
  });
});

// ---- tests against the warren server ----

async function warrenServer(t: TestContext, port = 0) {
  const Conn = defineConnection<{ userId: string; clientId: string; channels: string[] }>({
    name: "ClientSpecConnection",
    extractMeta(req) {
      const params = JSON.parse(req.query.get("params") ?? "null");
      if (!params?.user) throw new Error("user required");
      return { userId: params.user, clientId: String(Math.random()), channels: ["default"] };
    },
    onConnect(ctx) {
      ctx.emit("welcome", { hi: 1, user: ctx.meta.userId });
    },
  });
  Conn.on("echo", (ctx, data) => ctx.emit("echo", data));
  Conn.on("add", (_ctx, data) => data.a + data.b);
  Conn.on("fail", () => {
    throw new Error("nope");
  });
  const server = createServer({ connections: [Conn], storage: ":memory:" });
  return listenForTest(t, server, port);
}

describe("WarrenClient against the warren server", () => {
  test("the client receives onConnect's event, echoes, and gets call replies and error codes", async (t) => {
    const server = await warrenServer(t);
    const c = client(t, server.url, { params: { user: "alice" } });
    const welcome = await nextEvent(c, "welcome");
    assert.deepEqual(welcome, { type: "welcome", hi: 1, user: "alice" });

    const echoed = nextEvent(c, "echo");
    c.emit("echo", { text: "hi" });
    assert.equal((await echoed).text, "hi");

    assert.equal(await within(c.call<number>("add", { a: 1, b: 2 }), "the add call"), 3);
    const failed = await settled(c.call("fail", {}));
    assert.equal(failed.ok === false && failed.error.code, "internal_error");
  });

  test(
    "with a built-in WebSocket (Node 22+, browsers) no WebSocket option is needed",
    { skip: (globalThis as { WebSocket?: unknown }).WebSocket === undefined && "Node 20 has no global WebSocket" },
    async (t) => {
      const server = await warrenServer(t);
      const c = new WarrenClient(server.url, { params: { user: "dora" }, pingInterval: 0 });
      t.after(() => c.close());
      assert.deepEqual((await nextEvent(c, "welcome")).user, "dora");
      assert.equal(await within(c.call<number>("add", { a: 4, b: 5 }), "a call"), 9);
    },
  );

  test("the server answers pings, so a client with a short keepalive stays connected", async (t) => {
    const server = await warrenServer(t);
    const c = client(t, server.url, { params: { user: "bob" }, pingInterval: 10, pongTimeout: 200 });
    let closes = 0;
    c.on("close", () => closes++);
    await nextEvent(c, "connected");
    assert.equal(await within(c.call<number>("add", { a: 1, b: 1 }), "a call"), 2);
    // A negative claim needs a wait: ten ping intervals without a pong-timeout close.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(closes, 0);
  });

  test("the client reconnects after server.close() when a new server listens on the same port", async (t) => {
    const first = await warrenServer(t);
    const c = client(t, first.url, { params: { user: "carol" } });
    await nextEvent(c, "welcome");
    const lost = nextEvent<CloseInfo>(c, "disconnected");
    await first.close();
    assert.equal((await lost).code, 1001);

    await warrenServer(t, first.port);
    const welcome = await nextEvent(c, "welcome");
    assert.equal(welcome.user, "carol");
    assert.equal(await within(c.call<number>("add", { a: 2, b: 3 }), "a call on the new server"), 5);
  });
});
