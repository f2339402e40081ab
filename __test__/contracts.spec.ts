import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WebSocket } from "ws";
import { z } from "zod";
import { defineConnection, defineContract, payload, PayloadError, WarrenError, type StandardSchemaV1 } from "../index.js";
import { WarrenClient, WarrenClientError } from "../client/index.js";
import { eventually, refusedUpgrade, serve, TestClient } from "./helpers.js";

/** A Standard Schema written by hand: warren needs no schema library, only `~standard`. */
function positive(): StandardSchemaV1<{ n: number }> {
  return {
    "~standard": {
      version: 1,
      vendor: "test",
      validate: (value) =>
        typeof (value as { n?: unknown } | null)?.n === "number" && (value as { n: number }).n > 0
          ? { value: value as { n: number } }
          : { issues: [{ message: "n must be a positive number", path: ["n"] }] },
    },
  };
}

/** An async schema (a refinement that awaits). */
const slowName = z.object({ name: z.string() }).refine(async (v) => {
  await new Promise((r) => setTimeout(r, 5));
  return v.name !== "taken";
}, "name is taken");

const echo = defineContract({
  clientEvents: { echo: z.object({ text: z.string().min(1) }), count: positive(), claim: slowName },
  serverEvents: { "echo.reply": payload<{ text: string }>() },
  calls: {
    double: { args: z.object({ n: z.string().transform(Number) }), result: payload<number>() },
    free: { result: payload<string>() },
  },
  params: z.object({ room: z.string() }),
});

const errors: unknown[] = [];
const seen: unknown[] = [];
const Echo = defineConnection({
  name: "Echo",
  contract: echo,
  extractMeta: (req) => ({ userId: `${req.params.room}-${Math.random()}` }),
  onError: (error) => void errors.push(error),
});
Echo.on("echo", (ctx, data) => {
  seen.push(data);
  ctx.emit("echo.reply", { text: data.text });
});
Echo.on("count", (ctx, data) => {
  seen.push(data);
  ctx.emit("echo.reply", { text: String(data.n) });
});
Echo.on("claim", (ctx, data) => {
  seen.push(data);
  ctx.emit("echo.reply", { text: data.name });
});
Echo.on("double", (_ctx, { n }) => n * 2);
Echo.on("free", () => "ok");

/** Types only: nothing runs per message. */
const Loose = defineConnection({
  name: "Loose",
  websocketPath: "/loose",
  contract: defineContract({ clientEvents: { echo: payload<{ text: string }>() } }),
});
Loose.on("echo", (ctx, data) => void ctx.emit("echo.reply", { text: data.text }));

const params = encodeURIComponent(JSON.stringify({ room: "r" }));

describe("contracts", () => {
  test("a call whose argument fails its schema gets a bad_payload reply with the issues in meta, and onError hears it", async () => {
    errors.length = 0;
    const { url } = await serve({ connections: [Echo] });
    const client = await TestClient.open(`${url}?params=${params}`);
    assert.equal((await client.call("double", { n: "21" })).data, 42);
    const { error } = await client.call("double", { n: 21 });
    assert.equal(error.code, "bad_payload");
    assert.equal(error.meta.event, "double");
    assert.deepEqual(error.meta.issues.map((i: { path: unknown }) => i.path), [["n"]]);
    assert.equal(typeof error.meta.issues[0].message, "string");
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof PayloadError);
    assert.equal((errors[0] as PayloadError).code, "bad_payload");
    assert.equal((await client.call("free")).data, "ok");
  });

  test("an event whose data fails its schema never reaches the handler; the client gets system:error bad_payload", async () => {
    errors.length = 0;
    seen.length = 0;
    const { url } = await serve({ connections: [Echo] });
    const client = await TestClient.open(`${url}?params=${params}`);
    client.emit("echo", { text: "" });
    const refused = await client.event("system:error");
    assert.equal(refused.code, "bad_payload");
    assert.equal(refused.event, "echo");
    assert.deepEqual(refused.issues[0].path, ["text"]);
    client.emit("count", { n: -1 });
    assert.deepEqual((await client.event("system:error")).issues, [{ message: "n must be a positive number", path: ["n"] }]);
    client.emit("echo", { text: "hi" });
    assert.equal((await client.event("echo.reply")).text, "hi");
    assert.deepEqual(seen, [{ text: "hi" }]);
    assert.equal(errors.length, 2);
    assert.ok(errors.every((e) => e instanceof PayloadError));
  });

  test("async schemas gate the handler too", async () => {
    seen.length = 0;
    const { url } = await serve({ connections: [Echo] });
    const client = await TestClient.open(`${url}?params=${params}`);
    client.emit("claim", { name: "taken" });
    assert.equal((await client.event("system:error")).issues[0].message, "name is taken");
    client.emit("claim", { name: "free" });
    assert.equal((await client.event("echo.reply")).text, "free");
    assert.deepEqual(seen, [{ name: "free" }]);
  });

  test("params that fail the contract's schema are refused with 400 bad_params before any hook", async () => {
    const { url } = await serve({ connections: [Echo] });
    const refused = await refusedUpgrade(`${url}?params=${encodeURIComponent(JSON.stringify({ room: 5 }))}`);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.code, "bad_params");
    assert.equal(refused.opened, false);
  });

  test("a contract of type markers runs nothing: any payload reaches the handler", async () => {
    const { url } = await serve({ connections: [Loose] });
    const client = await TestClient.open(url.replace(/\/ws$/, "/loose"));
    client.emit("echo", { text: 5 });
    assert.equal((await client.event("echo.reply")).text, 5);
  });

  test("WarrenClient typed from the definition: calls resolve and a refused call rejects with bad_payload", async () => {
    const { url } = await serve({ connections: [Echo] });
    const client = new WarrenClient<typeof Echo>(url, { WebSocket, params: { room: "r" } });
    try {
      const replies: string[] = [];
      client.on("echo.reply", ({ text }) => void replies.push(text));
      assert.equal(await client.call("double", { n: "4" }), 8);
      client.emit("echo", { text: "typed" });
      await eventually(() => replies.length === 1, "echo.reply");
      assert.deepEqual(replies, ["typed"]);
      const rejected = await client.call("double", { n: 4 as unknown as string }).catch((e: unknown) => e);
      assert.ok(rejected instanceof WarrenClientError);
      assert.equal(rejected.code, "bad_payload");
      assert.deepEqual((rejected.meta as { issues: Array<{ path: unknown }> }).issues[0]!.path, ["n"]);
    } finally {
      client.close();
    }
  });

  test("a malformed contract is refused when the connection is defined", () => {
    assert.throws(
      () => defineConnection({ name: "Bad", contract: { clientEvents: { x: 5 } } as never }),
      (error: unknown) => error instanceof WarrenError && error.code === "invalid_option" && /clientEvents\["x"\]/.test(error.message),
    );
  });
});
