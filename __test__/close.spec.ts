import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createServer, defineConnection } from "../index.js";
import { TestClient, withTimeout } from "./helpers.js";

const fixture = fileURLToPath(new URL("./fixtures/close-and-exit.mjs", import.meta.url));

async function runFixture(...args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, [fixture, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  const [code] = (await withTimeout(once(child, "exit"), "the process to exit by itself")) as [number | null];
  return { code, stdout };
}

describe("closing", () => {
  test("close() closes sockets with 1001, runs onDisconnect and onDestroy, and the process exits", async () => {
    const { code, stdout } = await runFixture();
    assert.equal(code, 0);
    assert.equal(stdout.trim(), "disconnect:1001 destroy:shutdown client:1001");
  });

  test("an unref'd server lets the process exit while listening", async () => {
    const { code, stdout } = await runFixture("unref");
    assert.equal(code, 0);
    assert.equal(stdout.trim(), "exiting while listening");
  });

  test("a server nobody references keeps serving after garbage collection", async () => {
    const script = fileURLToPath(new URL("./fixtures/collected-server.mjs", import.meta.url));
    const child = spawn(process.execPath, ["--expose-gc", script], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    const [code] = (await withTimeout(once(child, "exit"), "the process to exit")) as [number | null];
    assert.equal(stdout.trim(), "alive");
    assert.equal(code, 0);
  });

  test("the port can be bound again after close()", async () => {
    const Conn = defineConnection({ name: "Rebind" });
    const first = createServer({ connections: [Conn], storage: ":memory:" });
    const { port } = await first.listen({ port: 0 });
    const client = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
    await first.close();
    assert.equal((await withTimeout(client.closed, "close")).code, 1001);
    const second = createServer({ connections: [Conn], storage: ":memory:" });
    assert.equal((await second.listen({ port })).port, port);
    await second.close();
    await assert.rejects(first.listen({ port: 0 }), /closed/);
  });

  test("two servers run side by side in one process", async () => {
    const A = defineConnection({ name: "A", onConnect: (ctx) => ctx.emit("server", { name: "a" }) });
    const B = defineConnection({ name: "B", onConnect: (ctx) => ctx.emit("server", { name: "b" }) });
    const a = createServer({ connections: [A], storage: ":memory:" });
    const b = createServer({ connections: [B], storage: ":memory:" });
    const [addressA, addressB] = [await a.listen(), await b.listen()];
    const clientA = await TestClient.open(addressA.url);
    const clientB = await TestClient.open(addressB.url);
    assert.equal((await clientA.event("server")).name, "a");
    assert.equal((await clientB.event("server")).name, "b");
    await a.close();
    assert.equal((await withTimeout(clientA.closed, "close")).code, 1001);
    const again = await TestClient.open(addressB.url);
    assert.equal((await again.event("server")).name, "b");
    await b.close();
  });

  test("options are validated when the server is created", () => {
    const Conn = defineConnection({ name: "Valid" });
    assert.throws(() => createServer({ connections: [] }), /at least one/);
    assert.throws(() => createServer({ connections: [{ name: "fake" } as any] }), /defineConnection/);
    assert.throws(() => createServer({ connections: [Conn, Conn] }), /two connection definitions/);
    assert.throws(() => createServer({ connections: [Conn], maxPayloadBytes: -1 }), /maxPayloadBytes/);
    assert.throws(() => createServer({ connections: [Conn], backpressure: "maybe" as any }), /backpressure/);
    assert.throws(() => defineConnection({ name: "" }), /name/);
    assert.throws(() => defineConnection({ name: "x", websocketPath: "ws" }), /websocketPath/);
  });
});
