import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defineConnection } from "../index.js";
import { serve, TestClient } from "./helpers.js";

const errors: string[] = [];
const Conn = defineConnection({
  name: "Calls",
  state: { count: 0 },
  onError: (error) => void errors.push((error as Error).message),
});
Conn.on("add", (_ctx, data) => data.a + data.b);
Conn.on("increment", (ctx) => ++ctx.state.count);
Conn.on("later", async (_ctx, data) => {
  await new Promise((r) => setTimeout(r, data.ms));
  return { waited: data.ms };
});
Conn.on("nothing", () => undefined);
Conn.on("fail", () => {
  throw new Error("nope");
});
Conn.on("reject", async () => {
  throw new Error("async nope");
});
Conn.on("cyclic", () => {
  const value: any = {};
  value.self = value;
  return value;
});

describe("calls", () => {
  test("a call gets exactly one reply carrying the handler's return value", async () => {
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    // Every frame the server sends is numbered (`seq`), for resume; this server sent nothing else.
    assert.deepEqual(await client.call("add", { a: 2, b: 40 }), { type: "reply", id: 1, data: 42, seq: 1 });
    assert.deepEqual(await client.call("increment"), { type: "reply", id: 2, data: 1, seq: 2 });
    assert.deepEqual(await client.call("increment"), { type: "reply", id: 3, data: 2, seq: 3 });
    assert.deepEqual(await client.call("nothing"), { type: "reply", id: 4, data: null, seq: 4 });
    await client.call("add", { a: 0, b: 0 });
    assert.equal(client.frames.filter((f) => f.type === "reply").length, 0);
  });

  test("async handlers reply with the awaited value, and calls on one actor run concurrently", async () => {
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    const slow = client.call("later", { ms: 150 });
    const fast = client.call("later", { ms: 1 });
    const first = await Promise.race([slow.then(() => "slow"), fast.then(() => "fast")]);
    assert.equal(first, "fast");
    assert.deepEqual((await slow).data, { waited: 150 });
    assert.deepEqual((await fast).data, { waited: 1 });
  });

  test("thrown errors reply with internal_error (message hidden) and reach onError; the actor keeps working", async () => {
    errors.length = 0;
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    assert.deepEqual((await client.call("fail")).error, { code: "internal_error", message: "internal error" });
    assert.deepEqual((await client.call("reject")).error, { code: "internal_error", message: "internal error" });
    assert.equal((await client.call("unknown.event")).error.code, "unknown_event");
    assert.equal((await client.call("cyclic")).error.code, "bad_reply");
    assert.equal((await client.call("add", { a: 1, b: 1 })).data, 2);
    assert.deepEqual(errors.slice(0, 2), ["nope", "async nope"]);
  });

  test("call frames without an integer id or a string event get a system:error", async () => {
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    client.send({ type: "call", id: "x", event: "add" });
    assert.equal((await client.event("system:error")).code, "bad_call");
    client.send({ type: "call", id: 5 });
    assert.equal((await client.event("system:error")).code, "bad_call");
  });
});
