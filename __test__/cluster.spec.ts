import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createServer, defineConnection } from "../index.js";
import { freePort, startRedis, subscribed, TestClient, withTimeout } from "./helpers.js";

const fixture = fileURLToPath(new URL("./fixtures/cluster-node.mjs", import.meta.url));

/** A redis-server of its own: AOF with fsync on every write, in a temporary directory. */
async function startOwnRedis(): Promise<{ url: string; port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "warren-redis-"));
  const stopRedis = await startRedis(port, dir);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await stopRedis();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A warren node in its own process (of the `script` fixture, given `args` after its id). */
async function startNode(
  redis: string,
  id: string,
  script = fixture,
  ...args: string[]
): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [script, redis, id, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  await withTimeout(
    (async () => {
      while (!output.includes("\n")) await once(child.stdout!, "data");
    })(),
    `node ${id} to listen`,
  );
  return { url: output.trim(), child };
}

async function stopNode(node: { child: ChildProcess }): Promise<void> {
  node.child.stdin!.end();
  await withTimeout(once(node.child, "exit"), "a node to stop");
}

describe("cluster mode: three node processes on one redis-server", () => {
  let redis: Awaited<ReturnType<typeof startOwnRedis>>;
  const nodes: Array<{ url: string; child: ChildProcess }> = [];

  before(async () => {
    redis = await startOwnRedis();
    for (const id of ["n1", "n2", "n3"]) nodes.push(await startNode(redis.url, id));
  });

  after(async () => {
    for (const node of nodes) await stopNode(node);
    await redis.stop();
  });

  test("a room spanning three nodes delivers every message exactly once, in each sender's order", async () => {
    const clients = await Promise.all(nodes.map((node, i) => TestClient.open(`${node.url}?user=u${i}`)));
    await subscribed(redis.port, "lobby", 3);
    const EACH = 25;
    for (let n = 0; n < EACH; n++) for (const client of clients) client.emit("say", { n });
    for (const client of clients) {
      await client.until(() => client.frames.filter((f) => f.data?.type === "said").length >= EACH * 3, "every message");
      const said = client.frames.filter((f) => f.data?.type === "said").map((f) => f.data);
      assert.equal(said.length, EACH * 3);
      for (const from of ["u0", "u1", "u2"]) {
        assert.deepEqual(
          said.filter((d) => d.from === from).map((d) => d.n),
          Array.from({ length: EACH }, (_, n) => n),
          `messages from ${from}, in order, once each`,
        );
      }
    }
    await Promise.all(clients.map((client) => client.close()));
  });

  test("one user through two nodes is one actor: one onInit, one state, on the node that placed it", async () => {
    const first = await TestClient.open(`${nodes[0]!.url}?user=cat`);
    const second = await TestClient.open(`${nodes[1]!.url}?user=cat`);
    // Each call waits for its session's onConnect: both have run once the second is answered.
    const b = await second.call("whoami");
    const a = await first.call("whoami");
    assert.deepEqual(a.data, { node: "n1", visits: 2, inits: 1 }, "one actor, one onInit, one state");
    assert.deepEqual(b.data, a.data, "the second tab reaches the same actor through its node");
    // Room messages reach the forwarded session too, numbered by the owner.
    first.emit("say", { n: 99 });
    const heard = await second.next((f) => f.data?.type === "said" && f.data.n === 99, "the room message");
    assert.equal(typeof heard.seq, "number");
    await Promise.all([first.close(), second.close()]);
  });

  test("an actor that left one node starts on another with the state it had", async () => {
    const run = promisify(execFile);
    const first = await TestClient.open(`${nodes[0]!.url}?user=dan`);
    assert.deepEqual((await first.call("whoami")).data, { node: "n1", visits: 1, inits: 1 });
    await first.close();
    // Its claim is given up once it left n1's memory.
    await withTimeout(
      (async () => {
        for (;;) {
          const { stdout } = await run("redis-cli", ["-p", String(redis.port), "HGET", "warren:actor:4:Chat:dan", "owner"]);
          if (stdout.trim() === "") return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      "n1 to give dan up",
    );
    const second = await TestClient.open(`${nodes[1]!.url}?user=dan`);
    assert.deepEqual((await second.call("whoami")).data, { node: "n2", visits: 2, inits: 1 }, "the state written on n1");
    await second.close();
  });

  test("toUser reaches the user's sessions on other nodes", async () => {
    const ann = await TestClient.open(`${nodes[0]!.url}?user=ann`);
    const bob = await TestClient.open(`${nodes[2]!.url}?user=bob`);
    ann.emit("dm", { to: "bob", text: "hi bob" });
    assert.deepEqual(await bob.event("dm"), { type: "dm", from: "ann", text: "hi bob" });
    await Promise.all([ann.close(), bob.close()]);
  });

  test("strict durability refuses a Redis that does not fsync every write", async () => {
    const run = promisify(execFile);
    await run("redis-cli", ["-p", String(redis.port), "CONFIG", "SET", "appendfsync", "everysec"]);
    try {
        const Conn = defineConnection({ name: "Conn" });
        assert.throws(
          () => createServer({ connections: [Conn], storage: ":memory:", cluster: { redis: redis.url, nodeId: "picky" } }),
          (error: any) => error.code === "cluster_unavailable" && /appendfsync always/.test(error.message),
        );
    } finally {
      await run("redis-cli", ["-p", String(redis.port), "CONFIG", "SET", "appendfsync", "always"]);
    }
  });
});

describe("cluster mode: rooms placed on one node, schedules in Redis", () => {
  const roomsFixture = fileURLToPath(new URL("./fixtures/cluster-rooms-node.mjs", import.meta.url));
  let redis: Awaited<ReturnType<typeof startOwnRedis>>;
  const nodes: Array<{ url: string; child: ChildProcess }> = [];
  const stopped = new Set<number>();
  /** A user on n2 that the scheduled events report to. */
  let watcher: TestClient;
  const rang = (user: string) => watcher.history.filter((f) => f.data?.type === "rang" && f.data.user === user);

  before(async () => {
    redis = await startOwnRedis();
    for (const id of ["n1", "n2", "n3"]) nodes.push(await startNode(redis.url, id, roomsFixture));
    watcher = await TestClient.open(`${nodes[1]!.url}?user=watcher`);
  });

  after(async () => {
    await watcher.close();
    for (const [i, node] of nodes.entries()) if (!stopped.has(i)) await stopNode(node);
    await redis.stop();
  });

  test("a room lives on the node of its first member: onJoin runs there once per join, and members() from any node lists every member", async () => {
    const m1 = await TestClient.open(`${nodes[0]!.url}?user=m1`);
    await m1.next((f) => f.data?.type === "joined" && f.data.userId === "m1", "m1's join");
    const m2 = await TestClient.open(`${nodes[1]!.url}?user=m2`);
    const m3 = await TestClient.open(`${nodes[2]!.url}?user=m3`);
    const joined = () => m1.history.filter((f) => f.data?.type === "joined").map((f) => f.data);
    await m1.until(() => joined().length >= 3, "three joins");
    // m2 and m3 join at the same moment through two nodes: either may reach the owner first.
    const joins = joined();
    assert.deepEqual(joins.map((d) => d.userId).sort(), ["m1", "m2", "m3"], "one onJoin per join");
    assert.deepEqual(joins.map((d) => d.node), ["n1", "n1", "n1"], "every onJoin on the owner");
    assert.deepEqual(joins.map((d) => [d.joins, d.members]), [[1, 1], [2, 2], [3, 3]], "with every member counted there");
    for (const client of [m1, m2, m3]) {
      const { data } = await client.call("members");
      assert.deepEqual([...data].sort(), ["m1", "m2", "m3"], "fetchMembers() answered by the owner");
    }
    assert.deepEqual([...(await m1.call("members here")).data].sort(), ["m1", "m2", "m3"], "members() on the owner");
    assert.deepEqual((await m2.call("members here")).data, { code: "room_elsewhere" }, "members() elsewhere");
    // m3 leaves: onLeave runs on the owner.
    await m3.close();
    const left = await m1.next((f) => f.data?.type === "left", "m3's leave");
    assert.deepEqual(left.data, { type: "left", userId: "m3", node: "n1" });
    assert.deepEqual([...(await m2.call("members")).data].sort(), ["m1", "m2"]);
    assert.equal(joined().length, 3, "no onJoin ran twice");
    await Promise.all([m1.close(), m2.close()]);
  });

  test("a schedule made through one node fires once, on the node that holds the actor", async () => {
    const sam = await TestClient.open(`${nodes[2]!.url}?user=sam`);
    await sam.call("remind", { ms: 300, notify: "watcher" });
    await watcher.until(() => rang("sam").length > 0, "sam's reminder");
    assert.deepEqual(rang("sam")[0]!.data, { type: "rang", node: "n3", user: "sam" });
    await sam.close();
  });

  test("a schedule of an actor that left memory fires once on some node", async () => {
    const sue = await TestClient.open(`${nodes[2]!.url}?user=sue`);
    await sue.call("remind", { ms: 1_500, notify: "watcher" });
    // Its actor leaves n3's memory (and gives its claim up) long before the reminder is due.
    await sue.close();
    await watcher.until(() => rang("sue").length > 0, "sue's reminder");
    assert.equal(rang("sue")[0]!.data.user, "sue");
  });

  test("when a node stops cleanly, its rooms and schedules go on elsewhere: the members left join the room again on a new owner, and its schedules fire on another node", async () => {
    const m1 = await TestClient.open(`${nodes[0]!.url}?user=m1`);
    await m1.next((f) => f.data?.type === "joined" && f.data.userId === "m1", "m1's join");
    const m2 = await TestClient.open(`${nodes[1]!.url}?user=m2`);
    const m3 = await TestClient.open(`${nodes[2]!.url}?user=m3`);
    await m1.until(() => m1.history.filter((f) => f.data?.type === "joined").length >= 3, "three joins");
    const sid = await TestClient.open(`${nodes[0]!.url}?user=sid`);
    await sid.call("remind", { ms: 1_000, notify: "watcher" });

    // n1 owns the room (its state: 6 joins so far) and holds sid's actor; it stops.
    await stopNode(nodes[0]!);
    stopped.add(0);
    const rejoined = () => m2.history.filter((f) => f.data?.type === "joined" && f.data.node !== "n1").map((f) => f.data);
    await m2.until(() => rejoined().length >= 2, "m2 and m3 to join the room on its new owner");
    const moved = rejoined();
    assert.deepEqual(moved.map((d) => d.userId).sort(), ["m2", "m3"]);
    assert.equal(moved[0]!.node, moved[1]!.node, "one new owner");
    assert.deepEqual(moved.map((d) => d.joins).sort(), [7, 8], "from the state the old owner stored");
    assert.deepEqual([...(await m3.call("members")).data].sort(), ["m2", "m3"]);

    await watcher.until(() => rang("sid").length > 0, "sid's reminder");
    assert.notEqual(rang("sid")[0]!.data.node, "n1");
    for (const user of ["sam", "sue", "sid"]) assert.equal(rang(user).length, 1, `${user}'s reminder fired once`);
    await Promise.all([m2.close(), m3.close(), sid.close().catch(() => undefined)]);
  });

  test("when a room's owner is killed, the members left join the room again on another node once its lease ran out", async () => {
    // Two more nodes with a 1.5 s lease, so a killed one is known dead soon.
    // The room leaves its last owner's memory (and its claim) once its members left.
    const run = promisify(execFile);
    await withTimeout(
      (async () => {
        for (;;) {
          const { stdout } = await run("redis-cli", ["-p", String(redis.port), "HGET", "warren:roomowner:lobby", "owner"]);
          if (stdout.trim() === "") return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      "the room to be given up",
    );
    const owner = await startNode(redis.url, "n4", roomsFixture, "1500");
    const other = await startNode(redis.url, "n5", roomsFixture, "1500");
    try {
    const m4 = await TestClient.open(`${owner.url}?user=m4`);
    await m4.next((f) => f.data?.type === "joined" && f.data.userId === "m4" && f.data.node === "n4", "m4's join on n4");
    const m5 = await TestClient.open(`${other.url}?user=m5`);
    await m5.until(() => m5.history.some((f) => f.data?.type === "joined" && f.data.userId === "m5"), "m5's join");
    assert.equal(m5.history.find((f) => f.data?.type === "joined" && f.data.userId === "m5")!.data.node, "n4");
    owner.child.kill("SIGKILL");
    await once(owner.child, "exit");
    const again = await m5.next((f) => f.data?.type === "joined" && f.data.node === "n5", "m5's join on n5");
    assert.equal(again.data.userId, "m5");
    assert.deepEqual((await m5.call("members")).data, ["m5"], "m4 went with its node");
    await m5.close();
    } finally {
      owner.child.kill("SIGKILL");
      await stopNode(other).catch(() => other.child.kill("SIGKILL"));
    }
  });
});
