import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection, type Socket } from "node:net";
import { describe, test } from "node:test";
import { createRoomHandler, defineConnection } from "../index.js";
import { deferred, serve, TestClient, withTimeout } from "./helpers.js";

/** Opens a WebSocket by hand and then never reads from it: a consumer that stopped reading. */
async function stalledSocket(port: number, user: string): Promise<Socket> {
  const socket = createConnection({ host: "127.0.0.1", port });
  await once(socket, "connect");
  socket.write(
    `GET /ws?user=${user} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  const [head] = (await withTimeout(once(socket, "data"), "101")) as [Buffer];
  assert.match(head.toString(), /^HTTP\/1.1 101/);
  socket.pause();
  return socket;
}

function app(disconnects: Map<string, { code: number; reason: string }>, allClosed?: () => void) {
  const Conn = defineConnection({
    name: "Flood",
    rooms: { feed: "Feed" },
    extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
    onConnect: (ctx) => void ctx.actor.joinRoom("feed"),
    onDisconnect(ctx, info) {
      disconnects.set(ctx.meta.userId, info);
      allClosed?.();
    },
  });
  Conn.on("flood", (ctx, data) => {
    const pad = "x".repeat(data.bytes);
    for (let seq = 0; seq < data.count; seq++) ctx.emit.toRoom("feed").emit("tick", { seq, pad });
    ctx.emit("flooded");
  });
  const Feed = createRoomHandler({ name: "Feed", connectionBinding: "Flood" });
  return { Conn, Feed };
}

describe("backpressure", () => {
  test("a client that never reads is closed with 1008 while the others keep receiving, and memory stays bounded", async () => {
    const disconnects = new Map<string, { code: number; reason: string }>();
    const slowClosed = deferred();
    const { Conn, Feed } = app(disconnects, () => disconnects.has("slow") && slowClosed.resolve());
    const { url, port } = await serve({ connections: [Conn], rooms: [Feed], maxBackpressure: 4 << 20 });
    const reader = await TestClient.open(`${url}?user=reader`);
    const slow = await stalledSocket(port, "slow");
    const publisher = await TestClient.open(`${url}?user=publisher`);
    // Collected first, before and after: the figure is what stays, not the test clients' garbage
    // (256 parsed ticks a burst) that V8 has not collected yet.
    globalThis.gc?.();
    const rssBefore = process.memoryUsage().rss;
    // 50 bursts of 256 frames of ~4 KiB: about 50 MiB for each member. A burst fits the
    // reader's outbox, and the reader reads each burst before the next is sent.
    const ticks = () => reader.history.filter((f) => f.data?.type === "tick").length;
    for (let round = 0; round < 50; round++) {
      publisher.emit("flood", { count: 256, bytes: 4000 });
      await publisher.event("flooded");
      await reader.until(() => ticks() >= 256, "a burst of ticks");
      reader.history.length = 0;
      reader.frames.length = 0;
    }
    await withTimeout(slowClosed.promise, "the slow consumer to be closed");
    assert.deepEqual(disconnects.get("slow"), { code: 1008, reason: "slow consumer" });
    assert.equal(disconnects.has("reader"), false);
    globalThis.gc?.();
    const growth = (process.memoryUsage().rss - rssBefore) / (1 << 20);
    assert.ok(growth < 40, `RSS grew by ${growth.toFixed(1)} MiB while 50 MiB went to a stalled client`);
    slow.destroy();
  });

  test('with backpressure: "drop", a slow consumer loses frames but stays connected', async () => {
    const disconnects = new Map<string, { code: number; reason: string }>();
    const { Conn, Feed } = app(disconnects);
    const { url, port } = await serve({
      connections: [Conn],
      rooms: [Feed],
      backpressure: "drop",
      maxBackpressure: 64 * 1024,
    });
    const slow = await stalledSocket(port, "slow");
    const publisher = await TestClient.open(`${url}?user=publisher`);
    publisher.emit("flood", { count: 20000, bytes: 1000 });
    await publisher.event("flooded");
    let received = 0;
    slow.on("data", (chunk: Buffer) => {
      received += chunk.length;
    });
    slow.resume();
    const probe = await TestClient.open(`${url}?user=probe`);
    probe.emit("flood", { count: 1, bytes: 10 });
    await probe.event("flooded");
    await withTimeout(
      (async () => {
        while (received === 0) await new Promise((r) => setTimeout(r, 10));
      })(),
      "the slow client to receive again",
    );
    assert.ok(received < 20000 * 1000, `received ${received} bytes: some frames were dropped`);
    assert.equal(disconnects.has("slow"), false);
    slow.destroy();
  });
});
