import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defineConnection } from "../index.js";
import { serve, TestClient } from "./helpers.js";

const Conn = defineConnection({
  name: "Users",
  extractMeta: (req) => ({ userId: String(req.query.get("user")), device: req.query.get("device") }),
  state: { connects: 0 },
  onConnect(ctx) {
    ctx.state.connects++;
    ctx.emit("hello", { connects: ctx.state.connects, sessions: ctx.actor.sessions().length });
  },
});
Conn.on("dm", (ctx, data) => {
  const reached = ctx.emit.toUser(data.to).emit("dm", { from: ctx.meta.userId, text: data.text });
  ctx.emit("dm.sent", { reached });
});
Conn.on("whoami", (ctx) => ctx.emit.emit("you", { device: ctx.meta.device }));

describe("sessions of one user", () => {
  test("two sessions of one user share one actor and its state", async () => {
    const { url, server } = await serve({ connections: [Conn] });
    const phone = await TestClient.open(`${url}?user=alice&device=phone`);
    assert.deepEqual(await phone.event("hello"), { type: "hello", connects: 1, sessions: 1 });
    const laptop = await TestClient.open(`${url}?user=alice&device=laptop`);
    assert.deepEqual(await laptop.event("hello"), { type: "hello", connects: 2, sessions: 2 });
    const { sessions, actors, connections } = server.stats();
    assert.deepEqual({ sessions, actors, connections }, { sessions: 2, actors: 1, connections: 2 });
    laptop.emit("whoami");
    assert.equal((await laptop.event("you")).device, "laptop");
  });

  test("toUser reaches every session of that user and returns the count", async () => {
    const { url } = await serve({ connections: [Conn] });
    const phone = await TestClient.open(`${url}?user=bob&device=phone`);
    const laptop = await TestClient.open(`${url}?user=bob&device=laptop`);
    const carol = await TestClient.open(`${url}?user=carol`);
    carol.emit("dm", { to: "bob", text: "hi bob" });
    assert.equal((await carol.event("dm.sent")).reached, 2);
    assert.deepEqual(await phone.event("dm"), { type: "dm", from: "carol", text: "hi bob" });
    assert.deepEqual(await laptop.event("dm"), { type: "dm", from: "carol", text: "hi bob" });
    carol.emit("dm", { to: "nobody", text: "?" });
    assert.equal((await carol.event("dm.sent")).reached, 0);
  });

  test("non-object payloads and non-string event names are refused with a clear error", async () => {
    const errors: string[] = [];
    const Bad = defineConnection({ name: "BadPayload", onError: (e) => void errors.push((e as Error).message) });
    Bad.on("go", (ctx) => {
      ctx.emit("list", [1, 2] as any);
    });
    Bad.on("name", (ctx) => {
      ctx.emit(7 as any, {});
    });
    Bad.on("ok", (ctx) => ctx.emit("ok"));
    const { url } = await serve({ connections: [Bad] });
    const client = await TestClient.open(url);
    client.emit("go");
    client.emit("name");
    client.emit("ok");
    await client.event("ok");
    assert.match(errors[0] ?? "", /payloads must be plain objects/);
    assert.match(errors[1] ?? "", /event names must be strings/);
  });
});
