// Verani's surface of defineConnection and createRoomHandler, over real sockets: definitions
// that leave every option out, and rooms whose hooks take the room state first.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { inspect } from "node:util";
import { createRoomHandler, createServer, defineConnection } from "../index.js";
import { eventually, reopen, serve, TestClient, withTimeout } from "./helpers.js";

describe("Verani's defineConnection defaults", () => {
  test("a definition with no option at all serves /ws as VeraniConnectionDO, each session its own user", async () => {
    const connection = defineConnection({
      onConnect(ctx) {
        ctx.emit("welcome", { message: "Connected!", userId: ctx.meta.userId });
      },
    });
    assert.equal(connection.name, "VeraniConnectionDO");
    assert.equal(connection.websocketPath, "/ws");
    const { server, port } = await serve({ connections: [connection] });
    const a = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
    const b = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
    const [welcomeA, welcomeB] = [await a.event("welcome"), await b.event("welcome")];
    assert.equal(welcomeA.message, "Connected!");
    assert.notEqual(welcomeA.userId, welcomeB.userId, "without extractMeta every session is its own user");
    assert.equal(server.destroyActor("VeraniConnectionDO", welcomeA.userId), true, "the default name addresses the actors");
    assert.equal((await a.closed).reason, "Actor destroyed");
    await b.close();
  });

  test("unnamed definitions on two paths live side by side, each with its own name and state", async () => {
    const counting = (label: string) =>
      defineConnection({
        websocketPath: `/${label}`,
        extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
        state: { count: 0 },
        onConnect(ctx) {
          ctx.state.count++;
          ctx.emit("count", { label, count: ctx.state.count });
        },
      });
    const one = counting("one");
    const two = counting("two");
    assert.equal(one.name, "VeraniConnectionDO:/one");
    assert.notEqual(one.name, two.name);
    const { port } = await serve({ connections: [one, two] });
    for (const expected of [1, 2]) {
      const client = await TestClient.open(`ws://127.0.0.1:${port}/one?user=u`);
      assert.deepEqual(await client.event("count"), { type: "count", label: "one", count: expected });
      await client.close();
    }
    const other = await TestClient.open(`ws://127.0.0.1:${port}/two?user=u`);
    assert.deepEqual(await other.event("count"), { type: "count", label: "two", count: 1 }, "same user, other definition");
    await other.close();
  });

  test("definitions clash only when they serve the same path", () => {
    assert.throws(() => createServer({ connections: [defineConnection({}), defineConnection({})], storage: ":memory:" }), /two connection definitions/);
    assert.throws(
      () => createServer({ connections: [defineConnection({ name: "A" }), defineConnection({ name: "B" })], storage: ":memory:" }),
      /two connection definitions serve the path "\/ws"/,
    );
    const server = createServer({
      connections: [defineConnection({}), defineConnection({ websocketPath: "/other" })],
      storage: ":memory:",
    });
    void server.close();
  });
});

describe("Verani's room hooks: the room state first", () => {
  /** A Verani-style room (hooks take `roomState`) with a warren-style hook beside them. */
  function rooms(seen: string[]) {
    const UserConnection = defineConnection({
      name: "UserConnection",
      rooms: { chat: "ChatRoom" },
      extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
      onConnect(ctx) {
        ctx.actor.joinRoom("chat", { via: "test" });
      },
    });
    UserConnection.on("leave", (ctx) => {
      ctx.actor.leaveRoom("chat");
    });
    const ChatRoom = createRoomHandler({
      name: "ChatRoom",
      connectionBinding: "UserConnection",
      onInit(roomState) {
        roomState.totalJoins ??= 0;
        roomState.log ??= [];
      },
      onJoin(roomState, userId, metadata) {
        roomState.totalJoins++;
        roomState.lastJoined = userId;
        roomState.log.push(`join:${userId}:${metadata.via}`);
        seen.push(`keys:${Object.keys(roomState).sort().join(",")}`);
        // The context's members sit behind the state's keys, and ctx.state is the same state.
        seen.push(`ctx:${roomState.name}:${roomState.memberCount()}:${roomState.state.totalJoins}`);
        seen.push(`inspect:${inspect(roomState, { breakLength: Infinity })}`);
        roomState.emit("joined", { userId, totalJoins: roomState.totalJoins });
      },
      onLeave(roomState, userId) {
        roomState.state.log.push(`leave:${userId}`);
      },
      onDestroy(roomState) {
        seen.push(`destroy:${roomState.reason}:${JSON.stringify({ ...roomState })}`);
      },
    });
    return { UserConnection, ChatRoom };
  }

  test("writes to roomState are persisted: they survive a restart on the same storage", async () => {
    const dir = await mkdtemp(join(tmpdir(), "warren-verani-"));
    after(() => rm(dir, { recursive: true, force: true }));
    const seen: string[] = [];
    const { UserConnection, ChatRoom } = rooms(seen);
    let server = createServer({ connections: [UserConnection], rooms: [ChatRoom], storage: dir });
    const first = server;
    after(() => first.close());
    let { url } = await server.listen({ port: 0 });
    const ann = await TestClient.open(`${url}?user=ann`);
    assert.deepEqual(await ann.event("joined"), { type: "joined", userId: "ann", totalJoins: 1 });
    const ben = await TestClient.open(`${url}?user=ben`);
    assert.deepEqual(await ben.event("joined"), { type: "joined", userId: "ben", totalJoins: 2 });
    ben.emit("leave");
    await eventually(() => server.room("chat").state.log.includes("leave:ben"), "ben's leave");
    assert.deepEqual(seen.slice(0, 3), [
      "keys:lastJoined,log,totalJoins",
      "ctx:chat:1:1",
      "inspect:{ totalJoins: 1, log: [ 'join:ann:test' ], lastJoined: 'ann' }",
    ]);
    await ann.close();
    await server.close();
    assert.ok(seen.some((line) => line.startsWith('destroy:shutdown:{"totalJoins":2,')), seen.join("\n"));

    server = await reopen({ connections: [UserConnection], rooms: [ChatRoom], storage: dir });
    ({ url } = await server.listen({ port: 0 }));
    after(() => server.close());
    const state = server.room("chat").state;
    assert.equal(state.totalJoins, 2, "onInit's ??= kept the stored count");
    assert.equal(state.lastJoined, "ben");
    assert.deepEqual(state.log, ["join:ann:test", "join:ben:test", "leave:ben", "leave:ann"]);
    const cat = await TestClient.open(`${url}?user=cat`);
    assert.deepEqual(await withTimeout(cat.event("joined"), "cat joined"), { type: "joined", userId: "cat", totalJoins: 3 });
    await cat.close();
  });

  test("a room with no name and no binding serves the one connection that names it", async () => {
    const Chat = createRoomHandler({
      onJoin(roomState, userId) {
        roomState.visitors = [...(roomState.visitors ?? []), userId];
      },
    });
    assert.equal(Chat.name, "VeraniRoomDO");
    const connection = defineConnection({
      rooms: { lobby: "VeraniRoomDO" },
      extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
      onConnect(ctx) {
        ctx.actor.joinRoom("lobby");
      },
    });
    const { url, server } = await serve({ connections: [connection], rooms: [Chat] });
    const ann = await TestClient.open(`${url}?user=ann`);
    await eventually(() => Array.isArray(server.room("lobby").state.visitors), "onJoin");
    assert.deepEqual(server.room("lobby").state.visitors, ["ann"]);
    await ann.close();
    const other = defineConnection({ websocketPath: "/other", rooms: { lobby: "VeraniRoomDO" } });
    assert.throws(
      () => createServer({ connections: [connection, other], rooms: [Chat], storage: ":memory:" }),
      /is named by VeraniConnectionDO and VeraniConnectionDO:\/other; set its connectionBinding/,
    );
  });
});
