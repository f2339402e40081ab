// Resume without loss: the warren client and server over a TCP proxy that breaks the network
// (see proxy.ts). Within the resume window a dropped session comes back with every frame it
// missed, in order, and the server runs no onDisconnect/onConnect for the blip; when resume is
// impossible (restart, window over, too much missed) the client is told `resumed: false`.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import { WebSocket } from "ws";

import { WarrenClient, type ConnectedInfo, type WarrenClientOptions } from "../client/index";
import { createServer, defineConnection, type ServerOptions } from "../index.js";
import { listenForTest, refusedUpgrade, TestClient, withTimeout } from "./helpers.js";
import { TcpProxy } from "./proxy.js";

interface Meta {
  userId: string;
  clientId: string;
  channels: string[];
}

/** What the server's hooks saw, per user. */
interface HookLog {
  connects: string[];
  disconnects: Array<{ user: string; code: number }>;
}

async function chatServer(t: TestContext, options: Partial<ServerOptions> = {}, port = 0) {
  const log: HookLog = { connects: [], disconnects: [] };
  const Conn = defineConnection<Meta>({
    name: "ResumeSpec",
    extractMeta(req) {
      const params = JSON.parse(req.query.get("params") ?? "null");
      if (!params?.user) throw new Error("user required");
      return { userId: params.user, clientId: String(Math.random()), channels: ["default"] };
    },
    onConnect(ctx) {
      log.connects.push(ctx.meta.userId);
    },
    onDisconnect(ctx, info) {
      log.disconnects.push({ user: ctx.meta.userId, code: info.code });
    },
  });
  // `send` delivers `msg` to every session of `to`; `burst` sends `count` of them of `size` bytes.
  Conn.on("send", (ctx, data) => {
    ctx.emit.toUser(data.to).emit("msg", { n: data.n });
  });
  Conn.on("slow", async (_ctx, data) => {
    await new Promise((resolve) => setTimeout(resolve, data.ms));
    return { done: data.n };
  });
  Conn.on("burst", (ctx, data) => {
    for (let n = 1; n <= data.count; n++) ctx.emit.toUser(data.to).emit("msg", { n, pad: "x".repeat(data.size) });
    return data.count;
  });
  const server = createServer({ connections: [Conn], storage: ":memory:", ...options });
  return { server, log, ...(await listenForTest(t, server, port)) };
}

async function proxyTo(t: TestContext, port: number): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(port);
  t.after(() => proxy.close());
  return proxy;
}

/** A warren client that records every `msg` number and every `connected` info. */
function recordingClient(t: TestContext, url: string, user: string, options: WarrenClientOptions = {}) {
  const client = new WarrenClient(url, {
    WebSocket,
    params: { user },
    pingInterval: 0,
    connectionTimeout: 2000,
    ...options,
    reconnection: { initialDelay: 20, maxDelay: 100, jitter: 0, maxAttempts: 0 },
  });
  t.after(() => client.close());
  const received: number[] = [];
  const connected: ConnectedInfo[] = [];
  client.on("msg", (data: { n: number }) => received.push(data.n));
  client.on("connected", (info) => connected.push(info));
  return { client, received, connected };
}

/** Polls `check` until it holds (events the test cannot subscribe to: server-side counters). */
async function until(check: () => boolean, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    what,
  );
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("resume without loss", () => {
  test("a dropped connection resumes: every missed event arrives once, in order, and no hook runs", async (t) => {
    const chat = await chatServer(t);
    const proxy = await proxyTo(t, chat.port);
    const alice = recordingClient(t, `ws://127.0.0.1:${proxy.port}/ws`, "alice");
    const bob = await TestClient.open(`${chat.url}?params=${encodeURIComponent('{"user":"bob"}')}`);
    await until(() => alice.connected.length === 1, "alice's first session");
    assert.deepEqual(alice.connected, [{ resumed: false }]);

    await bob.call("send", { to: "alice", n: 1 });
    await until(() => alice.received.length === 1, "message 1");

    proxy.cut();
    await until(() => chat.server.stats().detached === 1, "the server to notice the drop");
    for (const n of range(2, 6)) await bob.call("send", { to: "alice", n });
    proxy.restore();

    await until(() => alice.received.length === 6, "the replayed messages");
    assert.deepEqual(alice.received, range(1, 6));
    assert.deepEqual(alice.connected, [{ resumed: false }, { resumed: true }]);
    // Live traffic continues on the resumed session, after the replay.
    await bob.call("send", { to: "alice", n: 7 });
    await until(() => alice.received.length === 7, "message 7");
    assert.deepEqual(alice.received, range(1, 7));
    assert.deepEqual(chat.log.connects.sort(), ["alice", "bob"]);
    assert.deepEqual(chat.log.disconnects, []);
    assert.equal(chat.server.stats().detached, 0);
    assert.equal(chat.server.stats().sessions, 2);
  });

  test("a call in flight across a drop gets its one reply after the resume", async (t) => {
    const chat = await chatServer(t);
    const proxy = await proxyTo(t, chat.port);
    const alice = recordingClient(t, `ws://127.0.0.1:${proxy.port}/ws`, "alice");
    await until(() => alice.connected.length === 1, "alice's first session");
    const reply = alice.client.call("slow", { ms: 200, n: 7 }, { timeout: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    proxy.cut();
    await until(() => chat.server.stats().detached === 1, "the server to notice the drop");
    // The handler finishes while the client is away; its reply waits in the session.
    await new Promise((resolve) => setTimeout(resolve, 250));
    proxy.restore();
    assert.deepEqual(await withTimeout(reply, "the replayed reply"), { done: 7 });
    assert.deepEqual(alice.connected[1], { resumed: true });
  });

  test("a call in flight when the resume fails rejects with disconnected", async (t) => {
    const storage = mkdtempSync(join(tmpdir(), "warren-resume-"));
    t.after(() => rmSync(storage, { recursive: true, force: true }));
    const first = await chatServer(t, { storage });
    const alice = recordingClient(t, first.url, "alice");
    await until(() => alice.connected.length === 1, "alice's first session");
    const reply = alice.client.call("slow", { ms: 5000, n: 1 }, { timeout: 8000 });
    const settled = reply.then(
      () => "resolved",
      (error) => error.code,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    await first.close();
    await chatServer(t, { storage }, first.port);
    assert.equal(await withTimeout(settled, "the call to settle"), "disconnected");
    assert.deepEqual(alice.connected[1], { resumed: false });
  });

  test("a half-open connection: the pong timeout reconnects and the new socket takes the session over", async (t) => {
    const chat = await chatServer(t);
    const proxy = await proxyTo(t, chat.port);
    const alice = recordingClient(t, `ws://127.0.0.1:${proxy.port}/ws`, "alice", {
      pingInterval: 50,
      pongTimeout: 150,
    });
    const bob = await TestClient.open(`${chat.url}?params=${encodeURIComponent('{"user":"bob"}')}`);
    await until(() => alice.connected.length === 1, "alice's first session");

    // Neither side sees a close: the server keeps writing to a socket nobody reads.
    proxy.blackhole();
    for (const n of range(1, 3)) await bob.call("send", { to: "alice", n });
    await until(() => alice.connected.length === 2, "alice's resumed session");
    assert.deepEqual(alice.connected[1], { resumed: true });
    await until(() => alice.received.length === 3, "the messages sent into the black hole");
    assert.deepEqual(alice.received, range(1, 3));
    assert.deepEqual(chat.log.connects.sort(), ["alice", "bob"]);
    assert.deepEqual(chat.log.disconnects, []);
    assert.equal(chat.server.stats().sessions, 2);
  });

  test("after a server restart the client is told resumed: false and the server sees a new session", async (t) => {
    const storage = mkdtempSync(join(tmpdir(), "warren-resume-"));
    t.after(() => rmSync(storage, { recursive: true, force: true }));
    const first = await chatServer(t, { storage });
    const alice = recordingClient(t, first.url, "alice");
    await until(() => alice.connected.length === 1, "alice's first session");

    await first.close();
    assert.deepEqual(first.log.disconnects, [{ user: "alice", code: 1001 }]);
    const second = await chatServer(t, { storage }, first.port);
    await until(() => alice.connected.length === 2, "alice's second session");
    assert.deepEqual(alice.connected, [{ resumed: false }, { resumed: false }]);
    assert.deepEqual(second.log.connects, ["alice"]);
  });

  test("past the resume window the server runs onDisconnect (1006) and the client starts afresh", async (t) => {
    const chat = await chatServer(t, { resumeWindowMs: 100 });
    const proxy = await proxyTo(t, chat.port);
    const alice = recordingClient(t, `ws://127.0.0.1:${proxy.port}/ws`, "alice");
    await until(() => alice.connected.length === 1, "alice's first session");

    proxy.cut();
    await until(() => chat.log.disconnects.length === 1, "onDisconnect after the window");
    assert.deepEqual(chat.log.disconnects, [{ user: "alice", code: 1006 }]);
    proxy.restore();
    await until(() => alice.connected.length === 2, "alice's second session");
    assert.deepEqual(alice.connected[1], { resumed: false });
    assert.deepEqual(chat.log.connects, ["alice", "alice"]);
  });

  test("a session that missed more than it may buffer ends as a slow consumer; the client is told resumed: false", async (t) => {
    const chat = await chatServer(t, { maxBackpressure: 4096 });
    const proxy = await proxyTo(t, chat.port);
    const alice = recordingClient(t, `ws://127.0.0.1:${proxy.port}/ws`, "alice");
    const bob = await TestClient.open(`${chat.url}?params=${encodeURIComponent('{"user":"bob"}')}`);
    await until(() => alice.connected.length === 1, "alice's first session");

    proxy.cut();
    await until(() => chat.server.stats().detached === 1, "the server to notice the drop");
    await bob.call("burst", { to: "alice", count: 20, size: 500 });
    await until(() => chat.log.disconnects.length === 1, "the overflowing session to end");
    assert.deepEqual(chat.log.disconnects, [{ user: "alice", code: 1008 }]);
    proxy.restore();
    await until(() => alice.connected.length === 2, "alice's second session");
    assert.deepEqual(alice.connected[1], { resumed: false });
  });

  test("a client that closes on purpose ends its session at once, and reconnect() starts a new one", async (t) => {
    const chat = await chatServer(t);
    const alice = recordingClient(t, chat.url, "alice");
    await until(() => alice.connected.length === 1, "alice's first session");
    alice.client.reconnect();
    await until(() => alice.connected.length === 2, "alice's second session");
    assert.deepEqual(alice.connected[1], { resumed: false });
    await until(() => chat.log.disconnects.length === 1, "onDisconnect for the first session");
    assert.deepEqual(chat.log.disconnects, [{ user: "alice", code: 1000 }]);
    alice.client.disconnect();
    await until(() => chat.log.disconnects.length === 2, "onDisconnect for the second session");
    assert.equal(chat.server.stats().detached, 0);
  });

  test("a session waiting for a resume counts against maxSessions", async (t) => {
    const chat = await chatServer(t, { maxSessions: 1 });
    const proxy = await proxyTo(t, chat.port);
    const alice = recordingClient(t, `ws://127.0.0.1:${proxy.port}/ws`, "alice");
    await until(() => alice.connected.length === 1, "alice's first session");
    proxy.cut();
    await until(() => chat.server.stats().detached === 1, "the server to notice the drop");
    const refused = await refusedUpgrade(`${chat.url}?params=${encodeURIComponent('{"user":"bob"}')}`);
    assert.equal(refused.status, 503);
    // alice's own resume is not a new session: it gets its place back.
    proxy.restore();
    await until(() => alice.connected.length === 2, "alice's resumed session");
    assert.deepEqual(alice.connected[1], { resumed: true });
  });

  test("clients that do not ask for resume get numbered frames, no session frame, and no waiting session", async (t) => {
    const chat = await chatServer(t);
    const bob = await TestClient.open(`${chat.url}?params=${encodeURIComponent('{"user":"bob"}')}`);
    const reply = await bob.call("send", { to: "bob", n: 1 });
    const msg = bob.history.find((frame) => frame.type === "event");
    assert.ok(msg && typeof msg.seq === "number" && reply.seq > msg.seq, "frames carry increasing numbers");
    assert.equal(bob.history.some((frame) => frame.type === "session"), false);
    bob.socket.terminate();
    await until(() => chat.log.disconnects.length === 1, "onDisconnect at once");
    assert.deepEqual(chat.log.disconnects, [{ user: "bob", code: 1006 }]);
    assert.equal(chat.server.stats().detached, 0);
  });

  test("with resumeWindowMs: 0 frames carry no number and a resuming client starts afresh each time", async (t) => {
    const chat = await chatServer(t, { resumeWindowMs: 0 });
    const proxy = await proxyTo(t, chat.port);
    const alice = recordingClient(t, `ws://127.0.0.1:${proxy.port}/ws`, "alice");
    const raw = await TestClient.open(`${chat.url}?_resume=&params=${encodeURIComponent('{"user":"carol"}')}`);
    await raw.call("send", { to: "carol", n: 1 });
    assert.deepEqual(raw.history[0], { type: "session", resumed: false });
    assert.equal(raw.history.some((frame) => "seq" in frame), false);
    await until(() => alice.connected.length === 1, "alice's first session");
    proxy.cut();
    await until(() => chat.log.disconnects.length === 1, "onDisconnect at once");
    proxy.restore();
    await until(() => alice.connected.length === 2, "alice's second session");
    assert.deepEqual(alice.connected[1], { resumed: false });
  });
});
