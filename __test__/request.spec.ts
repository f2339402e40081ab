// The upgrade request that onBeforeConnect, extractMeta and an actor's _onBeforeConnect receive:
// shaped like a WHATWG Request (method, Headers, a real Request with an absolute http: URL) while
// keeping warren's own fields, over real sockets.
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, test } from "node:test";
import WebSocket from "ws";
import { Actor, defineConnection, type OnBeforeConnectOptions, type UpgradeRequest } from "../index.js";
import { deferred, serve, withTimeout } from "./helpers.js";

/** Opens a socket with extra request headers and waits until it is open. */
async function open(url: string, headers: Record<string, string>): Promise<WebSocket> {
  const socket = new WebSocket(url, { headers });
  socket.on("error", () => {});
  await withTimeout(once(socket, "open"), `open ${url}`);
  return socket;
}

describe("the upgrade request", () => {
  test("extractMeta and onBeforeConnect get one Request-shaped object: method, Headers, and a real Request", async () => {
    const before = deferred<UpgradeRequest>();
    const seen = deferred<UpgradeRequest>();
    const Conn = defineConnection({
      name: "Req",
      onBeforeConnect(req) {
        before.resolve(req);
      },
      extractMeta(req) {
        seen.resolve(req);
        const token = new URL(req.request.url).searchParams.get("token");
        return { userId: String(token), auth: req.headers.get("authorization") };
      },
    });
    const { url, port } = await serve({ connections: [Conn] });
    const socket = await open(`${url}?token=abc`, { authorization: "Bearer t", "x-trace": "1" });
    const req = await withTimeout(seen.promise, "extractMeta");
    assert.equal(await before.promise, req, "both hooks see the same object");
    assert.equal(req.method, "GET");
    assert.ok(req.headers instanceof Headers);
    assert.equal(req.headers.get("authorization"), "Bearer t");
    assert.equal(req.headers.get("X-Trace"), "1", "Headers lookups ignore case");
    assert.equal(req.headers["authorization"], "Bearer t", "entries are plain properties too");
    assert.equal(req.headers.get("absent"), null);
    assert.ok(req.request instanceof Request);
    assert.equal(req.request.url, `http://127.0.0.1:${port}/ws?token=abc`);
    assert.equal(req.request.method, "GET");
    assert.equal(req.request.headers.get("authorization"), "Bearer t");
    assert.equal(req.request, req.request, "built once");
    assert.equal(req.url, `http://127.0.0.1:${port}/ws?token=abc`, "url is absolute, as a Request's");
    assert.equal(req.query.get("token"), "abc");
    const copy = { ...req };
    assert.equal(copy.headers.get("x-trace"), "1", "spreading keeps headers and request");
    assert.equal(copy.request.url, req.request.url);
    socket.close();
  });

  test("a header named like a Headers method does not hide the method", async () => {
    const seen = deferred<UpgradeRequest>();
    const Conn = defineConnection({
      name: "Odd",
      extractMeta(req) {
        seen.resolve(req);
        return { userId: "u" };
      },
    });
    const { url } = await serve({ connections: [Conn] });
    const socket = await open(url, { get: "x", has: "y", "x-ok": "z" });
    const req = await withTimeout(seen.promise, "extractMeta");
    assert.equal(typeof req.headers.get, "function");
    assert.equal(req.headers.get("get"), "x");
    assert.equal(req.headers.get("has"), "y");
    assert.equal(req.headers["x-ok"], "z");
    socket.close();
  });

  test("an actor's _onBeforeConnect gets the same request, its key and the absolute URL included", async () => {
    const seen = deferred<OnBeforeConnectOptions<Gate>>();
    class Gate extends Actor<{ n: number }, { who: string }, { who: string; agent: string | null }> {
      protected override _onInitialize() {
        return { n: 0 };
      }
      protected override _onBeforeConnect(options: OnBeforeConnectOptions<Gate>) {
        seen.resolve(options);
        return { who: options.parameters.who, agent: options.request.headers.get("user-agent") };
      }
    }
    const { port } = await serve({ actors: { gate: Gate } });
    const params = encodeURIComponent(JSON.stringify({ who: "ann" }));
    const socket = await open(`ws://127.0.0.1:${port}/actors/gate/k%201?params=${params}`, { "user-agent": "probe/1" });
    const { request, parameters } = await withTimeout(seen.promise, "_onBeforeConnect");
    assert.deepEqual(parameters, { who: "ann" });
    assert.equal(request.key, "k 1");
    assert.equal(request.headers.get("user-agent"), "probe/1");
    assert.equal(request.request.url, `http://127.0.0.1:${port}/actors/gate/k%201?params=${params}`);
    socket.close();
  });
});
