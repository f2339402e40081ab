// The Rivet-style class API (`class Counter extends Actor`, `createServer({ actors })`) and its
// typed client handle (`actorClient<Counter>`), over real sockets: lifecycle hooks, connection
// state, RPC and its errors, state and onStateChange, destroy, hibernation and a restart on disk.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test, type TestContext } from "node:test";
import { WebSocket } from "ws";

import { actorClient, actorUrl, WarrenClientError, type ActorClientOptions, type CloseInfo } from "../client/index.js";
import { Actor, createServer, UserError, type ActorConnection, type BeforeConnectOptions, type Rpc } from "../index.js";
import { refusedUpgrade, serve, withTimeout } from "./helpers.js";

interface CounterState {
  count: number;
  visits: number;
}
interface Params {
  name?: string;
  token?: string;
  probe?: boolean;
  /** Do not count the visit in `_onConnect`. */
  quiet?: boolean;
}
interface ConnState {
  name: string;
  quiet?: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Counter class with its own logs, so that tests do not share them. */
function counterApp() {
  const log: string[] = [];
  /** `_onStateChange` calls, as `count/visits`. */
  const changes: string[] = [];
  const params: unknown[] = [];
  const instances: WeakRef<object>[] = [];

  class Counter extends Actor<CounterState, Params, ConnState> {
    protected override _onInitialize(): CounterState {
      log.push(`initialize:${this._key}`);
      return { count: 0, visits: 0 };
    }

    protected override _onStart(): void {
      log.push(`start:${this._key}:${this._state.count}:${this._connections.size}`);
      instances.push(new WeakRef(this));
    }

    protected override _onStateChange(state: CounterState): void {
      changes.push(`${state.count}/${state.visits}`);
    }

    protected override _onBeforeConnect({ parameters, request }: BeforeConnectOptions<Params>): ConnState {
      params.push(parameters);
      if (parameters?.token === "bad") throw new UserError("bad token", { code: "forbidden" });
      if (parameters?.probe) {
        try {
          void this._state;
        } catch (error) {
          return { name: (error as { code: string }).code };
        }
      }
      return { name: parameters?.name ?? `anonymous@${request.key}`, quiet: parameters?.quiet };
    }

    protected override _onConnect(conn: ActorConnection<ConnState>): void {
      log.push(`connect:${conn.state.name}`);
      if (!conn.state.quiet) this._state.visits++;
      conn.send("welcome", { id: conn.id, name: conn.state.name, connections: this._connections.size });
    }

    protected override _onDisconnect(conn: ActorConnection<ConnState>): void {
      log.push(`disconnect:${conn.state.name}`);
    }

    increment(_rpc: Rpc<Counter>, by: number): number {
      this._state.count += by;
      this._broadcast("countUpdated", { count: this._state.count });
      return this._state.count;
    }

    getCount(): number {
      return this._state.count;
    }

    /** Ten changes in one call: one `_onStateChange`. */
    burst(): number {
      for (let i = 0; i < 10; i++) this._state.count++;
      return this._state.count;
    }

    /** The caller's connection state, read after an await (the connection follows the call). */
    async whoami(_rpc: Rpc<Counter>, delayMs = 0): Promise<{ id?: string; name?: string }> {
      if (delayMs > 0) await sleep(delayMs);
      return { id: this._connection?.id, name: this._connection?.state.name };
    }

    /** The caller as `rpc.connection` has it, after an await, and whether `this._connection` agrees. */
    async caller(rpc: Rpc<Counter>, delayMs: number): Promise<{ id: string; name: string; same: boolean }> {
      await sleep(delayMs);
      return { id: rpc.connection.id, name: rpc.connection.state.name, same: rpc.connection === this._connection };
    }

    connectionNames(): string[] {
      return [...this._connections.values()].map((conn) => conn.state.name).sort();
    }

    spend(_rpc: Rpc<Counter>, amount: number): never {
      throw new UserError("not enough credits", { code: "insufficient_credits", meta: { needed: amount } });
    }

    crash(): never {
      throw new Error("secret database detail");
    }

    /** Refused: its name starts with `_`. */
    _secret(): string {
      return "leaked";
    }

    shutdown(): boolean {
      this._shutdown();
      return true;
    }

    key(): string {
      return this._key;
    }

    tryToMutateConnState(): string {
      try {
        (this._connection!.state as { name: string }).name = "changed";
        return "changed";
      } catch (error) {
        return (error as Error).name;
      }
    }

    later(_rpc: Rpc<Counter>, ms: number): string {
      return this._schedule.after(ms, "tick", [this._key, ms]);
    }

    tick(rpc: Rpc<Counter>, key: string, ms: number): void {
      this._broadcast("ticked", { key, ms, fromCall: this._connection !== undefined || rpc.connection !== undefined });
    }
  }
  return { Counter, log, changes, params, instances };
}

type CounterClass = ReturnType<typeof counterApp>["Counter"];

/** An actor handle over `ws`, closed when the test ends. */
function connect(t: TestContext, base: string, key: string, options: ActorClientOptions = {}) {
  const handle = actorClient<InstanceType<CounterClass>>(actorUrl(base, "counter", key), {
    WebSocket: WebSocket as never,
    reconnection: { enabled: false },
    ...options,
  });
  t.after(() => handle.close());
  return handle;
}

function nextEvent<T = any>(handle: { once(event: string, cb: (data: any) => void): unknown }, event: string): Promise<T> {
  return withTimeout(new Promise<T>((resolve) => void handle.once(event, resolve)), `event ${event}`);
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!condition()) await sleep(5);
    })(),
    what,
  );
}

async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function serveCounter(options: { hibernateAfterMs?: number } = {}) {
  const app = counterApp();
  const { server, port } = await serve({ actors: { counter: app.Counter }, ...options });
  return { ...app, server, base: `ws://127.0.0.1:${port}` };
}

async function storageDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "warren-actor-"));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe("Actor classes: lifecycle", () => {
  test("_onInitialize runs once per key ever, _onStart on every start; state survives a restart on the same directory", async (t) => {
    const dir = await storageDir();
    const app = counterApp();
    let server = createServer({ actors: { counter: app.Counter }, storage: dir });
    let { port } = await server.listen({ port: 0 });
    let counter = connect(t, `ws://127.0.0.1:${port}`, "persisted");
    assert.equal(await counter.increment(5), 5);
    assert.equal(await counter.increment(2), 7);
    counter.close();
    await server.close();

    server = createServer({ actors: { counter: app.Counter }, storage: dir });
    ({ port } = await server.listen({ port: 0 }));
    t.after(() => server.close());
    counter = connect(t, `ws://127.0.0.1:${port}`, "persisted");
    assert.equal(await counter.getCount(), 7);
    assert.equal(await counter.increment(1), 8);
    assert.deepEqual(
      app.log.filter((line) => line.startsWith("initialize") || line.startsWith("start")),
      ["initialize:persisted", "start:persisted:0:0", "start:persisted:7:0"],
    );
  });

  test("a hibernated actor drops its instance; the next call builds a new one (_onStart again) with its connections restored", async (t) => {
    const { server, base, log, instances } = await serveCounter();
    const alice = connect(t, base, "sleepy", { params: { name: "alice" } });
    const bob = connect(t, base, "sleepy", { params: { name: "bob" } });
    assert.equal(await alice.increment(1), 1);
    assert.deepEqual(await bob.connectionNames(), ["alice", "bob"]);
    const bobId = (await bob.whoami()).id;
    assert.equal(server.hibernate("counter", "sleepy"), true);
    await eventually(() => server.stats().hibernated === 1, "the actor to hibernate");
    await collectGarbage();
    assert.equal(instances.length, 1);
    assert.equal(instances[0]!.deref(), undefined, "the instance left the heap with its actor");

    assert.deepEqual(await bob.whoami(), { id: bobId, name: "bob" }, "the same connection, woken");
    assert.deepEqual(await bob.connectionNames(), ["alice", "bob"], "connections restored from their attachments");
    assert.equal(await alice.increment(1), 2);
    assert.equal(log.filter((line) => line.startsWith("start")).length, 2);
    assert.equal(log.filter((line) => line.startsWith("connect")).length, 2, "_onConnect does not run again on wake");
    assert.equal(log.filter((line) => line.startsWith("initialize")).length, 1);
  });

  test("_shutdown() destroys the actor: its sockets close with 1000, and the next connection starts from _onInitialize", async (t) => {
    const { base, log } = await serveCounter();
    const a = connect(t, base, "doomed");
    const b = connect(t, base, "doomed");
    const closedA = nextEvent<CloseInfo>(a, "close");
    const closedB = nextEvent<CloseInfo>(b, "close");
    assert.equal(await a.increment(3), 3);
    await b.getCount();
    assert.equal(await a.shutdown(), true, "the call that asked for it gets its reply");
    for (const closed of [await closedA, await closedB]) {
      assert.equal(closed.code, 1000);
      assert.equal(closed.reason, "Actor destroyed");
    }
    const again = connect(t, base, "doomed");
    assert.equal(await again.getCount(), 0);
    assert.equal(log.filter((line) => line === "initialize:doomed").length, 2);
    assert.ok(!log.some((line) => line.startsWith("disconnect")), "a destroyed actor runs no _onDisconnect");
  });

  test("two keys are two actors", async (t) => {
    const { base } = await serveCounter();
    const one = connect(t, base, "one");
    const two = connect(t, base, "room 2");
    assert.equal(await one.increment(10), 10);
    assert.equal(await two.increment(1), 1);
    assert.equal(await one.getCount(), 10);
    assert.equal(await two.key(), "room 2");
    assert.equal(await one.key(), "one");
  });
});

describe("Actor classes: connections", () => {
  test("_onBeforeConnect gets the params; its return value is conn.state in _onConnect and in methods", async (t) => {
    const { base, params, log } = await serveCounter();
    const alice = connect(t, base, "c", { params: { name: "alice" } });
    const welcome = await nextEvent(alice, "welcome");
    assert.equal(welcome.name, "alice");
    assert.equal(welcome.connections, 1);
    assert.deepEqual(params, [{ name: "alice" }]);
    const me = await alice.whoami();
    assert.deepEqual(me, { id: welcome.id, name: "alice" });
    assert.deepEqual(log.filter((line) => line.startsWith("connect")), ["connect:alice"]);
    assert.equal(await alice.tryToMutateConnState(), "TypeError", "conn.state is read-only");
  });

  test("this._connection follows each call across its awaits", async (t) => {
    const { base } = await serveCounter();
    const alice = connect(t, base, "concurrent", { params: { name: "alice" } });
    const bob = connect(t, base, "concurrent", { params: { name: "bob" } });
    const [slow, fast] = await Promise.all([alice.whoami(60), bob.whoami(5)]);
    assert.equal(slow.name, "alice");
    assert.equal(fast.name, "bob");
  });

  test("a method gets rpc first, rpc.connection being its caller; the client passes the other arguments only", async (t) => {
    const { base } = await serveCounter();
    const alice = connect(t, base, "rpc", { params: { name: "alice" } });
    const bob = connect(t, base, "rpc", { params: { name: "bob" } });
    const aliceId = (await alice.whoami()).id;
    const [slow, fast] = await Promise.all([alice.caller(60), bob.caller(5)]);
    assert.deepEqual(slow, { id: aliceId, name: "alice", same: true });
    assert.equal(fast.name, "bob");
    assert.equal(fast.same, true);
    assert.equal(await alice.increment(2), 2, "increment(rpc, by) is called as increment(by)");
  });

  test("a throwing _onBeforeConnect refuses the upgrade with 401 and its code; no hook runs for it", async (t) => {
    const { base, server, log } = await serveCounter();
    const url = `${actorUrl(base, "counter", "guarded")}?params=${encodeURIComponent(JSON.stringify({ token: "bad", name: "mallory" }))}`;
    assert.deepEqual(await refusedUpgrade(url), { status: 401, body: { error: "bad token", code: "forbidden" }, opened: false });
    const mallory = connect(t, base, "guarded", { params: { token: "bad", name: "mallory" } });
    const closed = await nextEvent<CloseInfo>(mallory, "close");
    assert.notEqual(closed.code, 1000);
    assert.equal(server.stats().actors, 0);
    const alice = connect(t, base, "guarded", { params: { name: "alice" } });
    assert.equal(await alice.getCount(), 0);
    alice.close();
    await eventually(() => log.includes("disconnect:alice"), "alice's _onDisconnect");
    assert.ok(!log.some((line) => line.includes("mallory")), log.join(", "));
  });

  test("_onBeforeConnect runs outside the actor: this._state throws a clear error there", async (t) => {
    const { base } = await serveCounter();
    const probe = connect(t, base, "p", { params: { probe: true } });
    assert.equal((await probe.whoami()).name, "actor_not_loaded");
  });

  test("this._connections counts open connections; _onDisconnect sees the one that left", async (t) => {
    const { base, log } = await serveCounter();
    const a = connect(t, base, "counted", { params: { name: "a" } });
    const b = connect(t, base, "counted", { params: { name: "b" } });
    const c = connect(t, base, "counted", { params: { name: "c" } });
    await Promise.all([a.getCount(), b.getCount(), c.getCount()]);
    assert.deepEqual(await a.connectionNames(), ["a", "b", "c"]);
    b.close();
    await eventually(() => log.includes("disconnect:b"), "b's _onDisconnect");
    assert.deepEqual(await c.connectionNames(), ["a", "c"]);
  });
});

describe("Actor classes: RPC", () => {
  test("a method's return value is the reply, and its broadcast reaches the other connections", async (t) => {
    const { base } = await serveCounter();
    const a = connect(t, base, "shared");
    const b = connect(t, base, "shared");
    await b.getCount();
    const updated = nextEvent(b, "countUpdated");
    assert.equal(await a.increment(5), 5);
    assert.deepEqual(await updated, { type: "countUpdated", count: 5 });
    assert.equal(await b.increment(2), 7);
    assert.equal(await a.call("increment", 1), 8, "call(name, ...args) is the untyped way in");
  });

  test("members starting with _ (and constructor) are refused with not_found, unknown names too", async (t) => {
    const { base } = await serveCounter();
    const counter = connect(t, base, "private");
    for (const name of ["_secret", "_onInitialize", "_shutdown", "_broadcast", "_state", "constructor"]) {
      await assert.rejects(counter.call(name), (error: WarrenClientError) => {
        assert.equal(error.code, "not_found", name);
        return true;
      });
    }
    await assert.rejects(counter.call("noSuchMethod"), (error: WarrenClientError) => error.code === "unknown_event");
    // @ts-expect-error `_`-prefixed members are not part of the typed handle
    assert.equal(counter._secret, undefined);
    assert.equal((counter as unknown as { then?: unknown }).then, undefined, "a handle is not thenable");
    assert.equal(await counter.getCount(), 0, "the actor was not touched");
  });

  test("a UserError reaches the client with its code and meta; other errors are internal_error", async (t) => {
    const { base } = await serveCounter();
    const counter = connect(t, base, "errors");
    await assert.rejects(counter.spend(3), (error: WarrenClientError) => {
      assert.equal(error.code, "insufficient_credits");
      assert.equal(error.message, "not enough credits");
      assert.deepEqual(error.meta, { needed: 3 });
      return true;
    });
    const logged = console.error;
    console.error = () => {};
    try {
      await assert.rejects(counter.crash(), (error: WarrenClientError) => error.code === "internal_error" && error.message === "internal error");
    } finally {
      console.error = logged;
    }
    assert.equal(await counter.increment(1), 1, "the actor keeps working after errors");
  });

  test("this._schedule calls a method later, with no current connection", async (t) => {
    const { base } = await serveCounter();
    const counter = connect(t, base, "scheduled");
    const ticked = nextEvent(counter, "ticked");
    assert.equal(typeof (await counter.later(20)), "string");
    assert.deepEqual(await ticked, { type: "ticked", key: "scheduled", ms: 20, fromCall: false });
  });
});

describe("Actor classes: state", () => {
  test("_onStateChange runs once per burst of changes, never on reads, and not for the initial state", async (t) => {
    const { base, changes } = await serveCounter();
    const counter = connect(t, base, "observed");
    await nextEvent(counter, "welcome");
    assert.deepEqual(changes, ["0/1"], "the visit counted in _onConnect, not _onInitialize's state");
    assert.equal(await counter.burst(), 10);
    assert.deepEqual(changes, ["0/1", "10/1"]);
    assert.equal(await counter.getCount(), 10);
    assert.equal(await counter.burst(), 20);
    assert.deepEqual(changes, ["0/1", "10/1", "20/1"]);
  });

  test("_onStateChange does not see what _onInitialize returned", async (t) => {
    const { base, changes, log } = await serveCounter();
    const counter = connect(t, base, "quiet", { params: { quiet: true } });
    await nextEvent(counter, "welcome");
    assert.equal(await counter.getCount(), 0);
    assert.ok(log.includes("initialize:quiet"));
    assert.deepEqual(changes, []);
    assert.equal(await counter.increment(4), 4);
    assert.deepEqual(changes, ["4/0"]);
  });
});

describe("Actor classes: failures", () => {
  test("a failed _onInitialize closes the connection with 1011 and is tried again at the next start", async (t) => {
    let attempts = 0;
    class Fragile extends Actor<{ ok: boolean }> {
      protected override _onInitialize() {
        if (++attempts === 1) throw new Error("first start fails");
        return { ok: true };
      }
      get(): { ok: boolean } {
        return this._state;
      }
    }
    const logged = console.error;
    console.error = () => {};
    t.after(() => {
      console.error = logged;
    });
    const { port, server } = await serve({ actors: { fragile: Fragile }, hibernateAfterMs: 50 });
    const url = actorUrl(`ws://127.0.0.1:${port}`, "fragile", "k");
    const options = { WebSocket: WebSocket as never, reconnection: { enabled: false } };
    const first = actorClient<Fragile>(url, options);
    t.after(() => first.close());
    const closed = await nextEvent<CloseInfo>(first, "close");
    assert.equal(closed.code, 1011);
    await eventually(() => server.stats().actors === 0, "the failed actor to be evicted");
    const second = actorClient<Fragile>(url, options);
    t.after(() => second.close());
    assert.deepEqual(await second.get(), { ok: true });
    assert.equal(attempts, 2);
  });
});

describe("Actor classes: definition", () => {
  test("createServer refuses bad kinds, non-Actor classes and methods named like protocol frames", () => {
    const { Counter } = counterApp();
    assert.throws(() => createServer({ actors: { "a/b": Counter }, storage: ":memory:" }), /not a valid actor kind/);
    class NotAnActor {}
    assert.throws(() => createServer({ actors: { x: NotAnActor as never }, storage: ":memory:" }), /must be a class extending Actor/);
    class Pinger extends Actor {
      ping() {
        return "pong";
      }
    }
    assert.throws(() => createServer({ actors: { pinger: Pinger }, storage: ":memory:" }), /"ping" cannot be an RPC/);
    assert.throws(() => createServer({ storage: ":memory:" }), /at least one/);
  });

  test("without _onInitialize, state is disabled", async (t) => {
    class Stateless extends Actor {
      read(): string {
        try {
          return String(this._state);
        } catch (error) {
          return (error as { code: string }).code;
        }
      }
    }
    const { port } = await serve({ actors: { stateless: Stateless } });
    const handle = actorClient<Stateless>(actorUrl(`ws://127.0.0.1:${port}`, "stateless", "k"), {
      WebSocket: WebSocket as never,
      reconnection: { enabled: false },
    });
    t.after(() => handle.close());
    assert.equal(await handle.read(), "state_not_enabled");
  });
});

/** Compile-time checks of the typed handle (never called; `tsc` on this file checks them). */
function typeChecks(counter: ReturnType<typeof connect>): void {
  const count: Promise<number> = counter.increment(1);
  const who: Promise<{ id?: string; name?: string }> = counter.whoami();
  void count;
  void who;
  // @ts-expect-error arguments keep their types
  void counter.increment("1");
  // @ts-expect-error hooks and Actor's members are not on the handle
  void counter._onStart;
  // @ts-expect-error protected members are not on the handle
  void counter._state;
  // @ts-expect-error unknown methods are not on a typed handle (use call)
  void counter.nope();
  const untyped = actorClient("ws://127.0.0.1:1/actors/counter/x");
  void untyped.anything(1, 2);
}
void typeChecks;
