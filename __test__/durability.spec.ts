import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createServer, defineConnection } from "../index.js";
import { TestClient, withTimeout } from "./helpers.js";

const fixture = fileURLToPath(new URL("./fixtures/durable-server.mjs", import.meta.url));

async function storageDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "warren-durable-"));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts the fixture server in its own process on `dir`. */
async function startServer(dir: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [fixture, dir], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  // A failing test must not leave a server running (its pipes would keep the test alive).
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const [line] = (await withTimeout(once(child.stdout!, "data"), "the server to start")) as [Buffer];
  return { child, url: line.toString().trim() };
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = once(child, "exit");
  child.stdin!.end();
  await withTimeout(exited, "the server to exit");
}

describe("durable state", () => {
  test("state survives a restart of the server process on the same directory", async () => {
    const dir = await storageDir();
    let { child, url } = await startServer(dir);
    let client = await TestClient.open(`${url}?user=alice`);
    for (let i = 1; i <= 3; i++) assert.equal((await client.call("increment")).data, i);
    await client.close();
    await stopServer(child);

    ({ child, url } = await startServer(dir));
    client = await TestClient.open(`${url}?user=alice`);
    assert.deepEqual((await client.call("get")).data, { count: 3, visits: 2, scratch: "not persisted" });
    assert.equal((await client.call("increment")).data, 4);
    const other = await TestClient.open(`${url}?user=bob`);
    assert.deepEqual((await other.call("get")).data, { count: 0, visits: 1, scratch: "not persisted" });
    await Promise.all([client.close(), other.close()]);
    await stopServer(child);
  });

  test("persistedKeys limits what is stored", async () => {
    const dir = await storageDir();
    let { child, url } = await startServer(dir);
    let client = await TestClient.open(`${url}?user=carol`);
    assert.equal((await client.call("scribble", { text: "in memory only" })).data, true);
    assert.equal((await client.call("get")).data.scratch, "in memory only");
    await client.close();
    await stopServer(child);
    ({ child, url } = await startServer(dir));
    client = await TestClient.open(`${url}?user=carol`);
    assert.equal((await client.call("get")).data.scratch, "not persisted");
    await client.close();
    await stopServer(child);
  });

  test("Date, Map, Set, BigInt, RegExp and typed arrays come back as themselves", async () => {
    const dir = await storageDir();
    let { child, url } = await startServer(dir);
    let client = await TestClient.open(`${url}?user=dora`);
    assert.equal((await client.call("store-rich")).data, true);
    await client.close();
    await stopServer(child);
    ({ child, url } = await startServer(dir));
    client = await TestClient.open(`${url}?user=dora`);
    assert.deepEqual((await client.call("check-rich")).data, {
      when: "2026-11-22T10:00:00.000Z",
      tags: ["a", "b"],
      scores: [["alice", 3]],
      big: "12345678901234567890",
      pattern: "/war+en/gi",
      bytes: [1, 2, 3],
    });
    await client.close();
    await stopServer(child);
  });

  test("room lists and room state mutated in hooks survive a restart", async () => {
    const dir = await storageDir();
    let { child, url } = await startServer(dir);
    let client = await TestClient.open(`${url}?user=erin`);
    await client.call("join");
    assert.equal((await client.call("room-joins")).data, 1);
    await client.close();
    await stopServer(child);
    ({ child, url } = await startServer(dir));
    client = await TestClient.open(`${url}?user=erin`);
    // Erin is back in the lobby without joining again: the stored room list was re-joined.
    client.emit("lobby");
    assert.equal((await client.event("lobby")).from, "erin");
    assert.equal((await client.call("room-joins")).data, 2);
    await client.close();
    await stopServer(child);
  });

  test("a second server on the same directory gets a clear error", async () => {
    const dir = await storageDir();
    const Conn = defineConnection({ name: "Owner" });
    const first = createServer({ connections: [Conn], storage: dir });
    assert.throws(() => createServer({ connections: [Conn], storage: dir }), /in use by another warren server/);
    await first.close();
    const again = createServer({ connections: [Conn], storage: dir });
    await again.close();
  });

  test("an acknowledged count survives SIGKILL at any moment (strict durability)", async () => {
    const dir = await storageDir();
    let acknowledged = 0;
    // `npm run stress` repeats it 50 times.
    const rounds = Number(process.env.CRASH_ROUNDS ?? 5);
    for (let round = 0; round < rounds; round++) {
      const { child, url } = await startServer(dir);
      const client = await TestClient.open(`${url}?user=crash`);
      const stored = (await client.call("get")).data.count;
      assert.ok(stored >= acknowledged, `round ${round}: stored ${stored} < acknowledged ${acknowledged}`);
      acknowledged = stored;
      const killAfter = 5 + Math.floor(Math.random() * 60);
      let sent = 0;
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        const pump = async () => {
          while (child.exitCode === null && child.signalCode === null) {
            const reply = await Promise.race([client.call("increment"), client.closed.then(() => null)]);
            if (reply === null) return;
            acknowledged = reply.data;
            if (++sent === killAfter) child.kill("SIGKILL");
          }
        };
        pump().catch(() => undefined);
      });
      assert.ok(acknowledged > 0);
    }
    const { child, url } = await startServer(dir);
    const client = await TestClient.open(`${url}?user=crash`);
    assert.ok((await client.call("get")).data.count >= acknowledged);
    await client.close();
    await stopServer(child);
  });
});
