// warren on the application's own HTTP server: `attach` answers the upgrades for warren's socket
// paths (the socket's descriptor goes to the native core), `handleUpgrade` does the same for
// servers that route upgrades themselves. HTTP routes and other upgrades stay with their owner,
// and `close()` leaves the application's server serving.

import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { test, type TestContext } from "node:test";
import express from "express";
import Fastify from "fastify";
import { WebSocket, WebSocketServer } from "ws";

import { WarrenClient, type ConnectedInfo } from "../client/index";
import { createServer, defineConnection, HttpError, WarrenError, type ServerOptions } from "../index.js";
import { deferred, refusedUpgrade, TestClient, withTimeout } from "./helpers.js";
import { TcpProxy } from "./proxy.js";

interface Meta {
  userId: string;
}

/** A connection whose users name themselves (`?user=`); "mallory" is refused with 401. */
function chat() {
  const hooks = { connects: [] as string[], disconnects: [] as Array<{ user: string; code: number }>, metas: 0 };
  const Conn = defineConnection<Meta>({
    name: "AttachSpec",
    websocketPath: "/ws",
    extractMeta(req) {
      hooks.metas++;
      // TestClient names its user in `?user=`, the warren client in `?params={"user":..}`.
      const user = req.query.get("user") ?? JSON.parse(req.query.get("params") ?? "{}").user ?? "anonymous";
      if (user === "mallory") throw new HttpError(401, "who are you?");
      return { userId: user };
    },
    onConnect(ctx) {
      hooks.connects.push(ctx.meta.userId);
    },
    onDisconnect(ctx, info) {
      hooks.disconnects.push({ user: ctx.meta.userId, code: info.code });
    },
  });
  Conn.on("echo", (_ctx, data) => data);
  Conn.on("send", (ctx, data: { to: string; n: number }) => {
    ctx.emit.toUser(data.to).emit("msg", { n: data.n });
  });
  return { Conn, hooks };
}

function warren(t: TestContext, options: Partial<ServerOptions> = {}) {
  const { Conn, hooks } = chat();
  const server = createServer({ connections: [Conn], storage: ":memory:", ...options });
  t.after(() => server.close());
  return { server, hooks };
}

/** Listens on 127.0.0.1, closing the server (and its keep-alive connections) after the test. */
async function listening(t: TestContext, server: http.Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

async function get(port: number, path: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, text: await response.text() };
}

/** Opens a socket as `user` and checks a call round-trips through the native core. */
async function roundTrip(port: number, user: string): Promise<TestClient> {
  const client = await TestClient.open(`ws://127.0.0.1:${port}/ws?user=${user}`);
  const reply = await client.call("echo", { from: user });
  assert.deepEqual(reply.data, { from: user });
  return client;
}

test("Express: HTTP routes and warren sockets share one port; close() leaves Express serving", async (t) => {
  const { server, hooks } = warren(t);
  const app = express();
  app.get("/hello", (_req, res) => {
    res.json({ hello: "express" });
  });
  const httpServer = http.createServer(app);
  server.attach(httpServer);
  const port = await listening(t, httpServer);

  assert.deepEqual(await get(port, "/hello"), { status: 200, text: '{"hello":"express"}' });
  const alice = await roundTrip(port, "alice");
  const bob = await roundTrip(port, "bob");
  await bob.call("send", { to: "alice", n: 1 });
  assert.deepEqual(await alice.event("msg"), { type: "msg", n: 1 });
  assert.equal(server.stats().sessions, 2);
  assert.equal(server.address, null, "never listened on a port of its own");

  await server.close();
  assert.equal((await alice.closed).code, 1001);
  assert.deepEqual(hooks.disconnects.map((d) => d.code), [1001, 1001]);
  assert.deepEqual(await get(port, "/hello"), { status: 200, text: '{"hello":"express"}' });
  assert.equal(httpServer.listenerCount("upgrade"), 0, "detached");
});

test("Fastify: attached to fastify.server, next to Fastify's routes", async (t) => {
  const { server } = warren(t);
  const app = Fastify();
  app.get("/hello", async () => ({ hello: "fastify" }));
  server.attach(app.server);
  await app.listen({ port: 0, host: "127.0.0.1" });
  t.after(() => app.close());
  const port = (app.server.address() as AddressInfo).port;

  assert.deepEqual(await get(port, "/hello"), { status: 200, text: '{"hello":"fastify"}' });
  const client = await roundTrip(port, "carol");
  await client.close();
});

test("plain http + handleUpgrade: warren takes its paths and leaves the others untouched", async (t) => {
  const { server } = warren(t);
  const others = new WebSocketServer({ noServer: true });
  t.after(() => others.close());
  others.on("connection", (socket) => socket.send("from the application's own ws server"));
  const taken: boolean[] = [];
  const httpServer = http.createServer((_req, res) => res.end("plain"));
  httpServer.on("upgrade", (req, socket, head) => {
    const took = server.handleUpgrade(req, socket, head);
    taken.push(took);
    if (!took) others.handleUpgrade(req, socket, head, (ws) => others.emit("connection", ws, req));
  });
  const port = await listening(t, httpServer);

  const client = await roundTrip(port, "dave");
  const other = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`);
  const [message] = await withTimeout(once(other, "message"), "the other server's greeting");
  assert.equal(String(message), "from the application's own ws server");
  other.close();
  assert.deepEqual(taken, [true, false]);
  await client.close();
});

test("a frame sent with the upgrade request (Node's `head` bytes) reaches the core", async (t) => {
  const { server } = warren(t);
  const httpServer = http.createServer();
  server.attach(httpServer);
  const port = await listening(t, httpServer);
  const socket = net.connect(port, "127.0.0.1");
  await once(socket, "connect");
  t.after(() => socket.destroy());
  const ping = Buffer.from('{"type":"ping"}');
  // A masked text frame with a zero mask: the payload goes as is.
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | ping.length, 0, 0, 0, 0]), ping]);
  const request =
    "GET /ws?user=henry HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  socket.write(Buffer.concat([Buffer.from(request), frame]));
  let received = Buffer.alloc(0);
  await withTimeout(
    (async () => {
      for await (const chunk of socket) {
        received = Buffer.concat([received, chunk as Buffer]);
        if (received.includes('{"type":"pong"}')) return;
      }
    })(),
    "the pong",
  );
  assert.match(received.toString("latin1"), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
});

test("attach leaves another upgrade listener's paths to it, and answers 404 when it is alone", async (t) => {
  const { server } = warren(t);
  const httpServer = http.createServer((_req, res) => res.end("plain"));
  server.attach(httpServer);
  const port = await listening(t, httpServer);
  // Alone: an upgrade for a path warren does not serve would wait forever; it gets 404.
  const alone = await refusedUpgrade(`ws://127.0.0.1:${port}/elsewhere`);
  assert.equal(alone.status, 404);

  const others = new WebSocketServer({ noServer: true });
  t.after(() => others.close());
  httpServer.on("upgrade", (req, socket, head) => {
    if (req.url === "/elsewhere") others.handleUpgrade(req, socket, head, (ws) => ws.send("theirs"));
  });
  const other = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`);
  const [message] = await withTimeout(once(other, "message"), "the other listener's socket");
  assert.equal(String(message), "theirs");
  other.close();
  const client = await roundTrip(port, "erin");
  await client.close();
});

test("a refused upgrade on an attached server is HTTP 401 from the core: no socket, no onConnect", async (t) => {
  const { server, hooks } = warren(t);
  const httpServer = http.createServer((_req, res) => res.end("plain"));
  server.attach(httpServer);
  const port = await listening(t, httpServer);
  const refused = await refusedUpgrade(`ws://127.0.0.1:${port}/ws?user=mallory`);
  assert.deepEqual(refused, { status: 401, body: { error: "who are you?" }, opened: false });
  assert.equal(hooks.metas, 1);
  assert.deepEqual(hooks.connects, []);
  assert.equal(server.stats().sessions, 0);
  // The core's own checks answer too: a plain GET with an Upgrade header but no key.
  const bad = await new Promise<number>((resolve, reject) => {
    const req = http.get({ port, host: "127.0.0.1", path: "/ws", headers: { Connection: "Upgrade", Upgrade: "websocket" } });
    req.on("response", (res) => resolve(res.statusCode ?? 0));
    req.on("upgrade", () => reject(new Error("upgraded")));
    req.on("error", reject);
  });
  assert.equal(bad, 400);
});

test("a session on an attached server resumes after its connection drops", async (t) => {
  const { server, hooks } = warren(t);
  const httpServer = http.createServer((_req, res) => res.end("plain"));
  server.attach(httpServer);
  const port = await listening(t, httpServer);
  const proxy = await TcpProxy.start(port);
  t.after(() => proxy.close());
  const client = new WarrenClient(`ws://127.0.0.1:${proxy.port}/ws`, {
    WebSocket,
    params: { user: "frank" },
    pingInterval: 0,
    connectionTimeout: 2000,
    reconnection: { initialDelay: 20, maxDelay: 100, jitter: 0, maxAttempts: 0 },
  });
  t.after(() => client.close());
  const connected: ConnectedInfo[] = [];
  const received: number[] = [];
  client.on("connected", (info) => connected.push(info));
  client.on("msg", (data: { n: number }) => received.push(data.n));
  const sender = await roundTrip(port, "grace");
  await eventually(() => connected.length === 1, "frank's first session");

  proxy.cut();
  await eventually(() => server.stats().detached === 1, "the drop");
  await sender.call("send", { to: "frank", n: 1 });
  proxy.restore();
  await eventually(() => received.length === 1, "the missed message");
  assert.deepEqual(connected, [{ resumed: false }, { resumed: true }]);
  assert.deepEqual(received, [1]);
  assert.deepEqual(hooks.disconnects, []);
  await sender.close();
});

test("a server attached without listen() closes cleanly with nothing served", async (t) => {
  const { server } = warren(t);
  const httpServer = http.createServer((_req, res) => res.end("plain"));
  server.attach(httpServer);
  await withTimeout(server.close(), "close");
  assert.equal(httpServer.listenerCount("upgrade"), 0);
  const port = await listening(t, httpServer);
  assert.deepEqual(await get(port, "/"), { status: 200, text: "plain" });
  assert.throws(() => server.attach(httpServer), { code: "server_closed" });
});

test("an https server cannot be attached, and a socket without a descriptor is not taken", async (t) => {
  const { server } = warren(t);
  const secure = https.createServer();
  assert.throws(() => server.attach(secure as unknown as http.Server), (error: unknown) => {
    assert.ok(error instanceof WarrenError);
    assert.equal(error.code, "socket_not_adoptable");
    return true;
  });
  const req = { url: "/ws", method: "GET", httpVersion: "1.1", rawHeaders: [] } as unknown as http.IncomingMessage;
  const notTcp = new Duplex({ read() {}, write(_c, _e, done) { done(); } });
  assert.throws(() => server.handleUpgrade(req, notTcp, Buffer.alloc(0)), { code: "socket_not_adoptable" });
  assert.equal(notTcp.destroyed, false, "left to its owner");
  const elsewhere = { ...req, url: "/nope" } as http.IncomingMessage;
  assert.equal(server.handleUpgrade(elsewhere, notTcp, Buffer.alloc(0)), false);
});

test("maxPendingHandshakes holds for handed-over sockets: past it the core answers 503 at once", async (t) => {
  const started = deferred();
  const release = deferred();
  const Slow = defineConnection<Meta>({
    name: "AttachSlow",
    websocketPath: "/ws",
    async extractMeta(req) {
      const user = req.query.get("user") ?? "anonymous";
      if (user === "slow") {
        started.resolve();
        await release.promise;
      }
      return { userId: user };
    },
  });
  const server = createServer({ connections: [Slow], storage: ":memory:", maxPendingHandshakes: 1 });
  t.after(() => server.close());
  const httpServer = http.createServer((_req, res) => res.end("plain"));
  server.attach(httpServer);
  const port = await listening(t, httpServer);

  const slow = new TestClient(`ws://127.0.0.1:${port}/ws?user=slow`);
  await withTimeout(started.promise, "the slow handshake");
  const refused = await refusedUpgrade(`ws://127.0.0.1:${port}/ws?user=other`);
  assert.equal(refused.status, 503);
  assert.equal(refused.opened, false);
  release.resolve();
  await withTimeout(once(slow.socket, "open"), "the slow socket");
  // A pong comes from the task that served the handshake, once past it (its permit is back).
  slow.send({ type: "ping" });
  await slow.next((frame) => frame.type === "pong", "a pong");
  const next = await TestClient.open(`ws://127.0.0.1:${port}/ws?user=other`);
  await next.close();
  await slow.close();
});

test("an upgrade on a Unix-socket server is not taken: 500 from the attached listener, logged", async (t) => {
  const { server } = warren(t);
  const httpServer = http.createServer((_req, res) => res.end("plain"));
  server.attach(httpServer);
  const dir = mkdtempSync(join(tmpdir(), "warren-attach-"));
  const path = join(dir, "http.sock");
  httpServer.listen(path);
  await once(httpServer, "listening");
  t.after(() => {
    httpServer.closeAllConnections();
    httpServer.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const logged: string[] = [];
  const original = console.error;
  console.error = (...parts: unknown[]) => void logged.push(parts.map(String).join(" "));
  try {
    const socket = new WebSocket(`ws+unix://${path}:/ws`);
    socket.on("error", () => {});
    const [, response] = (await withTimeout(once(socket, "unexpected-response"), "the refusal")) as [unknown, http.IncomingMessage];
    assert.equal(response.statusCode, 500);
  } finally {
    console.error = original;
  }
  assert.ok(logged.some((line) => line.includes("socket_not_adoptable") || line.includes("cannot take the socket")), logged.join("\n"));
  assert.equal(server.stats().connections, 0);
});

/** Polls `check` until it holds (server-side counters no frame announces). */
async function eventually(check: () => boolean, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    what,
  );
}
