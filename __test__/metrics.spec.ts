/**
 * Prometheus metrics: `GET /metrics` (behind the admin token) and `server.metrics()` follow real
 * load — sessions of real sockets, calls by outcome, one commit observation per strict commit,
 * frames in and out, hibernated actors.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createServer, defineConnection, UserError } from "../index.js";
import { deferred, eventually, freePort, listenForTest, sample, serve, startRedis, TestClient, withTimeout } from "./helpers.js";

const TOKEN = "metrics-s3cret";

async function scrape(port: number, token?: string): Promise<{ status: number; type: string | null; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
    headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
  });
  return { status: response.status, type: response.headers.get("content-type"), text: await response.text() };
}

describe("metrics", () => {
  test("/metrics shows live sessions, refuses a request without the token, and matches server.metrics()", async () => {
    const Chat = defineConnection({ name: "Chat", extractMeta: (req) => ({ userId: req.query.get("u")! }) });
    const { server, port, url } = await serve({ connections: [Chat], metrics: true, adminToken: TOKEN });
    const clients = await Promise.all(["a", "b", "c"].map((u) => TestClient.open(`${url}?u=${u}`)));
    const refused = await scrape(port);
    assert.equal(refused.status, 401);
    assert.equal((await scrape(port, "wrong")).status, 401);
    const { status, type, text } = await scrape(port, TOKEN);
    assert.equal(status, 200);
    assert.match(type ?? "", /^text\/plain; version=0\.0\.4/);
    assert.equal(sample(text, "warren_sessions"), 3);
    assert.equal(sample(text, 'warren_actors{state="awake"}'), 3);
    assert.equal(sample(text, 'warren_actors{state="hibernated"}'), 0);
    // Every line is a comment or `name{labels} value`.
    for (const line of text.trim().split("\n")) {
      assert.match(line, /^(# (HELP|TYPE) \w+ .+|[a-z_]+(\{[^}]*\})? [0-9.e+Inf-]+)$/, line);
    }
    assert.equal(sample(server.metrics(), "warren_sessions"), 3);
    await clients[0]!.close();
    assert.ok(server.hibernate("Chat", "b"));
    const later = server.metrics();
    assert.equal(sample(later, "warren_sessions"), 2);
    assert.equal(sample(later, 'warren_actors{state="hibernated"}'), 1);
    await Promise.all(clients.slice(1).map((c) => c.close()));
  });

  test("without the option /metrics is not served, and without a token it is open", async () => {
    const Chat = defineConnection({ name: "Chat" });
    const off = await serve({ connections: [Chat] });
    assert.equal((await scrape(off.port)).status, 404);
    assert.match(off.server.metrics(), /^# HELP warren_sessions /m, "server.metrics() works without the route");
    const open = await serve({ connections: [Chat], metrics: true });
    assert.equal((await scrape(open.port)).status, 200);
  });

  test("calls are counted by outcome and timed; frames are counted both ways", async () => {
    const never = deferred();
    const Api = defineConnection({ name: "Api" })
      .on("ok", () => 1)
      .on("refuse", () => {
        throw new UserError("no", { code: "nope" });
      })
      .on("hang", () => never.promise)
      .on("note", () => {});
    const { server, url } = await serve({ connections: [Api], callTimeoutMs: 100 });
    const client = await TestClient.open(url);
    await client.call("ok");
    await client.call("ok");
    assert.equal((await client.call("refuse")).error.code, "nope");
    assert.equal((await client.call("hang")).error.code, "timeout");
    client.emit("note", {});
    await client.call("ok");
    const text = server.metrics();
    assert.equal(sample(text, 'warren_calls_total{outcome="ok"}'), 3);
    assert.equal(sample(text, 'warren_calls_total{outcome="error"}'), 1);
    assert.equal(sample(text, 'warren_calls_total{outcome="timeout"}'), 1);
    assert.equal(sample(text, "warren_call_seconds_count"), 5);
    assert.ok(sample(text, 'warren_call_seconds_bucket{le="0.1"}') < 5, "the timeout took 100 ms or more");
    assert.equal(sample(text, "warren_frames_received_total"), 6, "five calls and one event");
    assert.equal(sample(text, "warren_frames_sent_total"), 5, "five replies");
    assert.ok(sample(text, "warren_bytes_sent_total") > 5 * 20);
    assert.ok(sample(text, "warren_js_batch_seconds_count") >= 1);
    never.resolve();
    await client.close();
  });

  test("each commit under strict durability is one observation of warren_commit_seconds", async () => {
    const dir = await mkdtemp(join(tmpdir(), "warren-metrics-"));
    after(() => rm(dir, { recursive: true, force: true }));
    const Counter = defineConnection({ name: "Counter", state: { count: 0 } })
      .on("inc", (ctx) => ++ctx.state.count)
      .on("read", (ctx) => ctx.state.count);
    const server = createServer({ connections: [Counter], storage: dir, durability: "strict" });
    const { url } = await server.listen({ port: 0, host: "127.0.0.1" });
    after(() => server.close());
    const client = await TestClient.open(url);
    const before = sample(server.metrics(), "warren_commit_seconds_count");
    for (let i = 1; i <= 5; i++) {
      assert.equal((await client.call("inc")).data, i);
      // The reply left after the fsync, and the fsync observed the commit before releasing it.
      assert.equal(sample(server.metrics(), "warren_commit_seconds_count"), before + i);
    }
    await client.call("read");
    assert.equal(sample(server.metrics(), "warren_commit_seconds_count"), before + 5, "a call that changes nothing commits nothing");
    assert.equal(sample(server.metrics(), "warren_flush_failures_total"), 0);
    await client.close();
  });

  test("a slow consumer's close and dropped frames are counted", async (t) => {
    // 16 MiB in one tick to a client that reads nothing: more than the kernel's socket buffers
    // hold on loopback, so the session's frames pile up past its budget whatever the build.
    const Flood = defineConnection({ name: "Flood" }).on("flood", (ctx) => {
      const pad = "x".repeat(16 * 1024);
      for (let i = 0; i < 1024; i++) ctx.emit("big", { pad });
    });
    const closing = await serve({ connections: [Flood], maxBackpressure: 64 * 1024 });
    const reader = await TestClient.open(closing.url);
    // A paused socket never reads its close or EOF: it must be torn down, pass or fail.
    t.after(() => reader.socket.terminate());
    reader.socket.pause();
    reader.emit("flood", {});
    await eventually(() => sample(closing.server.metrics(), "warren_backpressure_closes_total") === 1, "a 1008 close to be counted");
    const dropping = await serve({ connections: [Flood], maxBackpressure: 64 * 1024, backpressure: "drop" });
    const slow = await TestClient.open(dropping.url);
    t.after(() => slow.socket.terminate());
    slow.socket.pause();
    slow.emit("flood", {});
    await eventually(() => sample(dropping.server.metrics(), "warren_frames_dropped_total") > 0, "dropped frames to be counted");
    // Its socket still takes nothing: shutdown gives its frames up instead of waiting for them.
    await withTimeout(dropping.server.close(), "close() with a session whose socket takes nothing");
  });

  test("cluster mode: frames forwarded per node and direction, and Redis commit round trips", { timeout: 60_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "warren-metrics-redis-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const stopRedis = await startRedis(port, dir);
    t.after(stopRedis);
    const Counter = defineConnection({
      name: "Counter",
      extractMeta: (req) => ({ userId: req.query.get("u")! }),
      state: { count: 0 },
    }).on("inc", (ctx) => ++ctx.state.count);
    const node = (nodeId: string) =>
      createServer({ connections: [Counter], storage: ":memory:", cluster: { redis: `redis://127.0.0.1:${port}`, nodeId } });
    const owner = node("metrics-a");
    const gateway = node("metrics-b");
    const a = await listenForTest(t, owner);
    const b = await listenForTest(t, gateway);
    const here = await TestClient.open(`${a.url}?u=ann`);
    assert.equal((await here.call("inc")).data, 1);
    // The same user on the other node: its session is forwarded to the node that owns the actor.
    const there = await TestClient.open(`${b.url}?u=ann`);
    assert.equal((await there.call("inc")).data, 2);
    const ownerText = owner.metrics();
    const gatewayText = gateway.metrics();
    assert.equal(sample(gatewayText, 'warren_forwarded_frames_total{node="metrics-a",direction="to_owner"}'), 1);
    assert.ok(sample(ownerText, 'warren_forwarded_frames_total{node="metrics-b",direction="to_gateway"}') >= 1);
    assert.ok(sample(ownerText, "warren_redis_commit_seconds_count") >= 2, "each commit went through Redis");
    assert.doesNotMatch(gatewayText, /node="metrics-b"/, "a node does not count itself");
    await here.close();
    await there.close();
  });

  test("metrics must be a boolean", () => {
    const Chat = defineConnection({ name: "Chat" });
    assert.throws(() => createServer({ connections: [Chat], storage: ":memory:", metrics: "yes" as unknown as boolean }), {
      code: "invalid_option",
    });
  });
});

