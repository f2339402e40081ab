import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createRoomHandler, defineConnection } from "../index.js";
import { serve, TestClient, withTimeout } from "./helpers.js";

/** Waits until `condition()` holds, checking after each turn of the event loop. */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
    what,
  );
}

async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function sleepyApp(log: string[], refs: WeakRef<object>[]) {
  const Sleepy = defineConnection({
    name: "Sleepy",
    rooms: { lounge: "Lounge" },
    extractMeta: (req) => ({ userId: String(req.query.get("user")), device: String(req.query.get("device")) }),
    state: { count: 0, since: new Date(0) },
    onInit(ctx) {
      log.push(`init:${ctx.state.count}`);
      refs.push(new WeakRef(ctx));
    },
    onConnect(ctx) {
      refs.push(new WeakRef(ctx));
      ctx.actor.joinRoom("lounge");
    },
    onHibernationRestore(ctx) {
      log.push(`restore:${ctx.actor.sessions().map((s) => s.meta.device).join(",")}`);
    },
    onDestroy(ctx) {
      log.push(`destroy:${ctx.reason}`);
    },
  });
  Sleepy.on("bump", (ctx) => {
    ctx.state.count++;
    ctx.state.since = new Date("2026-01-01T00:00:00Z");
    return { count: ctx.state.count, device: ctx.meta.device, since: ctx.state.since instanceof Date };
  });
  Sleepy.on("shout", (ctx) => ctx.emit.toRoom("lounge", { includeSelf: true }).emit("shout", { from: ctx.meta.device }));
  Sleepy.on("destroy", (ctx) => ctx.actor.destroy());
  const Lounge = createRoomHandler({
    name: "Lounge",
    connectionBinding: "Sleepy",
    state: { joins: 0 },
    onJoin(ctx) {
      ctx.state.joins++;
    },
    onDestroy() {
      log.push("lounge:destroyed");
    },
  });
  return { Sleepy, Lounge };
}

describe("hibernation", () => {
  test("a hibernated actor leaves the JS heap while its socket stays open and pings are answered; the next message wakes it", async () => {
    const log: string[] = [];
    const refs: WeakRef<object>[] = [];
    const { Sleepy, Lounge } = sleepyApp(log, refs);
    const { url, server } = await serve({ connections: [Sleepy], rooms: [Lounge] });
    const phone = await TestClient.open(`${url}?user=zoe&device=phone`);
    const laptop = await TestClient.open(`${url}?user=zoe&device=laptop`);
    assert.equal((await phone.call("bump")).data.count, 1);
    assert.equal(server.hibernate("Sleepy", "zoe"), true);
    await eventually(() => server.stats().hibernated === 1, "the actor to hibernate");
    await collectGarbage();
    assert.ok(refs.length >= 3);
    assert.deepEqual(refs.map((ref) => ref.deref()), refs.map(() => undefined), "no JS object of the actor stays reachable");

    phone.send({ type: "ping" });
    await phone.next((f) => f.type === "pong", "pong from a hibernated actor's socket");
    assert.equal(server.stats().hibernated, 1, "a ping does not wake the actor");
    // Room fan-out reaches a hibernated member without waking it either.
    assert.equal(server.room("lounge").emit("notice", { text: "still here" }), 2);
    assert.equal((await laptop.event("notice")).text, "still here");
    assert.equal(server.stats().hibernated, 1);

    const woke = await laptop.call("bump");
    assert.deepEqual(woke.data, { count: 2, device: "laptop", since: true });
    assert.deepEqual(log, ["init:0", "init:1", "restore:phone,laptop"]);
    assert.equal(server.stats().hibernated, 0);
    laptop.emit("shout");
    assert.equal((await phone.event("shout")).from, "laptop", "rooms kept their members through hibernation");
  });

  test("actors idle for hibernateAfterMs hibernate on their own", async () => {
    const log: string[] = [];
    const { Sleepy, Lounge } = sleepyApp(log, []);
    const { url, server } = await serve({ connections: [Sleepy], rooms: [Lounge], hibernateAfterMs: 100 });
    const client = await TestClient.open(`${url}?user=yan&device=watch`);
    assert.equal((await client.call("bump")).data.count, 1);
    await eventually(() => server.stats().hibernated === 1, "the idle actor to hibernate");
    assert.equal((await client.call("bump")).data.count, 2);
    assert.deepEqual(log.slice(0, 3), ["init:0", "init:1", "restore:watch"]);
  });

  test("a socket that closes while its actor hibernates wakes it: onDisconnect runs for that session", async () => {
    const log: string[] = [];
    const Napper = defineConnection({
      name: "Napper",
      extractMeta: (req) => ({ userId: "nap", device: String(req.query.get("device")) }),
      onHibernationRestore(ctx) {
        log.push(`restore:${ctx.actor.sessions().map((s) => s.meta.device).join(",")}`);
      },
      onDisconnect(ctx, info) {
        log.push(`disconnect:${ctx.meta.device}:${info.code}`);
      },
    });
    const { url, server } = await serve({ connections: [Napper] });
    const phone = await TestClient.open(`${url}?device=phone`);
    const laptop = await TestClient.open(`${url}?device=laptop`);
    assert.equal(server.hibernate("Napper", "nap"), true);
    await eventually(() => server.stats().hibernated === 1, "the actor to hibernate");
    await phone.close();
    await eventually(() => log.some((line) => line.startsWith("disconnect:")), "onDisconnect");
    assert.deepEqual(log, ["restore:phone,laptop", "disconnect:phone:1000"]);
    await laptop.close();
    await eventually(() => log.length === 3, "the last onDisconnect");
    assert.equal(log[2], "disconnect:laptop:1000");
  });

  test("an evicted actor keeps its stored state for its next session", async () => {
    const log: string[] = [];
    const { Sleepy, Lounge } = sleepyApp(log, []);
    const { url, server } = await serve({ connections: [Sleepy], rooms: [Lounge], hibernateAfterMs: 50 });
    let client = await TestClient.open(`${url}?user=xia&device=tv`);
    assert.equal((await client.call("bump")).data.count, 1);
    await client.close();
    await eventually(() => log.includes("destroy:evicted"), "eviction");
    assert.equal(server.stats().actors, 0);
    client = await TestClient.open(`${url}?user=xia&device=tv`);
    assert.equal((await client.call("bump")).data.count, 2);
  });
});

describe("destroy", () => {
  test("ctx.actor.destroy() leaves rooms, closes sockets with 1000, runs onDestroy and wipes the state", async () => {
    const log: string[] = [];
    const { Sleepy, Lounge } = sleepyApp(log, []);
    const { url, server } = await serve({ connections: [Sleepy], rooms: [Lounge] });
    const phone = await TestClient.open(`${url}?user=wes&device=phone`);
    const laptop = await TestClient.open(`${url}?user=wes&device=laptop`);
    assert.equal((await phone.call("bump")).data.count, 1);
    assert.equal(server.room("lounge").memberCount(), 1);
    phone.emit("destroy");
    assert.deepEqual(await withTimeout(phone.closed, "close"), { code: 1000, reason: "Actor destroyed" });
    assert.deepEqual(await withTimeout(laptop.closed, "close"), { code: 1000, reason: "Actor destroyed" });
    await eventually(() => log.includes("destroy:destroyed"), "onDestroy");
    assert.equal(server.room("lounge").memberCount(), 0);
    const again = await TestClient.open(`${url}?user=wes&device=phone`);
    assert.equal((await again.call("bump")).data.count, 1, "the next session starts from the defaults");
  });

  test("server.destroyActor destroys from outside, in memory or only in storage", async () => {
    const log: string[] = [];
    const { Sleepy, Lounge } = sleepyApp(log, []);
    const { url, server } = await serve({ connections: [Sleepy], rooms: [Lounge], hibernateAfterMs: 50 });
    const client = await TestClient.open(`${url}?user=val&device=phone`);
    assert.equal((await client.call("bump")).data.count, 1);
    assert.equal(server.destroyActor("Sleepy", "val"), true);
    assert.equal((await withTimeout(client.closed, "close")).reason, "Actor destroyed");
    assert.equal(server.destroyActor("Sleepy", "nobody"), false);
    assert.throws(() => server.destroyActor("Nope", "val"), /no connection definition named "Nope"/);

    const stored = await TestClient.open(`${url}?user=uma&device=phone`);
    assert.equal((await stored.call("bump")).data.count, 1);
    await stored.close();
    await eventually(() => server.stats().actors === 0, "eviction");
    assert.equal(server.destroyActor("Sleepy", "uma"), true, "stored state counts as existing");
    const back = await TestClient.open(`${url}?user=uma&device=phone`);
    assert.equal((await back.call("bump")).data.count, 1);
  });

  test("server.room(name).destroy() makes members leave, runs onDestroy and wipes the room state", async () => {
    const log: string[] = [];
    const { Sleepy, Lounge } = sleepyApp(log, []);
    const { url, server } = await serve({ connections: [Sleepy], rooms: [Lounge] });
    const client = await TestClient.open(`${url}?user=tao&device=phone`);
    await client.call("bump");
    assert.equal(server.room("lounge").state.joins, 1);
    server.room("lounge").destroy();
    await eventually(() => log.includes("lounge:destroyed"), "the room's onDestroy");
    assert.equal(server.room("lounge").memberCount(), 0);
    assert.equal(server.room("lounge").state.joins, 0, "a destroyed room starts again from its defaults");
  });
});
