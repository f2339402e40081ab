import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort, RawClient, startRedis, subscribed, withTimeout, type Received } from "./helpers.js";

const fixture = fileURLToPath(new URL("./fixtures/cluster-raw-node.mjs", import.meta.url));


/** A node of the raw fixture in its own process, with every line it printed. */
interface RawNode {
  id: string;
  /** The raw endpoint's URL on this node. */
  echo: string;
  child: ChildProcess;
  lines: string[];
  /** Resolves once the node printed `line`. */
  printed(line: string): Promise<void>;
}

async function startNode(redis: string, id: string, ...args: string[]): Promise<RawNode> {
  const child = spawn(process.execPath, [fixture, redis, id, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const lines: string[] = [];
  let partial = "";
  let wake: Array<() => void> = [];
  child.stdout!.on("data", (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split("\n");
    partial = parts.pop()!;
    lines.push(...parts);
    for (const resolve of wake.splice(0)) resolve();
  });
  const until = async (found: () => boolean, what: string) => {
    await withTimeout(
      (async () => {
        while (!found()) await new Promise<void>((resolve) => wake.push(resolve));
      })(),
      what,
    );
  };
  await until(() => lines.length > 0, `node ${id} to listen`);
  const port = new URL(lines[0]!).port;
  return {
    id,
    echo: `ws://127.0.0.1:${port}/echo`,
    child,
    lines,
    printed: (line) => until(() => lines.includes(line), `node ${id} to print ${JSON.stringify(line)}`),
  };
}

async function stopNode(node: RawNode): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  node.child.stdin!.end();
  await withTimeout(once(node.child, "exit"), "a node to stop");
}

/** Opens a socket as `user` on `node` and waits for its greeting (from the owner's onConnect). */
async function openOn(node: RawNode, user: string): Promise<RawClient> {
  const client = await new RawClient(`${node.echo}?user=${user}`).open();
  await client.message(0);
  return client;
}

describe("raw endpoints in cluster mode: node processes on one redis-server", () => {
  let redisPort: number;
  let redisUrl: string;
  let redisDir: string;
  let stopRedis: () => Promise<void>;
  const nodes: RawNode[] = [];

  before(async () => {
    redisPort = await freePort();
    redisDir = mkdtempSync(join(tmpdir(), "warren-redis-"));
    stopRedis = await startRedis(redisPort, redisDir);
    redisUrl = `redis://127.0.0.1:${redisPort}`;
    for (const id of ["n1", "n2", "n3"]) nodes.push(await startNode(redisUrl, id));
  });

  after(async () => {
    for (const node of nodes) await stopNode(node);
    await stopRedis();
    rmSync(redisDir, { recursive: true, force: true });
  });

  test("a raw socket on another node reaches its actor on the owner: text as strings, binary byte for byte, in order", async () => {
    const [n1, n2] = [nodes[0]!, nodes[1]!];
    const here = await openOn(n1, "ada");
    assert.equal(here.received[0], "hello ada on n1");
    // The second socket lands on n2: its hooks run on n1, where ada's actor lives.
    const there = await openOn(n2, "ada");
    assert.equal(there.received[0], "hello ada on n1", "onConnect ran on the owner");
    assert.equal(await there.ask("where"), "n1");

    assert.equal(await there.ask("héllo ✓"), "héllo ✓");
    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    assert.deepEqual(await there.ask(everyByte), everyByte);
    const large = randomBytes(200_000);
    assert.deepEqual(await there.ask(large), large);
    assert.deepEqual(await there.ask(Buffer.alloc(0)), Buffer.alloc(0));
    // JSON-looking text, and bytes that look like a node message, are just what they are.
    assert.equal(await there.ask(`{"type":"ping"}`), `{"type":"ping"}`);
    const lookalike = Buffer.from(`{"k":"close","session":1,"code":1000,"reason":""}`);
    assert.deepEqual(await there.ask(lookalike), lookalike);

    // A burst of text and binary comes back in the order it was sent.
    const start = there.received.length;
    const burst: Received[] = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? `text ${i}` : Buffer.from([i, 0, 255 - i])));
    for (const data of burst) there.socket.send(data, { binary: typeof data !== "string" });
    await there.message(start + burst.length - 1);
    assert.deepEqual(there.received.slice(start), burst);

    here.socket.close(1000);
    there.socket.close(4003);
    await n1.printed("disconnect ada 1000");
    await n1.printed("disconnect ada 4003");
  });

  test("a room's raw broadcast reaches its raw members on every node once each, binary intact; JSON room events never reach them", async () => {
    const [n1, n2, n3] = [nodes[0]!, nodes[1]!, nodes[2]!];
    const r1 = await openOn(n1, "r1");
    const r2 = await openOn(n2, "r2");
    const r3 = await openOn(n3, "r3");
    // r1's second socket is on n3: the owner (n1) sends it what r1's sessions get.
    const r1b = await openOn(n3, "r1");
    assert.equal(r1b.received[0], "hello r1 on n1");
    const members = [r1, r2, r3, r1b];
    assert.equal(await r1.ask("join"), "joined n1");
    assert.equal(await r2.ask("join"), "joined n2");
    assert.equal(await r3.ask("join"), "joined n3");
    await subscribed(redisPort, "doc", 3);

    const update = Buffer.concat([Buffer.from([0xff]), randomBytes(5000)]);
    const seen = members.map((client) => client.received.length);
    r2.socket.send(update, { binary: true });
    for (const client of [r1, r3, r1b]) assert.deepEqual(await client.message(seen[members.indexOf(client)]!), update);
    // A text broadcast, from another node, to every member (the sender's sessions included).
    r3.socket.send("room to all");
    for (const [i, client] of members.entries()) {
      const at = seen[i]! + (client === r2 ? 0 : 1);
      assert.equal(await client.message(at), "to all");
    }
    // Each socket's next answer comes after anything still on its way: nothing came twice, and
    // no JSON event (the room's onJoin emits) ever arrived.
    for (const [i, client] of members.entries()) {
      assert.equal(await client.ask("sync"), "sync");
      const expected = client === r2 ? ["to all", "sync"] : [update, "to all", "sync"];
      assert.deepEqual(client.received.slice(seen[i]!), expected);
      assert.ok(
        client.received.every((message) => typeof message !== "string" || !message.includes('"joined"')),
        "no JSON room event",
      );
    }
    for (const client of members) client.socket.close();
  });

  test("the owner closes a raw session on another node: its client gets the close code", async () => {
    const [n1, n2] = [nodes[0]!, nodes[1]!];
    const here = await openOn(n1, "cyd");
    const there = await openOn(n2, "cyd");
    const closed = there.closed();
    there.socket.send("close");
    assert.deepEqual(await closed, { code: 4001, reason: "closed by the owner" });
    await n1.printed("disconnect cyd 4001");
    // The owner's other socket is still served.
    assert.equal(await here.ask("still"), "still");
    here.socket.close();
  });

  test("a client's close through another node runs the owner's onDisconnect with its code", async () => {
    const [n1, n3] = [nodes[0]!, nodes[2]!];
    const here = await openOn(n1, "dee");
    const there = await openOn(n3, "dee");
    assert.equal(await there.ask("where"), "n1");
    assert.equal(await here.ask("sessions"), "sessions 2");
    there.socket.close(4002, "bye");
    await n1.printed("disconnect dee 4002");
    assert.equal(await here.ask("sessions"), "sessions 1", "nothing left of the forwarded session");
    here.socket.close();
  });

  test("a raw socket through another node that drops ends its session on the owner at once: raw sessions do not resume", async () => {
    const [n1, n2] = [nodes[0]!, nodes[1]!];
    const here = await openOn(n1, "hal");
    const there = new RawClient(`${n2.echo}?user=hal&_resume=&_lastSeq=0`);
    await withTimeout(once(there.socket, "open"), "the raw socket to open");
    // No `session` frame first: the first message is the endpoint's own, from the owner.
    assert.equal(await there.message(0), "hello hal on n1");
    assert.equal(await here.ask("sessions"), "sessions 2");
    there.socket.terminate();
    await n1.printed("disconnect hal 1006");
    assert.equal(await here.ask("sessions"), "sessions 1", "not kept waiting for a resume");
    here.socket.close();
  });

  test("a node that dies ends the raw sessions it served: the owner's onDisconnect runs (1006), and the gateway closes the sessions of the dead owner (1012)", async () => {
    // Two more nodes with a 1.5 s lease, so a killed one is known dead soon.
    const a = await startNode(redisUrl, "n4", "1500");
    const b = await startNode(redisUrl, "n5", "1500");
    try {
      // eve's actor lives on n4, with a socket through n5; fay's lives on n5, with a socket through n4.
      const eve = await openOn(a, "eve");
      const eveThroughB = await openOn(b, "eve");
      const fay = await openOn(b, "fay");
      const fayThroughA = await openOn(a, "fay");
      assert.equal(await eveThroughB.ask("where"), "n4");
      assert.equal(await fayThroughA.ask("where"), "n5");
      assert.equal(await eve.ask("sessions"), "sessions 2");
      const fayClosed = fayThroughA.closed();
      const fayOnDeadNode = fay.closed();

      b.child.kill("SIGKILL");
      await once(b.child, "exit");
      await a.printed("disconnect eve 1006");
      assert.equal((await fayClosed).code, 1012, "the owner is gone: reconnect");
      assert.equal(await eve.ask("sessions"), "sessions 1", "nothing left hanging on the owner");
      assert.equal(a.lines.filter((line) => line.startsWith("disconnect eve")).length, 1);
      assert.equal((await fayOnDeadNode).code, 1006, "fay's own socket went with its node");
      eve.socket.close();
    } finally {
      b.child.kill("SIGKILL");
      await stopNode(a).catch(() => a.child.kill("SIGKILL"));
    }
  });
});
