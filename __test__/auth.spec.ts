import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defineConnection, HttpError, type UpgradeRequest } from "../index.js";
import { deferred, refusedUpgrade, serve, TestClient, withTimeout } from "./helpers.js";

describe("auth before the upgrade", () => {
  test("a throwing extractMeta answers 401 with the message and no socket ever opens", async () => {
    let connects = 0;
    const Conn = defineConnection({
      name: "Auth",
      extractMeta(req) {
        const token = req.query.get("token");
        if (!token) throw new Error("token required");
        return { userId: token };
      },
      onConnect() {
        connects++;
      },
    });
    const { url, server } = await serve({ connections: [Conn] });
    const refused = await refusedUpgrade(url);
    assert.deepEqual(refused, { status: 401, body: { error: "token required" }, opened: false });
    assert.equal(connects, 0);
    assert.equal(server.stats().sessions, 0);
    const client = await TestClient.open(`${url}?token=ok`);
    assert.equal(server.stats().sessions, 1);
    await client.close();
  });

  test("err.status chooses the status, and async extractMeta is awaited", async () => {
    const Conn = defineConnection({
      name: "AsyncAuth",
      async extractMeta(req) {
        await new Promise((r) => setTimeout(r, 10));
        if (req.query.get("token") === "banned") throw new HttpError(403, "banned");
        return { userId: String(req.query.get("token")), plan: "pro" };
      },
      onConnect(ctx) {
        ctx.emit("meta", { meta: ctx.meta });
      },
    });
    const { url } = await serve({ connections: [Conn] });
    assert.deepEqual(await refusedUpgrade(`${url}?token=banned`), { status: 403, body: { error: "banned" }, opened: false });
    const client = await TestClient.open(`${url}?token=bob`);
    assert.deepEqual((await client.event("meta")).meta, { userId: "bob", plan: "pro" });
  });

  test("extractMeta sees the url, path, query, headers and remote address", async () => {
    const seen = deferred<UpgradeRequest>();
    const Conn = defineConnection({
      name: "Request",
      extractMeta(req) {
        seen.resolve(req);
        return { userId: "u" };
      },
    });
    const { url } = await serve({ connections: [Conn] });
    const client = new TestClient(`${url}?token=abc&room=1`);
    const req = await withTimeout(seen.promise, "extractMeta");
    assert.equal(req.url, `${url.replace("ws:", "http:")}?token=abc&room=1`);
    assert.equal(new URL(req.url).searchParams.get("room"), "1");
    assert.equal(req.path, "/ws");
    assert.equal(req.query.get("token"), "abc");
    assert.equal(req.query.get("room"), "1");
    assert.equal(req.headers["upgrade"], "websocket");
    assert.match(req.headers["host"] ?? "", /^127\.0\.0\.1:\d+$/);
    assert.equal(req.remoteAddress, "127.0.0.1");
    await client.close();
  });

  test("meta without a string userId is refused with 500", async () => {
    const Conn = defineConnection({ name: "NoUser", extractMeta: () => ({ name: "x" }) as any });
    const original = console.error;
    console.error = () => {};
    try {
      const { url } = await serve({ connections: [Conn] });
      const refused = await refusedUpgrade(url);
      assert.equal(refused.status, 500);
      assert.equal(refused.opened, false);
    } finally {
      console.error = original;
    }
  });

  test("without extractMeta every session gets a fresh clientId as its userId", async () => {
    const Conn = defineConnection({
      name: "Anonymous",
      onConnect(ctx) {
        ctx.emit("meta", { meta: ctx.meta });
      },
    });
    const { url } = await serve({ connections: [Conn] });
    const first = await TestClient.open(url);
    const second = await TestClient.open(url);
    const a = (await first.event("meta")).meta;
    const b = (await second.event("meta")).meta;
    assert.match(a.userId, /^[0-9a-f-]{36}$/);
    assert.equal(a.userId, a.clientId);
    assert.deepEqual(a.channels, ["default"]);
    assert.notEqual(a.userId, b.userId);
  });
});
