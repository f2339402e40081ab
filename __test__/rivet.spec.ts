import assert from "node:assert/strict";
import { request } from "node:http";
import { describe, test } from "node:test";
import { defineConnection, HttpError, UserError } from "../index.js";
import { deferred, refusedUpgrade, serve, TestClient, withTimeout } from "./helpers.js";

function del(port: number, path: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const req = request({ host: "127.0.0.1", port, path, method: "DELETE", headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

const params = (value: unknown) => `params=${encodeURIComponent(JSON.stringify(value))}`;

describe("connection params and onBeforeConnect", () => {
  test("params reach onBeforeConnect and extractMeta; a rejection is a 401 with a code and leaves no trace", async () => {
    const seen: string[] = [];
    const Conn = defineConnection({
      name: "Params",
      onBeforeConnect(req) {
        const p = req.params as { token?: string } | undefined;
        if (p?.token !== "ok") throw Object.assign(new Error("bad token"), { code: "bad_token" });
      },
      extractMeta: (req) => ({ userId: (req.params as { user: string }).user }),
      onConnect: (ctx) => void seen.push(`connect:${ctx.meta.userId}`),
      onDisconnect: (ctx) => void seen.push(`disconnect:${ctx.meta.userId}`),
    });
    const { url, server } = await serve({ connections: [Conn] });
    const refused = await refusedUpgrade(`${url}?${params({ token: "no", user: "mallory" })}`);
    assert.deepEqual(refused, { status: 401, body: { error: "bad token", code: "bad_token" }, opened: false });
    assert.equal((await refusedUpgrade(`${url}?params=%7Bnot-json`)).status, 400);
    assert.equal((await refusedUpgrade(`${url}?params=${"x".repeat(5000)}`)).status, 400);
    assert.equal(server.stats().actors, 0);
    const client = await TestClient.open(`${url}?${params({ token: "ok", user: "alice" })}`);
    await client.close();
    assert.deepEqual(seen.slice(0, 1), ["connect:alice"]);
    assert.ok(!seen.includes("disconnect:mallory"));
  });

  test("onBeforeConnect alone keeps the default meta, and may pick the status", async () => {
    const Conn = defineConnection({
      name: "Gate",
      async onBeforeConnect(req) {
        if (req.query.get("banned")) throw new HttpError(403, "banned");
      },
      onConnect: (ctx) => ctx.emit("meta", { userId: ctx.meta.userId }),
    });
    const { url } = await serve({ connections: [Conn] });
    assert.equal((await refusedUpgrade(`${url}?banned=1`)).status, 403);
    const client = await TestClient.open(url);
    assert.match((await client.event("meta")).userId, /^[0-9a-f-]{36}$/);
  });
});

describe("calls, Rivet style", () => {
  const Conn = defineConnection({ name: "Actions", state: { count: 0 }, onError: () => {} });
  Conn.on("spend", (_ctx, data) => {
    throw new UserError("not enough credits", { code: "insufficient_credits", meta: { needed: data.amount } });
  });
  Conn.on("crash", () => {
    throw new Error("secret database detail");
  });
  Conn.on("slow", () => new Promise((resolve) => setTimeout(() => resolve("late"), 300)));
  Conn.on("increment", (ctx) => ++ctx.state.count);

  test("UserError reaches the caller with its code and meta; other errors are internal_error", async () => {
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    assert.deepEqual((await client.call("spend", { amount: 3 })).error, {
      code: "insufficient_credits",
      message: "not enough credits",
      meta: { needed: 3 },
    });
    assert.deepEqual((await client.call("crash")).error, { code: "internal_error", message: "internal error" });
    assert.equal((await client.call("increment")).data, 1, "the actor keeps working after errors");
  });

  test("exposeErrors shows the message of unexpected errors", async () => {
    const { url } = await serve({ connections: [Conn], exposeErrors: true });
    const client = await TestClient.open(url);
    assert.deepEqual((await client.call("crash")).error, { code: "internal_error", message: "secret database detail" });
  });

  test("a call past callTimeoutMs gets one timeout error and the late result is dropped", async () => {
    const { url } = await serve({ connections: [Conn], callTimeoutMs: 50 });
    const client = await TestClient.open(url);
    const reply = await client.call("slow");
    assert.equal(reply.error.code, "timeout");
    assert.equal((await client.call("increment")).data, 1);
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal(client.history.filter((f) => f.type === "reply" && f.id === reply.id).length, 1);
  });
});

describe("onStateChange and broadcast", () => {
  test("onStateChange fires once per tick of changes, never on reads, and cannot change the state", async () => {
    const changes: number[] = [];
    const errors: string[] = [];
    const Conn = defineConnection({
      name: "Observed",
      state: { count: 0, log: [] as string[] },
      onStateChange(ctx, state) {
        changes.push(state.count);
        if (state.count === 3) ctx.state.count = 100;
      },
      onError: (e) => void errors.push((e as Error).message),
    });
    Conn.on("burst", (ctx) => {
      for (let i = 0; i < 10; i++) ctx.state.log.push(String(i));
      ctx.state.count++;
      return ctx.state.count;
    });
    Conn.on("read", (ctx) => ctx.state.log.length);
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    assert.equal((await client.call("burst")).data, 1);
    assert.equal((await client.call("read")).data, 10);
    assert.equal((await client.call("burst")).data, 2);
    assert.deepEqual(changes, [1, 2]);
    assert.equal((await client.call("burst")).data, 3);
    assert.equal((await client.call("read")).data, 30);
    assert.deepEqual(changes, [1, 2, 3]);
    assert.match(errors[0] ?? "", /cannot change the state of Observed .* inside onStateChange/);
    assert.equal((await client.call("burst")).data, 4, "the refused write did not happen");
  });

  test("ctx.broadcast reaches every session of the actor", async () => {
    const Conn = defineConnection({ name: "Broadcaster", extractMeta: (req) => ({ userId: String(req.query.get("user")) }) });
    Conn.on("announce", (ctx) => ctx.broadcast("announced", { by: ctx.sessionId }));
    const { url } = await serve({ connections: [Conn] });
    const a = await TestClient.open(`${url}?user=u`);
    const b = await TestClient.open(`${url}?user=u`);
    const other = await TestClient.open(`${url}?user=v`);
    a.emit("announce");
    await a.event("announced");
    await b.event("announced");
    other.emit("announce");
    await other.event("announced");
    assert.equal(a.history.filter((f) => f.data?.type === "announced").length, 1);
  });
});

describe("destroy over HTTP", () => {
  test("DELETE /actors/<kind>/<key> needs the admin token and destroys the actor", async () => {
    const destroyed = deferred<string>();
    const Conn = defineConnection({
      name: "Counter",
      extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
      onDestroy: (ctx) => destroyed.resolve(ctx.reason),
    });
    const { url, port } = await serve({ connections: [Conn], adminToken: "s3cret" });
    const client = await TestClient.open(`${url}?user=alice`);
    assert.equal(await del(port, "/actors/Counter/alice"), 401);
    assert.equal(await del(port, "/actors/Counter/alice", "wrong"), 401);
    assert.equal(await del(port, "/actors/Counter/nobody", "s3cret"), 404);
    assert.equal(await del(port, "/actors/Nope/alice", "s3cret"), 404);
    assert.equal(await del(port, "/actors/Counter/alice", "s3cret"), 204);
    assert.equal((await withTimeout(client.closed, "close")).reason, "Actor destroyed");
    assert.equal(await withTimeout(destroyed.promise, "onDestroy"), "destroyed");
  });

  test("without an admin token there is no admin API", async () => {
    const Conn = defineConnection({ name: "Counter" });
    const { port } = await serve({ connections: [Conn] });
    assert.equal(await del(port, "/actors/Counter/alice", "anything"), 404);
  });
});

describe("actors addressed by path", () => {
  test("with keyFromPath every connection to /actors/counter/<key> shares the actor named by the key", async () => {
    const Counter = defineConnection({ name: "counter", websocketPath: "/actors/counter/", keyFromPath: true, state: { count: 0 } });
    Counter.on("increment", (ctx, data) => {
      ctx.state.count += data.by;
      ctx.broadcast("countUpdated", { count: ctx.state.count });
      return ctx.state.count;
    });
    Counter.on("key", (ctx) => ctx.actor.key);
    const { port } = await serve({ connections: [Counter] });
    const base = `ws://127.0.0.1:${port}/actors/counter`;
    const a = await TestClient.open(`${base}/room%201`);
    const b = await TestClient.open(`${base}/room%201`);
    const other = await TestClient.open(`${base}/other`);
    assert.equal((await a.call("key")).data, "room 1");
    assert.equal((await a.call("increment", { by: 5 })).data, 5);
    assert.equal((await b.call("increment", { by: 2 })).data, 7);
    assert.equal((await b.event("countUpdated")).count, 5);
    assert.equal((await other.call("increment", { by: 1 })).data, 1);
    assert.equal((await refusedUpgrade(`${base}/`)).status, 404);
    assert.equal((await refusedUpgrade(`${base}/a/b`)).status, 404);
  });
});
