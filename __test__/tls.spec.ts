// wss:// on warren's own listener: rustls with a certificate made in the test (self-signed, for
// 127.0.0.1), clear `invalid_tls` errors for a bad certificate or key, and setTls replacing the
// certificate for new connections without a restart.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import tls from "node:tls";
import { test, type TestContext } from "node:test";
import { generate } from "selfsigned";
import { WebSocket } from "ws";

import { decodeMsgpack, encodeMsgpack } from "../client/msgpack";
import { createServer, defineConnection, WarrenError, type WarrenServer } from "../index.js";
import { withTimeout } from "./helpers.js";

interface Certificate {
  cert: string;
  key: string;
}

async function certificate(name: string): Promise<Certificate> {
  const made = await generate([{ name: "commonName", value: name }], {
    keySize: 2048,
    extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }, { type: 2, value: "localhost" }] }],
  });
  return { cert: made.cert, key: made.private };
}

const Echo = defineConnection({ name: "TlsSpec", websocketPath: "/ws" });
Echo.on("echo", (_ctx, data) => data);

async function secureServer(t: TestContext, certificate: Certificate): Promise<{ server: WarrenServer; url: string; port: number }> {
  const server = createServer({ connections: [Echo], storage: ":memory:", tls: certificate });
  t.after(() => server.close());
  const { url, port } = await server.listen({ port: 0, host: "127.0.0.1" });
  return { server, url, port };
}

/** The SHA-256 of the certificate the server at `port` presents now (PEM of `trusted` accepted). */
async function presented(port: number, trusted: string[]): Promise<string> {
  const socket = tls.connect({ port, host: "127.0.0.1", ca: trusted, servername: "localhost" });
  await withTimeout(once(socket, "secureConnect"), "TLS handshake");
  const der = socket.getPeerCertificate().raw;
  socket.destroy();
  return createHash("sha256").update(der).digest("hex");
}

function fingerprint(pem: string): string {
  return createHash("sha256").update(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64")).digest("hex");
}

test("wss:// with a self-signed certificate: the client verifies it and calls round-trip", async (t) => {
  const mine = await certificate("warren test");
  const { url } = await secureServer(t, mine);
  assert.match(url, /^wss:\/\/127\.0\.0\.1:\d+\/ws$/);
  const socket = new WebSocket(url, { ca: mine.cert });
  await withTimeout(once(socket, "open"), "wss open");
  socket.send(JSON.stringify({ type: "call", id: 1, event: "echo", data: { over: "tls" } }));
  const [reply] = await withTimeout(once(socket, "message"), "the reply");
  const { type, id, data } = JSON.parse(String(reply));
  assert.deepEqual({ type, id, data }, { type: "reply", id: 1, data: { over: "tls" } });
  socket.close();
  await once(socket, "close");

  // A client that does not trust the certificate is refused by its own TLS stack.
  const stranger = new WebSocket(url);
  const [error] = await withTimeout(once(stranger, "error"), "the untrusted certificate");
  assert.match(String((error as Error).message), /self[- ]signed|unable to verify/i);
});

test("wss:// with encoding=msgpack: a call and its reply travel as binary MessagePack frames", async (t) => {
  const mine = await certificate("warren test");
  const { url } = await secureServer(t, mine);
  const socket = new WebSocket(`${url}?encoding=msgpack`, { ca: mine.cert });
  await withTimeout(once(socket, "open"), "wss open");
  socket.send(encodeMsgpack({ type: "call", id: 2, event: "echo", data: { over: "tls", n: 1.5 } }));
  const [reply, isBinary] = await withTimeout(once(socket, "message"), "the reply");
  assert.equal(isBinary, true);
  const { type, id, data } = decodeMsgpack(new Uint8Array(reply as Buffer)) as { type: string; id: number; data: unknown };
  assert.deepEqual({ type, id, data }, { type: "reply", id: 2, data: { over: "tls", n: 1.5 } });
  socket.close();
  await once(socket, "close");
});

test("a plain ws:// client on a wss:// port gets no socket, and the server keeps serving", async (t) => {
  const mine = await certificate("warren test");
  const { port, url } = await secureServer(t, mine);
  const plain = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  await withTimeout(once(plain, "error"), "the plain client's failure");
  const socket = new WebSocket(url, { ca: mine.cert });
  await withTimeout(once(socket, "open"), "wss open after");
  socket.close();
});

test("a bad certificate or key is invalid_tls at createServer, naming the option", async () => {
  const mine = await certificate("one");
  const other = await certificate("two");
  const attempt = (tlsOption: { cert: string | Buffer; key: string | Buffer }) => () =>
    createServer({ connections: [Echo], storage: ":memory:", tls: tlsOption });
  const invalid = (pattern: RegExp) => (error: unknown) => {
    assert.ok(error instanceof WarrenError || (error instanceof Error && "code" in error));
    assert.equal((error as WarrenError).code, "invalid_tls");
    assert.match((error as Error).message, pattern);
    return true;
  };
  assert.throws(attempt({ cert: "not a certificate", key: mine.key }), invalid(/tls\.cert holds no PEM certificate/));
  assert.throws(attempt({ cert: mine.cert, key: "not a key" }), invalid(/tls\.key/));
  assert.throws(attempt({ cert: mine.cert, key: other.key }), invalid(/cannot be used together/));
  assert.throws(
    () => createServer({ connections: [Echo], storage: ":memory:", tls: { cert: 42 as unknown as string, key: mine.key } }),
    { code: "invalid_option" },
  );
  // Buffers are PEM too.
  const server = createServer({ connections: [Echo], storage: ":memory:", tls: { cert: Buffer.from(mine.cert), key: Buffer.from(mine.key) } });
  await server.close();
});

test("setTls serves a new certificate to new connections without a restart; a bad one keeps the old", async (t) => {
  const first = await certificate("first");
  const second = await certificate("second");
  const { server, port, url } = await secureServer(t, first);
  const open = new WebSocket(url, { ca: first.cert });
  await withTimeout(once(open, "open"), "a socket under the first certificate");
  assert.equal(await presented(port, [first.cert, second.cert]), fingerprint(first.cert));

  server.setTls(second);
  assert.equal(await presented(port, [first.cert, second.cert]), fingerprint(second.cert));
  assert.throws(() => server.setTls({ cert: second.cert, key: first.key }), { code: "invalid_tls" });
  assert.equal(await presented(port, [first.cert, second.cert]), fingerprint(second.cert));

  // The socket opened under the first certificate lives on.
  open.send(JSON.stringify({ type: "call", id: 1, event: "echo", data: 1 }));
  const [reply] = await withTimeout(once(open, "message"), "the old socket's reply");
  const { type, id, data } = JSON.parse(String(reply));
  assert.deepEqual({ type, id, data }, { type: "reply", id: 1, data: 1 });
  open.close();

  const plain = createServer({ connections: [Echo], storage: ":memory:" });
  t.after(() => plain.close());
  assert.throws(() => plain.setTls(second), { code: "invalid_argument" });
});
