import assert from "node:assert/strict";
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import { createConnection } from "node:net";
import { describe, test } from "node:test";
import { createRoomHandler, createServer, defineConnection, defineRawConnection, WarrenError, type RawData } from "../index.js";
import { eventually, RawClient, serve, TestClient, withTimeout } from "./helpers.js";

/** A masked client frame (RFC 6455 §5.2) with a short payload. */
function clientFrame(opcode: number, fin: boolean, text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = [1, 2, 3, 4];
  const header = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length, ...mask]);
  return Buffer.concat([header, payload.map((byte, i) => byte ^ mask[i % 4]!)]);
}

function echoApp(log: string[] = []) {
  const Echo = defineRawConnection({
    name: "Echo",
    websocketPath: "/echo",
    rooms: { doc: "Doc" },
    extractMeta: (req) => ({ userId: req.query.get("user") ?? "anonymous" }),
    onConnect(ctx) {
      log.push(`connect:${ctx.meta.userId}`);
      ctx.send(`hello ${ctx.meta.userId}`);
    },
    onDisconnect(ctx, info) {
      log.push(`disconnect:${ctx.meta.userId}:${info.code}`);
    },
    onMessage(ctx, data: RawData) {
      if (typeof data === "string" && data.startsWith("join ")) {
        ctx.actor.joinRoom(data.slice(5));
        ctx.send("joined");
        return;
      }
      if (typeof data !== "string" && data[0] === 0xff) {
        // A binary update for the room: every other raw member gets the same bytes.
        ctx.sendToRoom("doc", data, { exceptSelf: true });
        return;
      }
      ctx.send(data);
    },
  });
  const Doc = createRoomHandler({ name: "Doc", connectionBinding: "Echo" });
  return { Echo, Doc, log };
}

describe("raw endpoints", () => {
  test("echo text as a string and binary as the exact bytes, with the connection hooks around them", async () => {
    const log: string[] = [];
    const { Echo, Doc } = echoApp(log);
    const { server, port } = await serve({ connections: [Echo], rooms: [Doc] });
    const client = await new RawClient(`ws://127.0.0.1:${port}/echo?user=ada`).open();
    assert.equal(await client.message(0), "hello ada");

    client.socket.send("héllo ✓");
    assert.equal(await client.message(1), "héllo ✓");

    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    client.socket.send(everyByte, { binary: true });
    assert.deepEqual(await client.message(2), everyByte);

    const large = randomBytes(200_000);
    client.socket.send(large, { binary: true });
    assert.deepEqual(await client.message(3), large);

    client.socket.send(Buffer.alloc(0), { binary: true });
    assert.deepEqual(await client.message(4), Buffer.alloc(0));
    // A JSON-looking text is just text here.
    client.socket.send(`{"type":"ping"}`);
    assert.equal(await client.message(5), `{"type":"ping"}`);

    client.socket.close(1000);
    await eventually(() => log.some((line) => line.startsWith("disconnect:")), "onDisconnect");
    assert.deepEqual(log, ["connect:ada", "disconnect:ada:1000"]);
    assert.equal(server.stats().sessions, 0);
  });

  test("a room sends one binary update to its other raw members, byte for byte", async () => {
    const { Echo, Doc } = echoApp();
    const { server, port } = await serve({ connections: [Echo], rooms: [Doc] });
    const clients = await Promise.all(["a", "b", "c"].map((user) => new RawClient(`ws://127.0.0.1:${port}/echo?user=${user}`).open()));
    for (const client of clients) {
      assert.match(String(await client.message(0)), /^hello /);
      client.socket.send("join doc");
      assert.equal(await client.message(1), "joined");
    }
    const update = Buffer.concat([Buffer.from([0xff]), randomBytes(5000)]);
    clients[0]!.socket.send(update, { binary: true });
    assert.deepEqual(await clients[1]!.message(2), update);
    assert.deepEqual(await clients[2]!.message(2), update);
    // The sender got nothing back: its next message is the echo of what it sends next.
    clients[0]!.socket.send("after");
    assert.equal(await clients[0]!.message(2), "after");
    // The room itself sends to every raw member (server.room, or a room hook's ctx).
    assert.equal(server.room("doc").sendRaw("from the room"), 3);
    for (const client of clients) assert.equal(await client.message(3), "from the room");
    for (const client of clients) client.socket.close();
  });

  test("a JSON endpoint still refuses binary frames, and raw sends do not reach its sessions", async () => {
    const { Echo, Doc } = echoApp();
    const Json = defineConnection({ name: "Json", websocketPath: "/ws" });
    Json.on("try-raw", (ctx) => {
      // A JSON session takes no raw message.
      ctx.emit("tried", { sent: (ctx as unknown as { send(data: string): boolean }).send("raw text") });
    });
    const { url } = await serve({ connections: [Json, Echo], rooms: [Doc] });
    const client = await TestClient.open(url);
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await client.event("system:error")).code, "binary_unsupported");
    client.send({ type: "try-raw" });
    assert.equal((await client.event("tried")).sent, false);
    client.close();
  });

  test("a message split into more frames than maxFragments closes the socket with 1009", async () => {
    const { Echo, Doc } = echoApp();
    const { port } = await serve({ connections: [Echo], rooms: [Doc], maxFragments: 4 });
    const within = await new RawClient(`ws://127.0.0.1:${port}/echo?user=within`).open();
    await within.message(0);
    for (const [i, part] of ["a", "b", "c", "d"].entries()) within.socket.send(part, { fin: i === 3 });
    assert.equal(await within.message(1), "abcd");

    const over = await new RawClient(`ws://127.0.0.1:${port}/echo?user=over`).open();
    await over.message(0);
    for (const [i, part] of ["a", "b", "c", "d", "e"].entries()) over.socket.send(part, { fin: i === 4 });
    assert.deepEqual(await over.closed(), { code: 1009, reason: "too many fragments" });
    assert.equal(over.received.length, 1);
    // The other socket is unaffected.
    within.socket.send("still here");
    assert.equal(await within.message(2), "still here");
    within.socket.close();
  });

  test("frames that arrive in the same packet as the request head are counted too", async () => {
    const { Echo, Doc } = echoApp();
    const { port } = await serve({ connections: [Echo], rooms: [Doc], maxFragments: 2 });
    const socket = createConnection({ host: "127.0.0.1", port });
    await withTimeout(once(socket, "connect"), "the TCP connection");
    const head =
      "GET /echo?user=eager HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    // One write: the head, then a text message in three frames (one over the limit).
    socket.write(Buffer.concat([Buffer.from(head), clientFrame(0x1, false, "a"), clientFrame(0x0, false, "b"), clientFrame(0x0, true, "c")]));
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    await withTimeout(once(socket, "close"), "the server to close the connection");
    const bytes = Buffer.concat(received);
    const body = bytes.subarray(bytes.indexOf("\r\n\r\n") + 4);
    // Server frames: "hello eager" (text), then a close frame with 1009.
    const closeAt = body.indexOf(Buffer.from([0x88]));
    assert.ok(closeAt >= 0, `a close frame in ${body.toString("hex")}`);
    assert.equal(body.readUInt16BE(closeAt + 2), 1009);
    assert.equal(body.subarray(closeAt + 4, closeAt + 2 + body[closeAt + 1]!).toString(), "too many fragments");
  });

  test("a raw session does not resume: a dropped socket ends it at once", async () => {
    const log: string[] = [];
    const { Echo, Doc } = echoApp(log);
    const { server, port } = await serve({ connections: [Echo], rooms: [Doc] });
    const client = await new RawClient(`ws://127.0.0.1:${port}/echo?user=drop&_resume=&_lastSeq=0`).open();
    // No `session` frame first: the first message is the endpoint's own.
    assert.equal(await client.message(0), "hello drop");
    client.socket.terminate();
    await eventually(() => log.some((line) => line.startsWith("disconnect:")), "onDisconnect");
    assert.deepEqual(log, ["connect:drop", "disconnect:drop:1006"]);
    assert.equal(server.stats().sessions, 0);
  });

  test("a hibernated raw actor keeps its socket, and the next message wakes it with its state", async () => {
    const Counter = defineRawConnection({
      name: "RawCounter",
      websocketPath: "/count",
      extractMeta: () => ({ userId: "only" }),
      state: { count: 0 },
      onMessage(ctx, data) {
        ctx.state.count++;
        ctx.send(typeof data === "string" ? `text ${ctx.state.count}` : new Uint8Array([ctx.state.count, ...data]));
      },
    });
    const { server, port } = await serve({ connections: [Counter] });
    const client = await new RawClient(`ws://127.0.0.1:${port}/count`).open();
    client.socket.send("one");
    assert.equal(await client.message(0), "text 1");
    assert.equal(server.hibernate("RawCounter", "only"), true);
    await eventually(() => server.stats().hibernated === 1, "the actor to hibernate");
    client.socket.send(Buffer.from([7, 7]), { binary: true });
    assert.deepEqual(await client.message(1), Buffer.from([2, 7, 7]));
    assert.equal(server.stats().hibernated, 0);
    client.socket.close();
  });

  test("defineConnection takes messages: \"raw\" too, and refuses a contract with it", async () => {
    assert.throws(() => defineConnection({ name: "Bad", messages: "binary" as "raw" }), /messages must be "json" or "raw"/);
    const Plain = defineConnection({
      name: "PlainRaw",
      websocketPath: "/plain",
      messages: "raw",
      onMessage(ctx, data) {
        (ctx as unknown as { send(data: unknown): boolean }).send(data);
      },
    });
    // Raw endpoints run in cluster mode too: what stops this server is the Redis it cannot reach.
    assert.throws(
      () => createServer({ connections: [Plain], storage: ":memory:", cluster: { redis: "redis://127.0.0.1:1" } }),
      (error: WarrenError) => error.code === "cluster_unavailable",
    );
    assert.throws(() => createServer({ connections: [Plain], storage: ":memory:", maxFragments: 0 }), /maxFragments/);
    assert.throws(() => Plain.on("x", () => {}), /a raw endpoint has no events/);
    const { port } = await serve({ connections: [Plain] });
    const client = await new RawClient(`ws://127.0.0.1:${port}/plain`).open();
    client.socket.send(Buffer.from([9, 8, 7]), { binary: true });
    assert.deepEqual(await client.message(0), Buffer.from([9, 8, 7]));
    client.socket.close();
  });
});
