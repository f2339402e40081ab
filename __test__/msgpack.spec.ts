// The MessagePack encoding: `encoding=msgpack` in the socket URL (the client's `encoding` option)
// makes the session exchange binary frames carrying exactly the values of the JSON protocol. Raw
// `ws` sockets show what travels on the wire; the warren client shows the option end to end.

import assert from "node:assert/strict";
import { once } from "node:events";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import WebSocket from "ws";

import { WarrenClient } from "../client/index";
import { decodeMsgpack, encodeMsgpack } from "../client/msgpack";
import { createRoomHandler, createServer, defineConnection, defineRawConnection, type WarrenServer } from "../index.js";
import { freePort, refusedUpgrade, sample, serve, startRedis, subscribed, withTimeout, type Frame } from "./helpers.js";

/** A frame as the socket carried it: its encoding and its decoded value. */
interface Received {
  binary: boolean;
  frame: Frame;
}

/** A `ws` socket that records every frame with whether it came as binary (MessagePack) or text. */
class WireClient {
  readonly socket: WebSocket;
  readonly received: Received[] = [];
  #waiters: Array<() => void> = [];

  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.socket.on("message", (data: Buffer, isBinary: boolean) => {
      let frame: Frame;
      try {
        frame = (isBinary ? decodeMsgpack(new Uint8Array(data)) : JSON.parse(String(data))) as Frame;
      } catch {
        return; // not a protocol frame (a raw endpoint's echo)
      }
      this.received.push({ binary: isBinary, frame });
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.socket.on("error", () => {});
  }

  static async open(url: string): Promise<WireClient> {
    const client = new WireClient(url);
    await withTimeout(once(client.socket, "open"), `open ${url}`);
    return client;
  }

  /** Sends `value` as MessagePack (binary), or raw bytes as they are. */
  sendMsgpack(value: unknown): void {
    this.socket.send(value instanceof Uint8Array ? value : encodeMsgpack(value));
  }

  sendJson(value: unknown): void {
    this.socket.send(JSON.stringify(value));
  }

  /** Waits for the first received frame matching `match` and removes it. */
  async next(match: (frame: Frame) => boolean, what: string): Promise<Received> {
    return withTimeout(
      (async () => {
        for (;;) {
          const index = this.received.findIndex((r) => match(r.frame));
          if (index >= 0) return this.received.splice(index, 1)[0]!;
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      })(),
      what,
    );
  }

  event(name: string): Promise<Received> {
    return this.next((f) => f.type === "event" && f.data?.type === name, `event ${name}`);
  }

  systemError(): Promise<Received> {
    return this.event("system:error");
  }
}

function app() {
  const Conn = defineConnection({
    name: "Packed",
    rooms: { lobby: "Lobby" },
    extractMeta: (req) => ({ userId: req.query.get("user") ?? "anon" }),
  });
  Conn.on("echo", (ctx, data) => {
    ctx.emit("echoed", data);
  });
  Conn.on("add", (_ctx, data) => data.a + data.b);
  Conn.on("join", (ctx) => {
    ctx.actor.joinRoom("lobby");
    ctx.emit("joined", {});
  });
  Conn.on("shout", (ctx, data) => {
    ctx.emit.toRoom("lobby", { includeSelf: true }).emit("shouted", data);
  });
  Conn.on("tell", (ctx, data) => {
    ctx.emit.toUser(data.to).emit("told", { n: data.n });
  });
  const Lobby = createRoomHandler({ name: "Lobby", connectionBinding: "Packed" });
  const Raw = defineRawConnection({
    name: "RawPacked",
    websocketPath: "/raw",
    onMessage(ctx, data) {
      ctx.send(data);
    },
  });
  return { connections: [Conn, Raw], rooms: [Lobby] };
}

/** Numbers, strings of every length class, nesting, unicode: what the echo carries. */
const PAYLOAD = {
  text: "héllo ☃ \u0000 \"quoted\"",
  long: "x".repeat(300),
  numbers: [0, 1, -1, 127, 128, -33, 65535, 70000, 2 ** 40, -(2 ** 40), 1.5, 0.1, 1e300, -0.25],
  flags: [true, false, null],
  nested: { a: { b: { c: [1, [2, [3]]] } }, empty: {}, list: [] },
  many: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
};

describe("MessagePack encoding", () => {
  test("events and calls round trip with the client option; frames are binary MessagePack", async (t) => {
    const { url } = await serve(app());
    const client = new WarrenClient(`${url}?user=ann`, { WebSocket, encoding: "msgpack" });
    t.after(() => client.close());
    const echoed = new Promise<unknown>((resolve) => client.on("echoed", resolve));
    client.emit("echo", PAYLOAD);
    assert.deepEqual(await withTimeout(echoed, "echoed"), { type: "echoed", ...PAYLOAD });
    assert.equal(await withTimeout(client.call("add", { a: 2, b: 0.5 }), "add"), 2.5);

    const wire = await WireClient.open(`${url}?encoding=msgpack&user=bob`);
    wire.sendMsgpack({ type: "echo", data: PAYLOAD });
    const event = await wire.event("echoed");
    assert.equal(event.binary, true);
    assert.deepEqual(event.frame.data, { type: "echoed", ...PAYLOAD });
    wire.sendMsgpack({ type: "call", id: 9, event: "add", data: { a: 40, b: 2 } });
    const reply = await wire.next((f) => f.type === "reply", "reply");
    assert.equal(reply.binary, true);
    assert.deepEqual({ ...reply.frame, seq: typeof reply.frame.seq }, { type: "reply", id: 9, data: 42, seq: "number" });
    wire.sendMsgpack({ type: "ping" });
    assert.deepEqual(await wire.next((f) => f.type === "pong", "pong"), { binary: true, frame: { type: "pong" } });
    wire.socket.close();
  });

  test("a room broadcast reaches a JSON member and a MessagePack member, each in its own encoding", async () => {
    const { url } = await serve(app());
    const json = await WireClient.open(`${url}?user=jay`);
    const packed = await WireClient.open(`${url}?encoding=msgpack&user=pam`);
    json.sendJson({ type: "join" });
    packed.sendMsgpack({ type: "join" });
    await json.event("joined");
    await packed.event("joined");
    json.sendJson({ type: "shout", data: PAYLOAD });
    const [toJson, toPacked] = await Promise.all([json.event("shouted"), packed.event("shouted")]);
    assert.equal(toJson.binary, false);
    assert.equal(toPacked.binary, true);
    assert.deepEqual(toPacked.frame, toJson.frame);
    assert.deepEqual(toJson.frame.data, { type: "shouted", ...PAYLOAD });
    json.socket.close();
    packed.socket.close();
  });

  test("a resumed session replays its frames in the encoding of the socket that resumed it", async () => {
    const { url } = await serve({ ...app(), resumeWindowMs: 10_000 });
    // Started as JSON, the session is resumed by a MessagePack socket.
    const first = await WireClient.open(`${url}?_resume=&user=rae`);
    const session = await first.next((f) => f.type === "session", "session frame");
    assert.equal(session.binary, false);
    const token = session.frame.token as string;
    const teller = await WireClient.open(`${url}?user=tim`);
    teller.sendJson({ type: "tell", data: { to: "rae", n: 1 } });
    const one = await first.event("told");
    assert.equal(one.binary, false);
    first.socket.terminate(); // a drop, not a close: the session waits for its resume
    await once(first.socket, "close");
    for (const n of [2, 3]) teller.sendJson({ type: "tell", data: { to: "rae", n } });
    teller.sendJson({ type: "echo", data: { flushed: true } });
    await teller.event("echoed"); // the tells were handled before this

    const resumed = await WireClient.open(
      `${url}?_resume=${encodeURIComponent(token)}&_lastSeq=${one.frame.seq}&encoding=msgpack&user=rae`,
    );
    const again = await resumed.next((f) => f.type === "session", "resumed session frame");
    assert.deepEqual(again, { binary: true, frame: { type: "session", resumed: true, token } });
    const replayed = [await resumed.event("told"), await resumed.event("told")];
    assert.deepEqual(
      replayed.map((r) => [r.binary, r.frame.data.n]),
      [
        [true, 2],
        [true, 3],
      ],
    );
    resumed.socket.close();
    teller.socket.close();
  });

  test("in cluster mode, a MessagePack socket forwarded to its actor's node and a room across nodes speak MessagePack", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "warren-msgpack-redis-"));
    const port = await freePort();
    const redisUrl = `redis://127.0.0.1:${port}`;
    const stopRedis = await startRedis(port, dir).catch(async (error) => {
      await rm(dir, { recursive: true, force: true });
      throw error;
    });
    t.after(async () => {
      await stopRedis();
      await rm(dir, { recursive: true, force: true });
    });
    const nodes: WarrenServer[] = [];
    t.after(() => Promise.all(nodes.map((node) => node.close())));
    const urls: string[] = [];
    for (const nodeId of ["mp-a", "mp-b"]) {
      const { connections, rooms } = app();
      // The JSON-protocol endpoint only: raw endpoints are not served in cluster mode.
      const node = createServer({ connections: connections.slice(0, 1), rooms, storage: ":memory:", cluster: { redis: redisUrl, nodeId } });
      nodes.push(node);
      urls.push((await node.listen({ port: 0, host: "127.0.0.1" })).url);
    }
    const [onA, onB] = urls as [string, string];
    // ann's actor is placed on node a, where her first socket lands; her second socket, on node
    // b, is forwarded to it.
    const first = await WireClient.open(`${onA}?encoding=msgpack&user=ann`);
    first.sendMsgpack({ type: "echo", data: { placed: true } });
    await first.event("echoed");
    const forwarded = await WireClient.open(`${onB}?encoding=msgpack&user=ann`);
    forwarded.sendMsgpack({ type: "echo", data: PAYLOAD });
    const echoed = await forwarded.event("echoed");
    assert.equal(echoed.binary, true);
    assert.deepEqual(echoed.frame.data, { type: "echoed", ...PAYLOAD });
    forwarded.sendMsgpack({ type: "call", id: 3, event: "add", data: { a: 1, b: 2 } });
    const reply = await forwarded.next((f) => f.type === "reply", "the forwarded call's reply");
    assert.deepEqual([reply.binary, reply.frame.id, reply.frame.data], [true, 3, 3]);

    // A room with members on both nodes: each socket gets the broadcast in its own encoding.
    const json = await WireClient.open(`${onB}?user=jo`);
    first.sendMsgpack({ type: "join" });
    json.sendJson({ type: "join" });
    await first.event("joined"); // ann's actor (both her sockets) is a member
    await json.event("joined");
    // jo's join reaches node b's subscription to the room a moment after his "joined" event.
    await subscribed(port, "lobby", 2);
    first.sendMsgpack({ type: "shout", data: PAYLOAD });
    const [atA, atB, jsonAtB] = await Promise.all([first.event("shouted"), forwarded.event("shouted"), json.event("shouted")]);
    assert.deepEqual([atA.binary, atB.binary, jsonAtB.binary], [true, true, false]);
    assert.deepEqual(atB.frame.data, { type: "shouted", ...PAYLOAD });
    assert.deepEqual(jsonAtB.frame.data, atB.frame.data);
    for (const client of [first, forwarded, json]) client.socket.close();
  });

  test("warren_bytes_sent_total counts the bytes a MessagePack socket sent, not their JSON size", async () => {
    const { server, url } = await serve({ ...app(), metrics: true });
    const bytesSent = () => sample(server.metrics(), "warren_bytes_sent_total");
    const before = bytesSent();
    const socket = new WebSocket(`${url}?encoding=msgpack&user=cy`);
    let received = 0;
    let jsonSize = 0;
    let echoes = 0;
    const done = new Promise<void>((resolve) =>
      socket.on("message", (data: Buffer, isBinary: boolean) => {
        assert.equal(isBinary, true);
        received += data.length;
        const frame = decodeMsgpack(new Uint8Array(data)) as Frame;
        jsonSize += Buffer.byteLength(JSON.stringify(frame));
        if (frame.type === "event" && frame.data?.type === "echoed" && ++echoes === 5) resolve();
      }),
    );
    await withTimeout(once(socket, "open"), "open");
    for (let i = 0; i < 5; i++) socket.send(encodeMsgpack({ type: "echo", data: PAYLOAD }));
    await withTimeout(done, "five echoes");
    socket.close();
    assert.ok(received < jsonSize, `MessagePack frames are smaller (${received} B against ${jsonSize} B as JSON)`);
    assert.equal(bytesSent() - before, received, "the counter matches what the socket carried");
  });

  test("an unknown encoding, and msgpack on a raw endpoint, are refused with 400 unsupported_encoding", async () => {
    const { url } = await serve(app());
    for (const target of [`${url}?encoding=cbor`, `${url}?encoding=`, `${url.replace(/\/ws$/, "/raw")}?encoding=msgpack`]) {
      const refused = await refusedUpgrade(target);
      assert.equal(refused.status, 400, target);
      assert.equal(refused.body.code, "unsupported_encoding", target);
      assert.equal(refused.opened, false);
    }
    assert.match((await refusedUpgrade(`${url}?encoding=cbor`)).body.error, /json or msgpack/);
    // Raw endpoints accept the default spelled out, and echo binary as they always did.
    const raw = await WireClient.open(`${url.replace(/\/ws$/, "/raw")}?encoding=json`);
    const got = new Promise<Buffer>((resolve) => raw.socket.once("message", (data: Buffer) => resolve(data)));
    raw.socket.send(Buffer.from([0xc1, 0x00]));
    assert.deepEqual([...(await withTimeout(got, "raw echo"))], [0xc1, 0x00]);
    raw.socket.close();
  });

  test("hostile binary frames get a bad_msgpack system error and the session carries on", async () => {
    const { url } = await serve(app());
    const wire = await WireClient.open(`${url}?encoding=msgpack&user=eve`);
    const deep = new Uint8Array(200_000).fill(0x91); // arrays nested 200,000 deep
    const hostile = [
      new Uint8Array([0xc1]), // reserved marker
      new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), // 4 billion elements announced, none sent
      deep,
      new Uint8Array([0x81, 0xa4, ...Buffer.from("type"), 0xc4, 0x01, 0x00]), // a bin value
      new Uint8Array([0x81, 0x01, 0x02]), // an integer key
      new Uint8Array([0xa2, 0xff, 0xfe]), // a string that is not UTF-8
      new Uint8Array([0xc0, 0xc0]), // two values
    ];
    for (const bytes of hostile) {
      wire.sendMsgpack(bytes);
      const error = await wire.systemError();
      assert.equal(error.binary, true);
      assert.equal(error.frame.data.code, "bad_msgpack");
    }
    // Valid MessagePack that is not a valid frame gets the protocol's usual error.
    wire.sendMsgpack([1, 2]);
    assert.equal((await wire.systemError()).frame.data.code, "bad_frame");
    // Text on a MessagePack socket is read as JSON; the answer is MessagePack.
    wire.sendJson({ type: "call", id: 1, event: "add", data: { a: 1, b: 2 } });
    assert.deepEqual(await wire.next((f) => f.type === "reply", "reply to text"), {
      binary: true,
      frame: { type: "reply", id: 1, data: 3, seq: 1 },
    });
    // A JSON session still refuses binary frames.
    const json = await WireClient.open(`${url}?user=joe`);
    json.sendMsgpack({ type: "ping" });
    const refused = await json.systemError();
    assert.deepEqual([refused.binary, refused.frame.data.code], [false, "binary_unsupported"]);
    json.socket.close();
    wire.socket.close();
  });

  test("in Chromium, the browser build of the client speaks MessagePack", { timeout: 60_000 }, async (t) => {
    const { chromium } = await import("playwright-core");
    const root = await mkdtemp(join(tmpdir(), "warren-msgpack-page-"));
    t.after(() => rm(root, { recursive: true, force: true }));
    await copyFile(new URL("../client/index.mjs", import.meta.url), join(root, "client.mjs"));
    await writeFile(join(root, "index.html"), "<!doctype html><title>msgpack</title>");
    const { url } = await serve({ ...app(), static: root });
    const browser = await withTimeout(
      chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] }),
      "Chromium to start",
    );
    t.after(() => withTimeout(browser.close(), "Chromium to close").catch(() => undefined));
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(url.replace(/^ws/, "http").replace(/\/ws$/, "/index.html"));
    const result = await page.evaluate(
      async ({ socketUrl, payload }) => {
        const { WarrenClient } = await import("/client.mjs");
        const client = new WarrenClient(socketUrl, { encoding: "msgpack" });
        const echoed = new Promise((resolve) => client.on("echoed", resolve));
        client.emit("echo", payload);
        const sum = await client.call("add", { a: 2 ** 40, b: -0.5 });
        const data = await echoed;
        client.close();
        return { data, sum };
      },
      { socketUrl: `${url}?user=browser`, payload: PAYLOAD },
    );
    assert.deepEqual(result, { data: { type: "echoed", ...PAYLOAD }, sum: 2 ** 40 - 0.5 });
    assert.deepEqual(pageErrors, []);
  });

  test("the client's codec writes standard MessagePack and reads what JSON would", () => {
    assert.deepEqual(
      [...encodeMsgpack({ type: "ping", n: [-1, 200, 1.5] })],
      [0x82, 0xa4, ...Buffer.from("type"), 0xa4, ...Buffer.from("ping"), 0xa1, 0x6e, 0x93, 0xff, 0xcc, 200, 0xca, 0x3f, 0xc0, 0, 0],
    );
    const value = JSON.parse('{"__proto__":{"x":1},"big":9007199254740991,"neg":-9007199254740991}');
    const back = decodeMsgpack(encodeMsgpack(value)) as Record<string, unknown>;
    assert.deepEqual(back, value);
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.throws(() => decodeMsgpack(new Uint8Array([0xc4, 0])), /no JSON form/);
    assert.throws(() => decodeMsgpack(new Uint8Array(1000).fill(0x91)), /too deep/);
  });
});
