/**
 * What an idle socket costs in the JS heap. Each socket of the fixture has its own connection
 * actor (persisted state, an `onConnect` hook), as in the benchmark app; until the actor uses its
 * state, context or emit, it is one small record and its session's. The server runs in its own
 * process so the clients' objects are not counted.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface, type Interface } from "node:readline";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { TestClient, withTimeout } from "./helpers.js";

const fixture = fileURLToPath(new URL("./fixtures/idle-server.mjs", import.meta.url));
/** Sockets opened for the measurement: enough that code and hash-table steps average out, few
 *  enough for a default limit of 1,024 open files. */
const SOCKETS = 500;
/** JS heap in use per idle socket, at most (measured about 450 B; it was 1.44 KiB). */
const BUDGET_BYTES = 900;

/** Starts the fixture; `heap()` asks it for its connected count and heap in use. */
async function startServer(): Promise<{ url: string; heap: () => Promise<{ connected: number; bytes: number }> }> {
  const child: ChildProcess = spawn(process.execPath, ["--expose-gc", fixture], { stdio: ["pipe", "pipe", "inherit"] });
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const lines: Interface = createInterface({ input: child.stdout! });
  const [url] = (await withTimeout(once(lines, "line"), "the server to start")) as [string];
  const heap = async () => {
    child.stdin!.write("heap\n");
    const [line] = (await withTimeout(once(lines, "line"), "the heap figure")) as [string];
    const [, connected, bytes] = line.split(" ");
    return { connected: Number(connected), bytes: Number(bytes) };
  };
  return { url, heap };
}

/** Opens a socket for `user` and resolves once it is open. */
async function openIdle(url: string, user: string): Promise<WebSocket> {
  const socket = new WebSocket(`${url}?user=${user}`);
  await withTimeout(once(socket, "open"), `socket of ${user} to open`);
  return socket;
}

describe("idle sockets", () => {
  test(`an idle socket with its own connection actor costs under ${BUDGET_BYTES} B of JS heap`, async () => {
    const { url, heap } = await startServer();
    const sockets: WebSocket[] = [];
    after(() => sockets.forEach((socket) => socket.terminate()));
    // Warm-up: the first sockets compile code and size the runtime's tables.
    for (let i = 0; i < 50; i++) sockets.push(await openIdle(url, `warm${i}`));
    const before = await heap();
    for (let i = 0; i < SOCKETS; i += 100) {
      const batch = Array.from({ length: 100 }, (_, j) => openIdle(url, `user${i + j}`));
      sockets.push(...(await Promise.all(batch)));
    }
    // Every onConnect has run once the server has counted them all.
    const measured = await withTimeout(
      (async () => {
        let figure = await heap();
        while (figure.connected < before.connected + SOCKETS) figure = await heap();
        return figure;
      })(),
      "every onConnect",
    );
    const perSocket = (measured.bytes - before.bytes) / SOCKETS;
    assert.ok(perSocket < BUDGET_BYTES, `${Math.round(perSocket)} B of JS heap per idle socket (budget ${BUDGET_BYTES})`);

    // Behaviour is unchanged: an actor that never used its state reads and writes it on demand.
    const client = await TestClient.open(`${url}?user=user7`);
    assert.equal((await client.call("increment")).data, 1);
    assert.equal((await client.call("increment")).data, 2);
    await client.close();
  });
});
