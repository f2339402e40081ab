import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { request } from "node:http";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { defineConnection } from "../index.js";
import { serve, TestClient, withTimeout } from "./helpers.js";

const Conn = defineConnection({ name: "Protocol" });
Conn.on("echo", (ctx, data) => ctx.emit("echo", data));

function httpGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("wire protocol", () => {
  test("ping is answered with pong by the native core while the JS thread is blocked", async () => {
    const child = spawn(process.execPath, [fileURLToPath(new URL("./fixtures/blocking-server.mjs", import.meta.url))], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    try {
      const [line] = (await withTimeout(once(child.stdout, "data"), "child server")) as [Buffer];
      const client = await TestClient.open(line.toString().trim());
      client.emit("block", { ms: 1500 });
      // Give the handler time to start blocking, measured by nothing but the child's own work:
      // the pong must still come before "unblocked".
      await new Promise((r) => setTimeout(r, 200));
      client.send({ type: "ping" });
      await client.next((f) => f.type === "pong", "pong");
      await client.event("unblocked");
      const order = client.history.map((f) => (f.type === "pong" ? "pong" : f.data?.type));
      assert.deepEqual(order, ["pong", "unblocked"]);
      await client.close();
    } finally {
      child.stdin.end();
      await withTimeout(once(child, "exit"), "child exit");
    }
  });

  test("malformed frames get a system:error event and the connection stays open", async () => {
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(url);
    client.send("{not json");
    assert.deepEqual(await client.event("system:error"), {
      type: "system:error",
      code: "bad_frame",
      message: 'frames must be JSON objects with a string "type"',
    });
    client.send({ noType: true });
    assert.equal((await client.event("system:error")).code, "bad_frame");
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await client.event("system:error")).code, "binary_unsupported");
    client.emit("echo", { still: "open" });
    assert.deepEqual(await client.event("echo"), { type: "echo", still: "open" });
  });

  test("a frame over maxPayloadBytes closes the socket with 1009", async () => {
    const { url } = await serve({ connections: [Conn], maxPayloadBytes: 1024 });
    const client = await TestClient.open(url);
    client.emit("echo", { pad: "x".repeat(2000) });
    assert.equal((await withTimeout(client.closed, "close")).code, 1009);
  });

  test("a fragmented message over maxPayloadBytes closes with 1009 and the client receives it, 10 times out of 10", async () => {
    const { url } = await serve({ connections: [Conn], maxPayloadBytes: 1024 });
    const codes: number[] = [];
    for (let round = 0; round < 10; round++) {
      const client = await TestClient.open(url);
      // 2 MiB in 64 KiB fragments: the client is still sending when the server closes.
      const fragment = "x".repeat(64 * 1024);
      for (let i = 0; i < 32; i++) client.socket.send(fragment, { fin: false });
      client.socket.send(fragment, { fin: true });
      codes.push((await withTimeout(client.closed, "close")).code);
    }
    assert.deepEqual(codes, Array(10).fill(1009), `close codes seen: ${codes.join(",")}`);
  });

  test("an HTTP error answer is read completely by a client that sent a body", async () => {
    const { port } = await serve({ connections: [Conn] });
    const { createConnection } = await import("node:net");
    const answers: string[] = [];
    for (let round = 0; round < 10; round++) {
      const socket = createConnection({ host: "127.0.0.1", port });
      await once(socket, "connect");
      let answer = "";
      socket.on("data", (chunk) => (answer += chunk));
      socket.on("error", () => {});
      // Like most HTTP clients, it reads the answer once the body is sent; the body is more
      // than the socket buffers hold, so the server answers (and closes) while it is sent.
      socket.pause();
      const body = Buffer.alloc(2 << 20, 0x61);
      socket.write(`POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
      const closed = new Promise((resolve) => socket.on("close", resolve));
      socket.write(body, () => socket.resume());
      await withTimeout(closed, "the connection to close");
      answers.push(answer);
    }
    const complete = answers.filter((a) => a.startsWith("HTTP/1.1 404") && a.endsWith('{"error":"not found"}')).length;
    assert.equal(complete, 10, `complete answers: ${complete}/10`);
  });

  test("plain HTTP: /healthz is 200, a socket path without upgrade is 426, other paths 404", async () => {
    const { port } = await serve({ connections: [Conn] });
    assert.deepEqual(await httpGet(port, "/healthz"), { status: 200, body: '{"status":"ok"}' });
    const plain = await httpGet(port, "/ws");
    assert.equal(plain.status, 426);
    assert.equal((await httpGet(port, "/elsewhere")).status, 404);
  });

  test("a client that sends nothing is dropped after the handshake timeout", async () => {
    const { port } = await serve({ connections: [Conn], handshakeTimeoutMs: 100 });
    const { createConnection } = await import("node:net");
    const socket = createConnection({ host: "127.0.0.1", port });
    await once(socket, "connect");
    socket.resume();
    await withTimeout(once(socket, "close"), "server to drop the silent socket");
  });
});

describe("static files", () => {
  test("a static directory is served beside the sockets, and paths outside it are refused", async () => {
    const { mkdtemp, mkdir, writeFile, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const base = await mkdtemp(join(tmpdir(), "warren-static-"));
    try {
      const root = join(base, "public");
      await mkdir(root);
      await writeFile(join(root, "index.html"), "<h1>chat</h1>");
      await writeFile(join(root, "app.js"), "export {}");
      await writeFile(join(base, "secret.txt"), "secret");
      const { port, url } = await serve({ connections: [Conn], static: root });
      assert.deepEqual(await httpGet(port, "/"), { status: 200, body: "<h1>chat</h1>" });
      assert.equal((await httpGet(port, "/app.js")).body, "export {}");
      for (const path of ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/missing.js"]) {
        assert.equal((await httpGet(port, path)).status, 404, path);
      }
      const client = await TestClient.open(url);
      client.emit("echo", { ok: true });
      assert.equal((await client.event("echo")).ok, true);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
