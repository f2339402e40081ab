import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createRoomHandler, createServer, defineConnection } from "../index.js";
import { deferred, serve, TestClient, withTimeout } from "./helpers.js";

function chatApp(log: string[] = []) {
  const UserConnection = defineConnection({
    name: "UserConnection",
    rooms: { chat: "ChatRoom", conversation: "ChatRoom" },
    extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
    onConnect(ctx) {
      log.push(`connect:${ctx.meta.userId}`);
    },
    onDisconnect(ctx) {
      log.push(`disconnect:${ctx.meta.userId}`);
    },
  });
  UserConnection.on("join", (ctx, data) => {
    const joined = ctx.actor.joinRoom(data.room, data.metadata);
    ctx.emit("joined", { room: data.room, joined, rooms: ctx.actor.getRooms() });
  });
  UserConnection.on("leave", (ctx, data) => {
    ctx.emit("left", { left: ctx.actor.leaveRoom(data.room) });
  });
  UserConnection.on("say", (ctx, data) => {
    const reached = ctx.emit
      .toRoom(data.room, { includeSelf: data.includeSelf })
      .emit("said", { from: ctx.meta.userId, text: data.text, seq: data.seq });
    if (data.ack) ctx.emit("reached", { reached });
  });
  UserConnection.on("bad-room", (ctx) => ctx.actor.joinRoom("lobby"));
  const ChatRoom = createRoomHandler({
    name: "ChatRoom",
    connectionBinding: "UserConnection",
    state: { totalJoins: 0 },
    onInit(ctx) {
      log.push(`room-init:${ctx.name}`);
    },
    onJoin(ctx, userId, metadata) {
      ctx.state.totalJoins++;
      log.push(`join:${ctx.name}:${userId}:${JSON.stringify(metadata)}`);
    },
    onLeave(ctx, userId) {
      log.push(`leave:${ctx.name}:${userId}`);
    },
  });
  return { UserConnection, ChatRoom, log };
}

async function joined(client: TestClient, room: string, metadata?: object) {
  client.emit("join", { room, metadata });
  return client.event("joined");
}

describe("rooms", () => {
  test("every session of every member but the sender gets a room message exactly once, in order", async () => {
    const { UserConnection, ChatRoom } = chatApp();
    const { url } = await serve({ connections: [UserConnection], rooms: [ChatRoom] });
    const alice = await TestClient.open(`${url}?user=alice`);
    const bobPhone = await TestClient.open(`${url}?user=bob`);
    const bobLaptop = await TestClient.open(`${url}?user=bob`);
    const carol = await TestClient.open(`${url}?user=carol`);
    for (const client of [alice, bobPhone, carol]) await joined(client, "chat");
    for (let seq = 0; seq < 20; seq++) alice.emit("say", { room: "chat", text: "hi", seq, ack: seq === 19 });
    assert.equal((await alice.event("reached")).reached, 3);
    for (const client of [bobPhone, bobLaptop, carol]) {
      const seqs: number[] = [];
      for (let i = 0; i < 20; i++) seqs.push((await client.event("said")).seq);
      assert.deepEqual(seqs, [...Array(20).keys()]);
    }
    assert.equal(alice.history.filter((f) => f.data?.type === "said").length, 0);
    bobLaptop.emit("say", { room: "chat", text: "from laptop", ack: true });
    assert.equal((await bobLaptop.event("reached")).reached, 3, "bob's phone, alice and carol");
    assert.equal((await bobPhone.event("said")).text, "from laptop");
    assert.equal(bobLaptop.history.filter((f) => f.data?.type === "said").length, 20);
  });

  test("includeSelf also reaches the sending session", async () => {
    const { UserConnection, ChatRoom } = chatApp();
    const { url } = await serve({ connections: [UserConnection], rooms: [ChatRoom] });
    const alice = await TestClient.open(`${url}?user=alice`);
    await joined(alice, "chat");
    alice.emit("say", { room: "chat", text: "me too", includeSelf: true, ack: true });
    assert.equal((await alice.event("reached")).reached, 1);
    assert.equal((await alice.event("said")).text, "me too");
  });

  test("room names bind by exact key, then by the prefix before ':', and each name is its own room", async () => {
    const { UserConnection, ChatRoom, log } = chatApp();
    const { url, server } = await serve({ connections: [UserConnection], rooms: [ChatRoom] });
    const alice = await TestClient.open(`${url}?user=alice`);
    const bob = await TestClient.open(`${url}?user=bob`);
    await joined(alice, "conversation:1");
    await joined(bob, "conversation:2");
    alice.emit("say", { room: "conversation:1", text: "one", ack: true });
    assert.equal((await alice.event("reached")).reached, 0);
    bob.emit("say", { room: "conversation:1", text: "to one", ack: true });
    assert.equal((await bob.event("reached")).reached, 1);
    assert.equal((await alice.event("said")).text, "to one");
    assert.deepEqual(server.room("conversation:2").members().map((m) => m.userId), ["bob"]);
    assert.ok(log.includes("room-init:conversation:1") && log.includes("room-init:conversation:2"));
  });

  test("an unknown room name is a clear error that lists the configured rooms", async () => {
    const errors: string[] = [];
    const Conn = defineConnection({
      name: "Lonely",
      rooms: { chat: "Room" },
      onError: (e) => void errors.push((e as Error).message),
    });
    Conn.on("go", (ctx) => ctx.actor.joinRoom("lobby"));
    Conn.on("ok", (ctx) => ctx.emit("ok"));
    const Room = createRoomHandler({ name: "Room", connectionBinding: "Lonely" });
    const { url, server } = await serve({ connections: [Conn], rooms: [Room] });
    const client = await TestClient.open(url);
    client.emit("go");
    client.emit("ok");
    await client.event("ok");
    assert.equal(errors[0], 'Lonely has no room "lobby"; configured rooms: chat, chat:*');
    assert.throws(() => server.room("lobby"), /no connection definition has a room "lobby"/);
    assert.throws(
      () => createServer({ connections: [defineConnection({ name: "X", rooms: { a: "Missing" } })] }),
      /names room handler "Missing", which is not in rooms/,
    );
  });

  test("hooks: joining twice is a no-op; the last session closing fires onDisconnect then onLeave; the next session re-joins before onConnect", async () => {
    const { UserConnection, ChatRoom, log } = chatApp();
    const { url, server } = await serve({ connections: [UserConnection], rooms: [ChatRoom] });
    const first = await TestClient.open(`${url}?user=dana`);
    assert.equal((await joined(first, "chat", { role: "mod" })).joined, true);
    const again = await joined(first, "chat");
    assert.deepEqual(again, { type: "joined", room: "chat", joined: false, rooms: ["chat"] });
    const second = await TestClient.open(`${url}?user=dana`);
    await second.close();
    await first.close();
    const left = deferred();
    const poll = setInterval(() => log.includes("leave:chat:dana") && left.resolve(), 5);
    await withTimeout(left.promise, "onLeave");
    clearInterval(poll);
    assert.equal(server.room("chat").memberCount(), 0);
    const back = await TestClient.open(`${url}?user=dana`);
    back.emit("say", { room: "chat", text: "back", includeSelf: true, ack: true });
    assert.equal((await back.event("reached")).reached, 1);
    assert.deepEqual(log.slice(0, 8), [
      "connect:dana",
      "room-init:chat",
      'join:chat:dana:{"role":"mod"}',
      "connect:dana",
      "disconnect:dana",
      "disconnect:dana",
      "leave:chat:dana",
      'join:chat:dana:{"role":"mod"}',
    ]);
    assert.equal(log[8], "connect:dana");
    assert.equal(server.room("chat").state.totalJoins, 2);
  });

  test("members, metadata updates, room state and emit from outside handlers", async () => {
    const { UserConnection, ChatRoom } = chatApp();
    const { url, server } = await serve({ connections: [UserConnection], rooms: [ChatRoom] });
    const alice = await TestClient.open(`${url}?user=alice`);
    const bob = await TestClient.open(`${url}?user=bob`);
    await joined(alice, "chat", { role: "admin" });
    await joined(bob, "chat", { role: "guest" });
    const chat = server.room("chat");
    assert.equal(chat.memberCount(), 2);
    assert.equal(chat.hasMember("bob"), true);
    assert.equal(chat.hasMember("zed"), false);
    const members = chat.members();
    assert.deepEqual(members.map((m) => [m.userId, m.metadata]), [["alice", { role: "admin" }], ["bob", { role: "guest" }]]);
    assert.ok(members.every((m) => typeof m.joinedAt === "number" && m.joinedAt > 0));
    assert.equal(chat.updateMemberMetadata("bob", { status: "away" }), true);
    assert.equal(chat.updateMemberMetadata("zed", { status: "away" }), false);
    assert.deepEqual(chat.members()[1]!.metadata, { role: "guest", status: "away" });
    assert.equal(chat.state.totalJoins, 2);
    assert.equal(chat.emit("notice", { text: "maintenance" }), 2);
    assert.equal((await alice.event("notice")).text, "maintenance");
    assert.equal((await bob.event("notice")).text, "maintenance");
    bob.emit("leave", { room: "chat" });
    assert.equal((await bob.event("left")).left, true);
    assert.equal(chat.memberCount(), 1);
  });

  test("fetchMembers() resolves to what members() lists (on one node the room is always here)", async () => {
    const { UserConnection, ChatRoom } = chatApp();
    const { url, server } = await serve({ connections: [UserConnection], rooms: [ChatRoom] });
    const alice = await TestClient.open(`${url}?user=alice`);
    const bob = await TestClient.open(`${url}?user=bob`);
    await joined(alice, "chat", { role: "admin" });
    await joined(bob, "chat", { role: "guest" });
    const chat = server.room("chat");
    assert.deepEqual(await chat.fetchMembers(), chat.members());
    assert.deepEqual(await server.room("chat:empty").fetchMembers(), []);
    await Promise.all([alice.close(), bob.close()]);
  });

  test("a room of 2,000 sessions receives 100 messages each, all in order", async () => {
    const { UserConnection, ChatRoom } = chatApp();
    const { url } = await serve({ connections: [UserConnection], rooms: [ChatRoom] });
    const publisher = await TestClient.open(`${url}?user=publisher`);
    const members: TestClient[] = [];
    for (let i = 0; i < 2000; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, (_, j) => TestClient.open(`${url}?user=m${i + j}`)));
      members.push(...batch);
    }
    await Promise.all(members.map((m) => joined(m, "chat")));
    for (let seq = 0; seq < 100; seq++) publisher.emit("say", { room: "chat", seq, ack: seq === 99 });
    assert.equal((await publisher.event("reached")).reached, 2000);
    const said = (member: TestClient) => member.history.filter((f) => f.data?.type === "said");
    await Promise.all(members.map((member) => member.until(() => said(member).length >= 100, "100 messages")));
    for (const member of members) {
      assert.deepEqual(said(member).map((f) => f.data.seq), [...Array(100).keys()]);
    }
    await Promise.all(members.map((m) => m.close()));
  });
});
