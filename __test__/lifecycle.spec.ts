import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defineConnection } from "../index.js";
import { deferred, serve, TestClient, withTimeout } from "./helpers.js";

describe("connection lifecycle", () => {
  test("hooks run in order: onInit, onConnect, handlers, onDisconnect", async () => {
    const log: string[] = [];
    const disconnected = deferred<{ code: number; reason: string }>();
    const Conn = defineConnection({
      name: "Lifecycle",
      extractMeta: (req) => ({ userId: req.query.get("token") ?? "anon" }),
      state: { seen: 0 },
      onInit(ctx) {
        log.push(`init:${ctx.actor.key}`);
      },
      onConnect(ctx) {
        log.push(`connect:${ctx.meta.userId}`);
        ctx.emit("welcome", { userId: ctx.meta.userId });
      },
      onDisconnect(ctx, info) {
        log.push(`disconnect:${ctx.meta.userId}`);
        disconnected.resolve(info);
      },
    });
    Conn.on("note", (ctx, data) => {
      ctx.state.seen++;
      log.push(`note:${data.text}`);
      ctx.emit("noted", { seen: ctx.state.seen });
    });
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(`${url}?token=alice`);
    assert.deepEqual(await client.event("welcome"), { type: "welcome", userId: "alice" });
    client.emit("note", { text: "a" });
    client.emit("note", { text: "b" });
    assert.equal((await client.event("noted")).seen, 1);
    assert.equal((await client.event("noted")).seen, 2);
    await client.close(1000);
    assert.deepEqual(await withTimeout(disconnected.promise, "onDisconnect"), { code: 1000, reason: "" });
    assert.deepEqual(log, ["init:alice", "connect:alice", "note:a", "note:b", "disconnect:alice"]);
  });

  test("an async onInit and onConnect hold the session's events until they finish", async () => {
    const log: string[] = [];
    const Conn = defineConnection({
      name: "AsyncHooks",
      async onInit() {
        await new Promise((r) => setTimeout(r, 30));
        log.push("init");
      },
      async onConnect(ctx) {
        await new Promise((r) => setTimeout(r, 30));
        log.push("connect");
        ctx.emit("ready");
      },
    });
    Conn.on("hello", (ctx) => {
      log.push("hello");
      ctx.emit("hi");
    });
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    client.emit("hello");
    await client.event("hi");
    assert.deepEqual(log, ["init", "connect", "hello"]);
  });

  test("events route by data.type when present, else by type; onMessage gets the rest", async () => {
    const unhandled = deferred<unknown>();
    const Conn = defineConnection({
      name: "Routing",
      onMessage(_ctx, frame) {
        unhandled.resolve(frame);
      },
    });
    Conn.on("inner", (ctx) => ctx.emit("routed", { by: "data.type" }));
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    client.send({ type: "outer", data: { type: "inner" } });
    assert.equal((await client.event("routed")).by, "data.type");
    client.send({ type: "nobody", data: { x: 1 } });
    assert.deepEqual(await withTimeout(unhandled.promise, "onMessage"), { type: "nobody", data: { x: 1 } });
  });

  test("a throwing onConnect reaches onError and closes the session with 1011", async () => {
    const errors: string[] = [];
    const Conn = defineConnection({
      name: "BadConnect",
      onConnect() {
        throw new Error("connect failed");
      },
      onError(error) {
        errors.push((error as Error).message);
      },
    });
    const { url } = await serve({ connections: [Conn] });
    const client = new TestClient(url);
    const closed = await withTimeout(client.closed, "close");
    assert.deepEqual(closed, { code: 1011, reason: "Connection handler error" });
    assert.deepEqual(errors, ["connect failed"]);
  });

  test("a handler that throws reaches onError and the server keeps serving", async () => {
    const errors: unknown[] = [];
    const Conn = defineConnection({
      name: "Throws",
      onError(error, ctx) {
        errors.push([(error as Error).message, "meta" in ctx ? ctx.meta.userId : undefined]);
      },
    });
    Conn.on("boom", () => {
      throw new Error("boom");
    });
    Conn.on("later", async () => {
      await Promise.resolve();
      throw new Error("later");
    });
    Conn.on("ok", (ctx) => ctx.emit("fine"));
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    client.emit("boom");
    client.emit("later");
    client.emit("ok");
    await client.event("fine");
    const other = await TestClient.open(url);
    other.emit("ok");
    await other.event("fine");
    assert.equal(errors.length, 2);
    assert.deepEqual(
      errors.map((e) => (e as unknown[])[0]),
      ["boom", "later"],
    );
  });

  test("ctx.actor.close closes the current session with the given code", async () => {
    const Conn = defineConnection({ name: "Closer" });
    Conn.on("leave", (ctx) => ctx.actor.close(4001, "bye"));
    const errors: string[] = [];
    const Guarded = defineConnection({ name: "Guarded", websocketPath: "/guarded", onError: (e) => void errors.push(String(e)) });
    Guarded.on("bad", (ctx) => ctx.actor.close(1006, "illegal"));
    Guarded.on("ping2", (ctx) => ctx.emit("pong2"));
    const { url, port } = await serve({ connections: [Conn, Guarded] });
    const client = await TestClient.open(url);
    client.emit("leave");
    assert.deepEqual(await withTimeout(client.closed, "close"), { code: 4001, reason: "bye" });
    const guarded = await TestClient.open(`ws://127.0.0.1:${port}/guarded`);
    guarded.emit("bad");
    guarded.emit("ping2");
    await guarded.event("pong2");
    assert.match(errors[0] ?? "", /close code must be 1000 or 3000-4999/);
  });

  test("an actor that has not used its state yet reads it from storage when it does, onDestroy included", async () => {
    const destroyed = deferred<string>();
    const Conn = defineConnection({
      name: "LazyState",
      extractMeta: () => ({ userId: "lazy" }),
      state: { visits: 0 },
      onDestroy(ctx) {
        destroyed.resolve(`${ctx.reason}:${ctx.state.visits}`);
      },
    });
    Conn.on("visit", (ctx) => ++ctx.state.visits);
    Conn.on("noop", () => true);
    const { url, server } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    assert.equal((await client.call("visit")).data, 1);
    // Out of the heap and back: the woken actor has not read its state when the server closes.
    assert.equal(server.hibernate("LazyState", "lazy"), true);
    assert.equal((await client.call("noop")).data, true);
    await server.close();
    assert.equal(await withTimeout(destroyed.promise, "onDestroy"), "shutdown:1");
  });

  test("idle actors without sessions leave memory and onDestroy says evicted", async () => {
    const destroyed = deferred<string>();
    const Conn = defineConnection({
      name: "Evicted",
      extractMeta: () => ({ userId: "same-user" }),
      state: { visits: 0 },
      onConnect(ctx) {
        ctx.state.visits++;
      },
      onDestroy(ctx) {
        destroyed.resolve(`${ctx.reason}:${ctx.state.visits}`);
      },
    });
    const { url, server } = await serve({ connections: [Conn], hibernateAfterMs: 50 });
    const client = await TestClient.open(url);
    await client.close();
    assert.equal(await withTimeout(destroyed.promise, "onDestroy"), "evicted:1");
    assert.equal(server.stats().actors, 0);
  });
});
