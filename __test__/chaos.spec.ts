// Cluster mode under failure, with real processes: a redis-server (AOF, fsync always) and three
// node processes, each talking to Redis through a fault proxy of its own (proxy.ts), clients
// connecting straight to the nodes. Nodes run with a 1.5 s lease, so a dead or cut-off node is
// noticed within seconds. Every test waits on signals (a reply, a close, a key in Redis, a line
// on a node's stderr), never on a fixed sleep.
//
// The invariant the fault tests check: an increment a client saw acknowledged is never lost,
// whatever failed (`acknowledged <= stored`, the stored value read straight from Redis). The
// resume tests kill a gateway or an owner under a resumable session.
// CHAOS_ROUNDS sets how many faults the randomised test injects (a few by default; `npm run
// chaos` runs 30), CHAOS_SEED replays a run.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createServer, defineConnection } from "../index.js";
import { decodeState } from "../lib/state/codec.js";
import { freePort, startRedis, TestClient, withTimeout, type Frame } from "./helpers.js";
import { TcpProxy } from "./proxy.js";

const fixture = fileURLToPath(new URL("./fixtures/chaos-node.mjs", import.meta.url));
const LEASE_MS = 1500;
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? 4);

/** Waits until `check()` returns a value other than undefined, polling every 20 ms. */
async function poll<T>(check: () => Promise<T | undefined>, what: string, ms = 15_000): Promise<T> {
  return withTimeout(
    (async () => {
      for (;;) {
        const value = await check().catch(() => undefined);
        if (value !== undefined) return value;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })(),
    what,
    ms,
  );
}

type Reply = null | number | string | Buffer | Error | Reply[];

/** One command to Redis on a connection of its own (keys may hold any byte, NUL included). */
async function redisCommand(port: number, ...args: Array<string | Buffer>): Promise<Reply> {
  const socket = net.connect(port, "127.0.0.1");
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(arg);
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"));
  }
  socket.write(Buffer.concat(parts));
  let input = Buffer.alloc(0);
  try {
    return await withTimeout(
      new Promise<Reply>((resolve, reject) => {
        socket.on("error", reject);
        socket.on("close", () => reject(new Error("Redis closed the connection")));
        socket.on("data", (chunk) => {
          input = Buffer.concat([input, chunk]);
          const parsed = parseReply(input, 0);
          if (parsed) resolve(parsed.value);
        });
      }),
      `Redis to answer ${args[0]}`,
      2_000,
    );
  } finally {
    socket.destroy();
  }
}

/** A RESP reply at `at`, or undefined when `input` does not hold all of it yet. */
function parseReply(input: Buffer, at: number): { value: Reply; end: number } | undefined {
  const line = input.indexOf("\r\n", at);
  if (line < 0) return undefined;
  const head = input.toString("latin1", at + 1, line);
  switch (input[at]) {
    case 0x2b: // +
      return { value: head, end: line + 2 };
    case 0x2d: // -
      return { value: new Error(head), end: line + 2 };
    case 0x3a: // :
      return { value: Number(head), end: line + 2 };
    case 0x24: {
      // $
      const length = Number(head);
      if (length < 0) return { value: null, end: line + 2 };
      if (input.length < line + 2 + length + 2) return undefined;
      return { value: input.subarray(line + 2, line + 2 + length), end: line + 2 + length + 2 };
    }
    case 0x2a: {
      // *
      const count = Number(head);
      const items: Reply[] = [];
      let end = line + 2;
      for (let i = 0; i < count; i++) {
        const item = parseReply(input, end);
        if (!item) return undefined;
        items.push(item.value);
        end = item.end;
      }
      return { value: count < 0 ? null : items, end };
    }
    default:
      throw new Error(`unexpected reply from Redis: ${input.toString("latin1")}`);
  }
}

/** A redis-server of its own (AOF, fsync on every write) that can be killed and started again on its data. */
class Redis {
  readonly dir = mkdtempSync(join(tmpdir(), "warren-chaos-redis-"));
  port = 0;
  #stop: ((signal?: unknown) => Promise<void>) | undefined;

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.#stop = await startRedis(this.port, this.dir);
  }

  /** SIGKILL: whatever Redis acknowledged is in its AOF already. */
  async kill(): Promise<void> {
    const stop = this.#stop;
    this.#stop = undefined;
    await stop?.("SIGKILL");
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** What Redis stores of a user's counter (its state record), or 0 when nothing is stored. */
  async stored(user: string): Promise<number> {
    const key = Buffer.concat([Buffer.from("warren:data:a\0Counter\0"), Buffer.from(user)]);
    const value = await redisCommand(this.port, "GET", key);
    if (value === null) return 0;
    assert.ok(Buffer.isBuffer(value), `a stored state, got ${String(value)}`);
    return decodeState(value).count as number;
  }

  /** The user's directory entry: the node that holds its actor and the fencing token. */
  async claim(user: string): Promise<{ owner: string | null; token: number }> {
    const reply = (await redisCommand(this.port, "HMGET", `warren:actor:7:Counter:${user}`, "owner", "token")) as Array<Buffer | null>;
    return { owner: reply[0]?.toString() ?? null, token: Number(reply[1]?.toString() ?? 0) };
  }

  async holdsLease(node: string): Promise<boolean> {
    return (await redisCommand(this.port, "EXISTS", `warren:node:${node}`)) === 1;
  }
}

/** A node process, talking to Redis through a proxy of its own. */
class Node {
  url = "";
  stderr = "";
  #child: ChildProcess | undefined;
  #exited: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly id: string,
    readonly redisLink: TcpProxy,
  ) {}

  static async start(id: string, redis: Redis): Promise<Node> {
    const node = new Node(id, await TcpProxy.start(redis.port));
    await node.spawn();
    return node;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get pid(): number {
    return this.#child!.pid!;
  }

  /** Starts the process; a restarted node waits for the lease of its previous life to end. */
  async spawn(): Promise<void> {
    await poll(async () => ((await this.#spawnOnce()) ? true : undefined), `node ${this.id} to start`);
  }

  async #spawnOnce(): Promise<boolean> {
    const child = spawn(process.execPath, [fixture, `redis://127.0.0.1:${this.redisLink.port}`, this.id], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, CHAOS_LEASE_MS: String(LEASE_MS) },
    });
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    child.stderr!.on("data", (chunk) => (this.stderr += chunk));
    const exited = once(child, "exit");
    const listening = (async () => {
      while (!output.includes("\n")) await once(child.stdout!, "data");
      return true;
    })();
    const started = await withTimeout(Promise.race([listening, exited.then(() => false)]), `node ${this.id} to listen`);
    if (!started) return false;
    this.url = output.trim();
    this.#child = child;
    this.#exited = exited;
    return true;
  }

  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child) return;
    child.kill("SIGKILL");
    await this.#exited;
  }

  signal(signal: "SIGSTOP" | "SIGCONT"): void {
    this.#child!.kill(signal);
  }

  /** Waits for a line on the node's stderr matching `pattern`, written after `since` characters. */
  async logged(pattern: RegExp, since: number, what: string): Promise<void> {
    await poll(async () => (pattern.test(this.stderr.slice(since)) ? true : undefined), what);
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child) {
      child.stdin!.end();
      await withTimeout(this.#exited, `node ${this.id} to stop`);
    }
    await this.redisLink.close();
  }
}

/** A session of `user` (and any more query after it) on `node`, or undefined when refused. */
async function connect(node: Node, user: string): Promise<TestClient | undefined> {
  try {
    return await TestClient.open(`${node.url}?user=${user}`);
  } catch {
    return undefined;
  }
}

/** A call's reply, or undefined when the session closed first. */
async function callOrClosed(client: TestClient, event: string): Promise<Frame | undefined> {
  const closed = client.closed.then(() => undefined);
  return Promise.race([client.call(event), closed]);
}

/**
 * Calls `event` for `user` through `node` until a session answers it (a node that is fencing
 * itself refuses, a session forwarded to a dead owner is closed once the owner's lease ran out).
 */
async function callThrough(node: Node, user: string, event: string): Promise<Frame> {
  return poll(async () => {
    const client = await connect(node, user);
    if (!client) return undefined;
    const reply = await callOrClosed(client, event).catch(() => undefined);
    await client.close().catch(() => {});
    return reply?.error ? undefined : reply;
  }, `${event} for ${user} through ${node.id}`);
}

/** Increments `user`'s counter `times` over one session; returns the highest value acknowledged. */
async function increment(client: TestClient, times: number): Promise<number> {
  let acknowledged = 0;
  for (let i = 0; i < times; i++) {
    const reply = await client.call("inc");
    assert.equal(reply.error, undefined, `inc acknowledged: ${JSON.stringify(reply.error)}`);
    acknowledged = reply.data;
  }
  return acknowledged;
}

test("cluster.leaseMs is checked: an integer between 300 and 600000", () => {
  const Conn = defineConnection({ name: "Conn" });
  for (const leaseMs of [299, 600_001, 1.5, -1, "1000"]) {
    assert.throws(
      () => createServer({ connections: [Conn], storage: ":memory:", cluster: { redis: "redis://127.0.0.1:1", leaseMs: leaseMs as number } }),
      (error: any) => error.code === "invalid_option" && /cluster\.leaseMs/.test(error.message),
      `leaseMs ${leaseMs}`,
    );
  }
});

describe("cluster mode under failure: three node processes, each behind a fault proxy to one redis-server", () => {
  const redis = new Redis();
  const nodes: Node[] = [];

  before(async () => {
    await redis.start();
    for (const id of ["n1", "n2", "n3"]) nodes.push(await Node.start(id, redis));
  });

  after(async () => {
    for (const node of nodes) await node.stop();
    await redis.stop();
  });

  /** Restarts any node a test killed, so the next test starts with three. */
  async function heal(): Promise<void> {
    for (const node of nodes) {
      node.redisLink.restore();
      if (!node.running) await node.spawn();
    }
  }

  test("SIGKILL the owner: the user comes back through another node with its state, under the next fencing token", async () => {
    await heal();
    const [n1, n2] = [nodes[0]!, nodes[1]!];
    const client = (await connect(n1, "kim"))!;
    const acknowledged = await increment(client, 5);
    const before = await redis.claim("kim");
    assert.deepEqual(before.owner, "n1");

    await n1.kill();
    await client.closed;
    const reply = await callThrough(n2, "kim", "get");
    assert.deepEqual(reply.data, { node: "n2", count: acknowledged }, "the state n1 acknowledged, on n2");
    assert.deepEqual(await redis.claim("kim"), { owner: "n2", token: before.token + 1 });
    assert.equal(await redis.stored("kim"), acknowledged);
  });

  test("SIGSTOP the owner past its lease, then SIGCONT: its commits are refused, their replies never leave, it drops its actors", async () => {
    await heal();
    const [n1, n2] = [nodes[0]!, nodes[1]!];
    const early = (await connect(n1, "sam"))!;
    await increment(early, 3);
    const { token } = await redis.claim("sam");

    n1.signal("SIGSTOP");
    let resumed = false;
    try {
      // Sent while n1 is frozen: n1 reads it after SIGCONT, with its claim taken over by then.
      early.send({ type: "call", id: 1000, event: "inc" });
      await poll(async () => ((await redis.holdsLease("n1")) ? undefined : true), "n1's lease to run out");
      const late = await poll(async () => {
        const reply = await callThrough(n2, "sam", "get");
        return reply.data.node === "n2" ? reply : undefined;
      }, "n2 to take sam over");
      assert.deepEqual(late.data, { node: "n2", count: 3 });
      const owner = (await connect(n2, "sam"))!;
      const acknowledged = await increment(owner, 2);
      assert.equal(acknowledged, 5);
      assert.deepEqual(await redis.claim("sam"), { owner: "n2", token: token + 1 });

      const since = n1.stderr.length;
      n1.signal("SIGCONT");
      resumed = true;
      const closed = await withTimeout(early.closed, "n1 to close its stale session");
      assert.equal(closed.code, 1012);
      const stale = early.history.find((f) => f.type === "reply" && f.id === 1000);
      assert.ok(
        stale === undefined || stale.error?.code === "storage_unavailable",
        `no acknowledgement of a commit n1 could not make: ${JSON.stringify(stale)}`,
      );
      await n1.logged(/let its actors go|could not renew its lease/, since, "n1 to notice it lost its lease");
      // n1 serves again, and sam through n1 reaches the actor on n2.
      const through = await callThrough(n1, "sam", "get");
      assert.deepEqual(through.data, { node: "n2", count: 5 });
      assert.equal(await redis.stored("sam"), 5, "n1's stale increment was not stored");
      await owner.close();
    } finally {
      if (!resumed) n1.signal("SIGCONT");
    }
  });

  test("black-hole a node's link to Redis: it fences itself (1012), another node takes the user over, and it comes back when the link heals", async () => {
    await heal();
    const [n1, n3] = [nodes[0]!, nodes[2]!];
    const client = (await connect(n3, "bea"))!;
    const acknowledged = await increment(client, 3);
    const { token } = await redis.claim("bea");
    const since = n3.stderr.length;

    n3.redisLink.isolate();
    const closed = await withTimeout(client.closed, "n3 to close its sessions");
    assert.equal(closed.code, 1012);
    await n3.logged(/could not renew its lease/, since, "n3 to fence itself");
    const reply = await callThrough(n1, "bea", "get");
    assert.deepEqual(reply.data, { node: "n1", count: acknowledged });
    assert.deepEqual(await redis.claim("bea"), { owner: "n1", token: token + 1 });

    n3.redisLink.restore();
    await n3.logged(/holds its lease again/, since, "n3 to hold its lease again");
    await n3.logged(/pub\/sub link to Redis is back/, since, "n3 to listen on Redis again");
    const back = await callThrough(n3, "bea", "get");
    assert.equal(back.data.count, acknowledged, "n3 serves bea again");
  });

  test("restart redis-server: nothing acknowledged is lost, commits fail with storage_unavailable while it is down, and the cluster recovers on its own", async () => {
    await heal();
    const [n1, n2, n3] = [nodes[0]!, nodes[1]!, nodes[2]!];
    const client = (await connect(n1, "rio"))!;
    const acknowledged = await increment(client, 3);

    await redis.kill();
    const failed = await callOrClosed(client, "inc");
    assert.equal(failed?.error?.code, "storage_unavailable", `an error reply, got ${JSON.stringify(failed)}`);
    await redis.start();

    assert.ok((await redis.stored("rio")) >= acknowledged, "every acknowledged increment survived the restart");
    for (const node of [n1, n2, n3]) {
      const reply = await callThrough(node, `after-${node.id}`, "inc");
      assert.equal(reply.data, 1, `${node.id} commits again`);
    }
    const reply = await callThrough(n2, "rio", "get");
    assert.ok(reply.data.count >= acknowledged);
    await client.close().catch(() => {});
  });

  test("kill a gateway: its client resumes through a third node with every frame it missed, seq contiguous", async () => {
    await heal();
    const [n1, n2, n3] = [nodes[0]!, nodes[1]!, nodes[2]!];
    const anchor = (await connect(n1, "gus"))!; // places gus's actor on n1
    await increment(anchor, 1);
    const client = await TestClient.open(`${n2.url}?user=gus&_resume=`);
    const session = await client.next((f) => f.type === "session", "the session frame");
    assert.equal(session.resumed, false);
    assert.equal(typeof session.token, "string", "the owner gave the forwarded session a token");
    const ticks = (of: TestClient) => of.history.filter((f) => f.data?.type === "tick");
    for (const n of [1, 2, 3]) anchor.emit("tick", { n });
    await client.until(() => ticks(client).length === 3, "ticks 1-3 through n2");
    const lastSeq = ticks(client).at(-1)!.seq as number;

    await n2.kill();
    await client.closed;
    for (const n of [4, 5, 6]) anchor.emit("tick", { n });
    await anchor.until(() => ticks(anchor).length === 6, "the owner sent ticks 4-6");
    const resumed = await TestClient.open(`${n3.url}?user=gus&_resume=${session.token}&_lastSeq=${lastSeq}`);
    const again = await resumed.next((f) => f.type === "session", "the resumed session frame");
    assert.equal(again.resumed, true, "resumed through n3");
    anchor.emit("tick", { n: 7 });
    await resumed.until(() => ticks(resumed).length === 4, "ticks 4-6 replayed, then 7 live");
    const all = [...ticks(client), ...ticks(resumed)];
    assert.deepEqual(
      all.map((f) => f.data.n),
      [1, 2, 3, 4, 5, 6, 7],
      "every tick once, in order",
    );
    const seqs = all.map((f) => f.seq as number);
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0]! + i), "seq contiguous across the resume");
    await Promise.all([anchor.close(), resumed.close()]);
  });

  test("a client's acknowledgements through a gateway reach the owner, which replays only what was not acknowledged", async () => {
    await heal();
    const [n1, n2, n3] = [nodes[0]!, nodes[1]!, nodes[2]!];
    const anchor = (await connect(n1, "joy"))!;
    await increment(anchor, 1);
    const client = await TestClient.open(`${n2.url}?user=joy&_resume=`);
    const { token } = await client.next((f) => f.type === "session", "the session frame");
    for (const n of [1, 2, 3]) anchor.emit("tick", { n });
    await client.until(() => client.history.filter((f) => f.data?.type === "tick").length === 3, "three ticks");
    const lastSeq = client.history.at(-1)!.seq as number;
    client.send({ type: "ping", ack: lastSeq });
    // A call sent after the ping travels the same way: once it is answered, the owner has the ack.
    await client.call("get");
    client.socket.terminate();
    await client.closed;
    // Resuming from 0 replays only what was not acknowledged: the reply to `get`.
    const again = await TestClient.open(`${n3.url}?user=joy&_resume=${token}&_lastSeq=0`);
    const session = await again.next((f) => f.type === "session", "a session frame");
    assert.equal(session.resumed, true);
    await again.next((f) => f.type === "reply", "the unacknowledged reply, replayed");
    assert.deepEqual(
      again.history.filter((f) => f.data?.type === "tick"),
      [],
      "the acknowledged ticks were forgotten by the owner",
    );
    await Promise.all([anchor.close(), again.close()]);
  });

  test("kill the owner: its client, resuming through another node, gets resumed:false and the acknowledged state", async () => {
    await heal();
    const [n1, n3] = [nodes[0]!, nodes[2]!];
    const client = await TestClient.open(`${n1.url}?user=ida&_resume=`);
    const { token } = await client.next((f) => f.type === "session", "the session frame");
    const acknowledged = await increment(client, 3);
    const lastSeq = client.history.filter((f) => typeof f.seq === "number").at(-1)!.seq as number;

    await n1.kill();
    await client.closed;
    const { next, session } = await poll(async () => {
      const next = await connect(n3, `ida&_resume=${token}&_lastSeq=${lastSeq}`);
      if (!next) return undefined;
      const session = await Promise.race([next.next((f) => f.type === "session", "a session frame"), next.closed.then(() => undefined)]);
      if (!session) return undefined;
      return { next, session };
    }, "a session for ida through n3");
    assert.equal(session.resumed, false, "the session died with its owner");
    assert.deepEqual((await next.call("get")).data, { node: "n3", count: acknowledged });
    await next.close();
  });

  test(`randomised faults (${ROUNDS} rounds): every acknowledged increment is stored, every time`, async () => {
    await heal();
    const firstSeed = Number(process.env.CHAOS_SEED ?? 1 + (Date.now() % 100_000));
    let seed = firstSeed;
    const random = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    // A fault: the victim killed, paused past its lease or cut off from Redis, or Redis restarted.
    const acknowledged = new Map<string, number>();
    for (let round = 0; round < ROUNDS; round++) {
      const user = `r${round % 3}`;
      const victim = nodes[Math.floor(random() * 3)]!;
      const fault = ["kill", "stop", "isolate", "redis"][Math.floor(random() * 4)]!;
      // Clients increment through every node until the cluster is whole again.
      let healed = false;
      const writers = nodes.map(async (node) => {
        while (!healed) {
          const client = await connect(node, user);
          if (!client) continue;
          for (;;) {
            const reply = await callOrClosed(client, "inc").catch(() => undefined);
            if (!reply || reply.error) break;
            acknowledged.set(user, Math.max(acknowledged.get(user) ?? 0, reply.data));
            if (random() < 0.2) break;
          }
          await client.close().catch(() => {});
        }
      });
      if (fault === "kill") await victim.kill();
      if (fault === "stop") victim.signal("SIGSTOP");
      if (fault === "isolate") victim.redisLink.isolate();
      if (fault === "redis") {
        await redis.kill();
        await redis.start();
      } else {
        await poll(async () => ((await redis.holdsLease(victim.id)) ? undefined : true), `${victim.id}'s lease to run out`);
      }
      if (fault === "stop") victim.signal("SIGCONT");
      await heal();
      healed = true;
      await Promise.all(writers);
      const stored = await redis.stored(user);
      assert.ok(
        stored >= (acknowledged.get(user) ?? 0),
        `round ${round} (${fault} ${victim.id}, CHAOS_SEED=${firstSeed}): stored ${stored} < acknowledged ${acknowledged.get(user)}`,
      );
    }
  });
});
