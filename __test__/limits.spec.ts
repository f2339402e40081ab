import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection, type Socket } from "node:net";
import { describe, test } from "node:test";
import WebSocket from "ws";
import { defineConnection } from "../index.js";
import { serve, TestClient, withTimeout } from "./helpers.js";

const Conn = defineConnection({
  name: "Limited",
  extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
});

/** Opens a socket and reports whether it opened (true) or was refused over HTTP (false). */
async function tryOpen(url: string): Promise<{ opened: boolean; socket: WebSocket }> {
  const socket = new WebSocket(url);
  socket.on("error", () => {});
  const opened = await withTimeout(
    new Promise<boolean>((resolve) => {
      socket.once("open", () => resolve(true));
      socket.once("unexpected-response", () => resolve(false));
    }),
    `the upgrade of ${url}`,
  );
  return { opened, socket };
}

/**
 * Opens `count` TCP connections that never send a byte, and waits until the server counts
 * `accepted` connections in all.
 */
async function silentSockets(
  port: number,
  server: { stats(): { connections: number } },
  count: number,
  accepted: number,
): Promise<Socket[]> {
  const silent: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.on("error", () => {});
    silent.push(socket);
  }
  await Promise.all(silent.map((socket) => once(socket, "connect")));
  await withTimeout(
    (async () => {
      while (server.stats().connections < accepted) await new Promise((r) => setImmediate(r));
    })(),
    `the server to accept ${accepted} silent sockets`,
  );
  return silent;
}

describe("limits", () => {
  test("a resume token of another user's waiting session does not get around maxSessions", async () => {
    const { url, server } = await serve({ connections: [Conn], maxSessions: 5 });
    const alice = await TestClient.open(`${url}?user=alice&_resume=`);
    const { token } = await alice.next((f) => f.type === "session", "alice's token");
    alice.socket.terminate();
    await withTimeout(
      (async () => {
        while (server.stats().detached !== 1) await new Promise((r) => setImmediate(r));
      })(),
      "alice's session to wait for a resume",
    );
    const attempts = [];
    for (let i = 0; i < 20; i++) {
      attempts.push(await tryOpen(`${url}?user=intruder${i}&_resume=${token}&_lastSeq=0`));
    }
    const admitted = attempts.filter((a) => a.opened).length;
    for (const { socket } of attempts) socket.terminate();
    // alice's waiting session holds one of the five places.
    assert.equal(admitted, 4, `admitted ${admitted}/20 at maxSessions: 5 with one session waiting`);
  });

  test("300 sockets that never finish their request head do not lock real users out", async () => {
    const { url, port, server } = await serve({ connections: [Conn], maxSessions: 5 });
    const silent = await silentSockets(port, server, 300, 300);
    const users = [];
    for (let i = 0; i < 5; i++) users.push(await tryOpen(`${url}?user=real${i}`));
    const opened = users.filter((u) => u.opened).length;
    for (const { socket } of users) socket.terminate();
    for (const socket of silent) socket.destroy();
    assert.equal(opened, 5, `real users in: ${opened}/5`);
  });

  test("handshakes in progress are bounded by maxPendingHandshakes", async () => {
    const { url, port, server } = await serve({ connections: [Conn], maxPendingHandshakes: 10 });
    const silent = await silentSockets(port, server, 20, 10);
    assert.equal(server.stats().connections, 10);
    // The other ten wait in the backlog; a real user behind them gets in once they are gone.
    const user = tryOpen(`${url}?user=real`);
    for (const socket of silent) socket.destroy();
    const { opened, socket } = await user;
    socket.terminate();
    assert.equal(opened, true);
  });
});
