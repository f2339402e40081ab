/**
 * `createServer({ logger })` with a real pino writing JSON lines to a stream this test reads:
 * errors of user code carry the definition, event and actor key; what the native core reports
 * (tag 16: here a cluster node whose Redis restarted) arrives under `warren:native`; debug lines
 * come through at pino's debug level; the default logger stays on stderr.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Writable } from "node:stream";
import pino from "pino";
import { WebSocket } from "ws";
import { actorClient, actorUrl } from "../client/index.js";
import { Actor, createServer, defineConnection } from "../index.js";
import { freePort, listenForTest, serve, startRedis, TestClient, withTimeout } from "./helpers.js";

/** A pino logger at `level` whose JSON lines land in `lines`; `next(match)` waits for one. */
function capture(level = "info") {
  const lines: Array<Record<string, any>> = [];
  let waiters: Array<() => void> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
      const woken = waiters;
      waiters = [];
      for (const wake of woken) wake();
      done();
    },
  });
  const logger = pino({ level }, stream);
  const next = (match: (line: Record<string, any>) => boolean, what: string) =>
    withTimeout(
      (async () => {
        for (;;) {
          const found = lines.find(match);
          if (found) return found;
          await new Promise<void>((resolve) => waiters.push(resolve));
        }
      })(),
      what,
    );
  return { logger, lines, next };
}

describe("a pino logger", () => {
  test("a handler's error is logged with the definition, event, actor key and err", async () => {
    const { logger, next } = capture();
    const Chat = defineConnection({ name: "Chat", extractMeta: (req) => ({ userId: req.query.get("u")! }) })
      .on("boom", () => {
        throw new Error("kaboom");
      })
      .on("later", async () => {
        await Promise.resolve();
        throw new RangeError("too late");
      });
    const { url } = await serve({ connections: [Chat], logger });
    const client = await TestClient.open(`${url}?u=alice`);
    client.emit("boom", {});
    const line = await next((l) => l.err?.message === "kaboom", "the handler's error in the log");
    assert.equal(line.level, 50);
    assert.equal(line.module, "warren:hooks");
    assert.equal(line.definition, "Chat");
    assert.equal(line.event, "boom");
    assert.equal(line.key, "alice");
    assert.equal(line.err.type, "Error");
    assert.match(line.msg, /^Chat "boom" of "alice":/);
    const reply = await client.call("later");
    assert.equal(reply.error.code, "internal_error");
    const call = await next((l) => l.err?.message === "too late", "the call's rejection in the log");
    assert.deepEqual([call.event, call.key, call.err.type], ["later", "alice", "RangeError"]);
    await client.close();
  });

  test("debug lines reach pino at its debug level, as children named by module", async () => {
    const { logger, next } = capture("debug");
    const Chat = defineConnection({ name: "Chat" });
    const { url } = await serve({ connections: [Chat], logger });
    const client = await TestClient.open(url);
    const line = await next((l) => l.module === "warren:actors" && /enters the heap/.test(l.msg), "an actor's debug line");
    assert.equal(line.level, 20);
    await client.close();
  });

  test("what the native core reports (tag 16) is forwarded under warren:native", { timeout: 60_000 }, async (t) => {
    const { logger, next } = capture();
    const dir = mkdtempSync(join(tmpdir(), "warren-logger-redis-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    let stopRedis = await startRedis(port, dir);
    t.after(() => stopRedis());
    const Chat = defineConnection({ name: "Chat" });
    const server = createServer({ connections: [Chat], storage: ":memory:", logger, cluster: { redis: `redis://127.0.0.1:${port}`, nodeId: "logger-node" } });
    await listenForTest(t, server);
    // Redis goes away and comes back: the node's pub/sub link reconnects and says so.
    await stopRedis();
    stopRedis = await startRedis(port, dir);
    const line = await next((l) => /pub\/sub link to Redis is back/.test(l.msg ?? ""), "the native core's warning");
    assert.equal(line.level, 40);
    assert.equal(line.module, "warren:native");
  });

  test("an Actor class's this._log writes to the server's logger as warren:actor:<kind>", async (t) => {
    const { logger, next } = capture();
    class Greeter extends Actor {
      greet(): string {
        this._log.warn(`greeting ${this._key}`);
        return "hi";
      }
    }
    const { port } = await serve({ actors: { greeter: Greeter }, logger });
    const client = actorClient<Greeter>(actorUrl(`ws://127.0.0.1:${port}`, "greeter", "ann"), {
      WebSocket: WebSocket as never,
      reconnection: { enabled: false },
    });
    t.after(() => client.close());
    assert.equal(await client.greet(), "hi");
    const line = await next((l) => l.msg === "greeting ann", "the actor's own log line");
    assert.equal(line.level, 40);
    assert.equal(line.module, "warren:actor:greeter");
  });

  test("a logger that is not pino-compatible is refused with invalid_option", () => {
    const Chat = defineConnection({ name: "Chat" });
    assert.throws(() => createServer({ connections: [Chat], storage: ":memory:", logger: console as any }), { code: "invalid_option" });
  });
});
