/**
 * Shared test support: a server on port 0 closed after each test, and a small client over the
 * real `ws` package that records every frame so tests can wait for what they expect.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { after } from "node:test";
import { promisify } from "node:util";
import WebSocket from "ws";
import { createServer, type ServerOptions, type WarrenServer } from "../index.js";

/** Upper bound for any wait in a test, so a broken test fails instead of hanging. */
export const PATIENCE_MS = 10_000;

export async function withTimeout<T>(promise: Promise<T>, what: string, ms = PATIENCE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Starts a server on 127.0.0.1:0 (temporary storage unless given) and closes it when the test file ends. */
export async function serve(options: ServerOptions): Promise<{ server: WarrenServer; url: string; port: number }> {
  const server = createServer({ storage: ":memory:", ...options });
  const { url, port } = await server.listen({ port: 0, host: "127.0.0.1" });
  after(() => server.close());
  return { server, url, port };
}

/**
 * Listens on 127.0.0.1 (`port` 0: any) and closes the server after test `t`; the returned `close`
 * may be awaited earlier (a restart) and runs once.
 */
export async function listenForTest(
  t: { after(fn: () => unknown): void },
  server: WarrenServer,
  port = 0,
): Promise<{ port: number; url: string; close: () => Promise<void> }> {
  const address = await server.listen({ port, host: "127.0.0.1" });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.close();
  };
  t.after(close);
  return { port: address.port, url: `ws://127.0.0.1:${address.port}/ws`, close };
}

export interface Frame {
  type: string;
  [key: string]: any;
}

/** A protocol-level test client: raw frames in, parsed frames recorded. */
export class TestClient {
  readonly socket: WebSocket;
  readonly frames: Frame[] = [];
  /** Every frame received, in order (never spliced). */
  readonly history: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<() => void> = [];
  #nextCallId = 1;

  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.socket.on("message", (data) => {
      const frame = JSON.parse(String(data));
      this.frames.push(frame);
      this.history.push(frame);
      this.#notify();
    });
    this.socket.on("error", () => {});
    this.closed = new Promise((resolve) => {
      this.socket.on("close", (code, reason) => {
        resolve({ code, reason: String(reason) });
        this.#notify();
      });
    });
  }

  static async open(url: string): Promise<TestClient> {
    const client = new TestClient(url);
    await withTimeout(once(client.socket, "open"), `open ${url}`);
    return client;
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  emit(type: string, data?: unknown): void {
    this.send({ type, data });
  }

  /** Waits for the first recorded frame matching `match` (removing it from `frames`). */
  async next(match: (frame: Frame) => boolean, what = "a frame"): Promise<Frame> {
    const find = () => {
      const index = this.frames.findIndex(match);
      return index < 0 ? undefined : this.frames.splice(index, 1)[0];
    };
    return withTimeout(
      (async () => {
        for (;;) {
          const found = find();
          if (found) return found;
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      })(),
      what,
    );
  }

  /** Waits until `condition()` holds, re-checking on every frame received. */
  async until(condition: () => boolean, what: string): Promise<void> {
    await withTimeout(
      (async () => {
        while (!condition()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
      })(),
      what,
    );
  }

  /** Waits for the event frame named `event` and returns its `data`. */
  async event(event: string): Promise<Record<string, any>> {
    const frame = await this.next((f) => f.type === "event" && f.data?.type === event, `event ${event}`);
    return frame.data;
  }

  /** Sends a call and waits for its reply frame. */
  async call(event: string, data?: unknown): Promise<Frame> {
    const id = this.#nextCallId++;
    this.send({ type: "call", id, event, data });
    return this.next((f) => f.type === "reply" && f.id === id, `reply to ${event}`);
  }

  close(code = 1000): Promise<{ code: number; reason: string }> {
    this.socket.close(code);
    return withTimeout(this.closed, "close");
  }
}

/** Opens a socket that the server refuses, returning the HTTP status and body. */
export async function refusedUpgrade(url: string): Promise<{ status: number; body: any; opened: boolean }> {
  const socket = new WebSocket(url);
  let opened = false;
  socket.on("open", () => {
    opened = true;
  });
  socket.on("error", () => {});
  const [, response] = (await withTimeout(once(socket, "unexpected-response"), "refusal")) as [unknown, IncomingMessage];
  let text = "";
  for await (const chunk of response) text += chunk;
  return { status: response.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, opened };
}

/** A promise with its resolve function, for waiting on hooks. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Waits until `condition()` holds, polling (for what no frame announces). */
export async function eventually(condition: () => boolean, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
    what,
  );
}

/**
 * Creates a server on `storage`, retrying while the previous server's store is still being
 * released (the native store lets go of its directory lock a moment after `close()` resolves).
 */
export async function reopen(options: ServerOptions): Promise<WarrenServer> {
  for (let attempt = 0; ; attempt++) {
    try {
      return createServer(options);
    } catch (error) {
      if (attempt >= 50 || !/in use by another warren server/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const probe = createTcpServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, "close");
  return port;
}

/**
 * A redis-server on `port` with its data in `dir`, durable enough for strict mode (AOF, fsync on
 * every write). The returned function stops it: a clean shutdown (SIGTERM), or with `"SIGKILL"` a
 * crash (what Redis acknowledged is in its AOF already). It can be handed to `t.after` as it is.
 */
export async function startRedis(port: number, dir: string): Promise<(signal?: unknown) => Promise<void>> {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  await withTimeout(
    (async () => {
      while (!output.includes("Ready to accept connections")) await once(child.stdout!, "data");
    })(),
    "redis-server to start",
  );
  return async (signal?: unknown) => {
    child.kill(signal === "SIGKILL" ? "SIGKILL" : "SIGTERM");
    await once(child, "exit");
  };
}

/** Cluster tests: waits until `count` nodes listen on a room's channel (redis-server on `port`). */
export async function subscribed(port: number, room: string, count: number): Promise<void> {
  const run = promisify(execFile);
  await withTimeout(
    (async () => {
      for (;;) {
        const { stdout } = await run("redis-cli", ["-p", String(port), "PUBSUB", "NUMSUB", `warren:room:${room}`]);
        if (Number(stdout.trim().split("\n")[1]) >= count) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })(),
    `${count} nodes on ${room}`,
  );
}

/** The value of the sample `name` (with its labels, as written) in a Prometheus text. */
export function sample(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line !== undefined, `no sample ${name} in:\n${text}`);
  return Number(line.slice(name.length + 1));
}

/** A message as a raw endpoint's `ws` client received it: a string for text, exact bytes for binary. */
export type Received = string | Buffer;

/** A `ws` client of a raw endpoint that records every message it receives. */
export class RawClient {
  readonly socket: WebSocket;
  readonly received: Received[] = [];
  #waiters: Array<() => void> = [];

  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.socket.on("error", () => {});
    this.socket.on("message", (data: Buffer, isBinary: boolean) => {
      this.received.push(isBinary ? data : data.toString("utf8"));
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  async open(): Promise<this> {
    await withTimeout(once(this.socket, "open"), "the raw socket to open");
    return this;
  }

  /** Waits for the message after the `index`-th one received. */
  async message(index: number): Promise<Received> {
    while (this.received.length <= index) {
      await withTimeout(new Promise<void>((resolve) => this.#waiters.push(resolve)), `message #${index}`);
    }
    return this.received[index]!;
  }

  /** Sends `data` and waits for the message it gets back. */
  async ask(data: string | Buffer): Promise<Received> {
    const index = this.received.length;
    this.socket.send(data, { binary: typeof data !== "string" });
    return this.message(index);
  }

  async closed(): Promise<{ code: number; reason: string }> {
    if (this.socket.readyState === WebSocket.CLOSED) throw new Error("already closed");
    const [code, reason] = (await withTimeout(once(this.socket, "close"), "the raw socket to close")) as [number, Buffer];
    return { code, reason: reason.toString() };
  }
}
