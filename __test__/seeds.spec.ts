// The seed documents' code, run as written: __test__/seeds/ holds each snippet of Verani's
// connection lifecycle page (000) and Rivet's actor lifecycle Full Example (002), copied with only
// an import line added (from seeds/env.ts: the package, plus what the seeds take from elsewhere).
// `npm run test:types` type-checks them under --strict; here they serve real sockets.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { WebSocket } from "ws";
import { actorClient, actorUrl, type CloseInfo } from "../client/index.js";
import { createServer, defineConnection, type ConnectionDefinition, type RoomDefinition } from "../index.js";
import { eventually, refusedUpgrade, reopen, serve, TestClient, withTimeout } from "./helpers.js";
import { connection as userConnection, made } from "./seeds/env.js";

/** Imports a seed file and returns the definitions it made. */
async function load(name: string): Promise<{ connections: ConnectionDefinition<any, any>[]; rooms: RoomDefinition[]; module: any }> {
  const before = { connections: made.connections.length, rooms: made.rooms.length };
  const module = await import(`./seeds/${name}.ts`);
  return { connections: made.connections.slice(before.connections), rooms: made.rooms.slice(before.rooms), module };
}

/** The room snippet's ChatRoom (loaded once: its module is cached). */
let chatRoom: RoomDefinition | undefined;
async function seedChatRoom(): Promise<RoomDefinition> {
  chatRoom ??= (await load("000-room-on-destroy")).rooms[0];
  assert.ok(chatRoom, "the room snippet made a room handler");
  return chatRoom;
}

/** Lines printed with `console[stream]` until the test ends (instead of printing them). */
function capture(t: { after(fn: () => void): void }, stream: "log" | "error"): string[] {
  const lines: string[] = [];
  const original = console[stream];
  console[stream] = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  t.after(() => {
    console[stream] = original;
  });
  return lines;
}

describe("seed 000: Verani's connection lifecycle, as written", () => {
  test("onConnect: ctx.emit is available", async (t) => {
    const errors = capture(t, "error"); // a hook that threw would print here
    const { connections } = await load("000-on-connect");
    assert.equal(connections.length, 1);
    const { url } = await serve({ connections });
    const client = await TestClient.open(url);
    assert.deepEqual(await client.event("welcome"), { type: "welcome", message: "Connected!" });
    await client.close();
    assert.deepEqual(errors, []);
  });

  test("event handlers: a chat.message reaches the rest of the room; the room's onDestroy runs on destroy", async (t) => {
    const errors = capture(t, "error"); // a hook that threw would print here
    await load("000-event-handlers");
    const room = await seedChatRoom();
    const { url, server } = await serve({ connections: [userConnection], rooms: [room] });
    const ann = await TestClient.open(`${url}?user=ann`);
    const ben = await TestClient.open(`${url}?user=ben`);
    await eventually(() => server.room("chat").memberCount() === 2, "both in the room");
    ann.emit("chat.message", { text: "hi ben" });
    assert.deepEqual(await ben.event("chat.message"), { type: "chat.message", from: "ann", text: "hi ben" });
    const echo = await ann.call("chat.message", { text: "second" });
    assert.equal(echo.type, "reply");
    assert.equal(ann.frames.some((f) => f.data?.type === "chat.message"), false, "the sender is left out");
    server.room("chat").destroy();
    await eventually(() => server.room("chat").memberCount() === 0, "the room destroyed");
    await ann.close();
    await ben.close();
    assert.deepEqual(errors, []);
  });

  test("onDisconnect: ctx.emit is available; the room hears user.left", async (t) => {
    const errors = capture(t, "error"); // a hook that threw would print here
    const [seed] = (await load("000-on-disconnect")).connections;
    // The seed's hooks in the page's environment: named UserConnection, users from ?user=, who
    // join "chat" (the snippet leaves that to the rest of the page).
    const Conn = defineConnection({
      ...seed!,
      name: "UserConnection",
      rooms: { chat: "ChatRoom" },
      extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
      onConnect: (ctx) => void ctx.actor.joinRoom("chat"),
    });
    const { url, server } = await serve({ connections: [Conn], rooms: [await seedChatRoom()] });
    const ann = await TestClient.open(`${url}?user=ann`);
    const ben = await TestClient.open(`${url}?user=ben`);
    await eventually(() => server.room("chat").memberCount() === 2, "both in the room");
    await ben.close();
    assert.deepEqual(await ann.event("user.left"), { type: "user.left", userId: "ben" });
    await ann.close();
    assert.deepEqual(errors, []);
  });

  test("onDestroy: the actor's sockets close before it runs", async (t) => {
    const errors = capture(t, "error"); // a hook that threw would print here
    const [seed] = (await load("000-on-destroy")).connections;
    // The seed's hooks with users named by ?user=, so that the test can name the actor to destroy.
    const Conn = defineConnection({ ...seed!, extractMeta: (req) => ({ userId: String(req.query.get("user")) }) });
    const { url, server } = await serve({ connections: [Conn] });
    const client = await TestClient.open(`${url}?user=ann`);
    assert.equal(server.destroyActor(Conn.name, "ann"), true);
    assert.deepEqual(await withTimeout(client.closed, "close"), { code: 1000, reason: "Actor destroyed" });
    await eventually(() => server.stats().actors === 0, "the actor gone");
    assert.deepEqual(errors, []);
  });

  test("state initialization: state is ready in onConnect, and changes are persisted", async (t) => {
    const lines = capture(t, "log");
    const [seed] = (await load("000-state-initialization")).connections;
    const dir = await mkdtemp(join(tmpdir(), "warren-seed-"));
    after(() => rm(dir, { recursive: true, force: true }));
    // The seed's hooks with users named by ?user= (Verani's Worker routes a user to its actor).
    const Conn = defineConnection({ ...seed!, extractMeta: (req) => ({ userId: String(req.query.get("user")) }) });
    let server = createServer({ connections: [Conn], storage: dir });
    const first = server;
    after(() => first.close());
    let { url } = await server.listen({ port: 0 });
    for (let i = 0; i < 2; i++) {
      const client = await TestClient.open(`${url}?user=ann`);
      await client.close();
    }
    await server.close();
    server = await reopen({ connections: [Conn], storage: dir });
    after(() => server.close());
    ({ url } = await server.listen({ port: 0 }));
    const client = await TestClient.open(`${url}?user=ann`);
    await eventually(() => lines.length === 3, "the third onConnect");
    assert.deepEqual(lines, ["Current count: 0", "Current count: 1", "Current count: 2"]);
    await client.close();
  });
});

describe("seed 002: Rivet's actor lifecycle, the Full Example as written", () => {
  test("the Counter: auth in _onBeforeConnect, connection state, RPC with rpc first, _onStateChange broadcasts", async (t) => {
    const lines = capture(t, "log");
    const { module } = await load("002-full-example");
    const Counter = module.default;
    const { port } = await serve({ actors: { counter: Counter } });
    const base = `ws://127.0.0.1:${port}`;
    const url = actorUrl(base, "counter", "c1");
    const options = { WebSocket: WebSocket as never, reconnection: { enabled: false } };

    const refused = await refusedUpgrade(`${url}?params=${encodeURIComponent(JSON.stringify({ authToken: "forged" }))}`);
    assert.deepEqual(refused, { status: 401, body: { error: "Invalid auth token" }, opened: false });

    const ann = actorClient<InstanceType<typeof Counter>>(url, { ...options, params: { authToken: "token:ann" } });
    t.after(() => ann.close());
    const updated = new Promise<any>((resolve) => ann.once("countUpdated", resolve));
    await ann.increment(); // increment(rpc) is called as increment()
    assert.deepEqual(await withTimeout(updated, "countUpdated"), { type: "countUpdated", count: 1 });
    await ann.increment();
    const closed = new Promise<CloseInfo>((resolve) => ann.once("close", resolve));
    ann.close();
    await withTimeout(closed, "close");
    await eventually(() => lines.includes("User ann disconnected"), "_onDisconnect");
    assert.deepEqual(lines, ["Started", "User ann connected", "User ann disconnected"]);
  });
});
