// Cluster mode figures, one run: a redis-server of its own (AOF, appendfsync always) and warren
// nodes (benchmark/servers/warren.mjs with WARREN_CLUSTER), each in its own process, driven from
// this process with the `ws` package; socket.io 4 with @socket.io/redis-adapter on the same
// redis-server for the fan-out comparison (benchmark/servers/socketio.mjs with SOCKETIO_REDIS).
//
//   node benchmark/cluster.mjs [--calls 2000] [--clients 100] [--duration 5] [--members 300]
//                              [--messages 200] [--rounds 3] [--lease 1500] [--takeovers 20]
//
// Scenarios, each run `rounds` times interleaved, medians reported:
//   calls      sequential calls of one user (`noop`, no state): through the node that holds its
//              actor (local) and through another node (forwarded over Redis): p50 / p99 latency
//   commits    `clients` users calling `increment` (a persisted change, strict durability), one in
//              flight each, for `duration` s: ops/s on a cluster node (written through to Redis)
//              and on a single node without cluster (sled only)
//   fanout     `members` sessions on each of 3 nodes in one room; one publisher sends `messages`:
//              deliveries/s across the cluster, the same with every member on one node, and
//              socket.io with its Redis adapter across 3 processes
//   takeover   (once, `takeovers` trials) a node holding a user's actor is SIGKILLed: time until
//              an increment through another node is answered with the user's state (p50 / p99).
//              Every node runs with a `lease` ms lease (renewed every third of it); the takeover
//              waits for it to run out, so it takes between 2/3 of a lease and a lease
//
// Prints a table and writes benchmark/results/cluster-<date>.json.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { WarrenCaller } from "./warren-caller.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? Number(argv[i + 1]) : fallback;
};
const CALLS = option("calls", 2000);
const CLIENTS = option("clients", 100);
const DURATION = option("duration", 5);
const MEMBERS = option("members", 300);
const MESSAGES = option("messages", 200);
const ROUNDS = option("rounds", 3);
const LEASE_MS = option("lease", 1500);
const TAKEOVERS = option("takeovers", 20);

async function freePort() {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address();
  probe.close();
  return port;
}

async function waitForOutput(child, text, what) {
  let output = "";
  const timer = setTimeout(() => {
    throw new Error(`${what} did not start: ${output}`);
  }, 20_000);
  for await (const chunk of child.stdout) {
    output += chunk;
    if (output.includes(text)) break;
  }
  clearTimeout(timer);
  return output;
}

async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "warren-bench-redis-"));
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await waitForOutput(child, "Ready to accept connections", "redis-server");
  return { url: `redis://127.0.0.1:${port}`, stop: () => (child.kill(), rmSync(dir, { recursive: true, force: true })) };
}

/** A warren bench server; `cluster`: the Redis URL (or none for a single node). */
async function startNode(cluster, node) {
  const env = { ...process.env, ...(cluster ? { WARREN_CLUSTER: cluster, WARREN_NODE: node, WARREN_LEASE_MS: String(LEASE_MS) } : {}) };
  const child = spawn(process.execPath, [join(here, "servers/warren.mjs"), "0"], { stdio: ["ignore", "pipe", "inherit"], env });
  const output = await waitForOutput(child, "READY", `node ${node}`);
  const port = Number(/READY (\d+)/.exec(output)[1]);
  return { port, child, stop: () => child.kill() };
}

/** A socket.io bench server sharing rooms through Redis. */
async function startSocketIo(redisUrl) {
  const env = { ...process.env, SOCKETIO_REDIS: redisUrl };
  const child = spawn(process.execPath, [join(here, "servers/socketio.mjs"), "0"], { stdio: ["ignore", "pipe", "inherit"], env });
  const output = await waitForOutput(child, "READY", "socket.io");
  const port = Number(/READY (\d+)/.exec(output)[1]);
  return { port, stop: () => child.kill() };
}

/** A socket.io 4 client over engine.io 4's WebSocket transport, speaking the protocol's text frames. */
class SocketIoClient {
  constructor(port) {
    this.socket = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    this.handlers = new Map();
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("error", reject);
      this.socket.on("message", (data) => {
        const text = String(data);
        if (text.startsWith("0{")) this.socket.send("40");
        else if (text.startsWith("40")) resolve();
        else if (text === "2") this.socket.send("3");
        else if (text.startsWith("42")) {
          const [event, payload] = JSON.parse(text.slice(2));
          this.handlers.get(event)?.(payload);
        }
      });
    });
  }

  emit(event, data) {
    this.socket.send(`42${JSON.stringify([event, data])}`);
  }

  on(event, handler) {
    this.handlers.set(event, handler);
  }
}

/** `members` socket.io sessions per port in room "bench"; one publisher; deliveries/s. */
async function fanoutSocketIo(ports, publisherPort) {
  const members = [];
  for (const port of ports) {
    for (let i = 0; i < MEMBERS; i++) {
      const client = new SocketIoClient(port);
      await client.opened;
      client.emit("join", { room: "bench" });
      members.push(client);
    }
  }
  const publisher = new SocketIoClient(publisherPort);
  await publisher.opened;
  const expected = members.length;
  let total = 0;
  let probeSeen = 0;
  let onProbe;
  let onDone;
  members.forEach((client) =>
    client.on("tick", (data) => {
      if (data.probe) {
        if (++probeSeen === expected) onProbe();
        return;
      }
      total++;
      if (total === expected * MESSAGES) onDone();
    }),
  );
  for (;;) {
    probeSeen = 0;
    const probed = new Promise((resolve) => (onProbe = resolve));
    publisher.emit("publish", { probe: true });
    const ok = await Promise.race([probed.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
    if (ok) break;
  }
  const finished = new Promise((resolve) => (onDone = resolve));
  const start = performance.now();
  for (let n = 0; n < MESSAGES; n++) publisher.emit("publish", { n });
  await Promise.race([finished, new Promise((r) => setTimeout(r, 60_000))]);
  const seconds = (performance.now() - start) / 1000;
  const complete = total === expected * MESSAGES;
  for (const client of [...members, publisher]) client.socket.terminate();
  return { deliveries_per_s: Math.round(total / seconds), complete, delivered: total, expected: expected * MESSAGES };
}

/**
 * One takeover: a fresh node places a user's actor and stores a count, is SIGKILLed, and an
 * increment through `survivor` is retried (each attempt on a new session, given 250 ms) until it
 * is answered. Returns the milliseconds from the kill to that answer, and whether the count
 * went on from the stored one.
 */
async function takeover(redisUrl, survivor, trial) {
  const victim = await startNode(redisUrl, `victim-${trial}`);
  const user = `takeover-${trial}`;
  const owner = new WarrenCaller(`ws://127.0.0.1:${victim.port}/ws?token=${user}`);
  await owner.opened;
  let count = 0;
  for (let i = 0; i < 3; i++) count = await owner.increment();
  // The kill lands anywhere between two lease renewals, as a crash would.
  await new Promise((resolve) => setTimeout(resolve, Math.random() * LEASE_MS));
  const killed = once(victim.child, "exit");
  const start = performance.now();
  victim.child.kill("SIGKILL");
  await killed;
  for (;;) {
    const caller = new WarrenCaller(`ws://127.0.0.1:${survivor.port}/ws?token=${user}`);
    const answer = await Promise.race([
      caller.opened.then(() => caller.increment()).catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 250)),
    ]);
    caller.close();
    if (answer !== undefined) return { ms: performance.now() - start, kept: answer >= count + 1 };
  }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function sequentialCalls(caller) {
  const latencies = [];
  for (let i = 0; i < CALLS; i++) {
    const start = process.hrtime.bigint();
    await caller.call("noop");
    latencies.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  latencies.sort((a, b) => a - b);
  return { p50_us: percentile(latencies, 50), p99_us: percentile(latencies, 99) };
}

/** Calls increment in a closed loop from `CLIENTS` users for DURATION s; ops/s. */
async function commits(port, prefix) {
  const callers = Array.from({ length: CLIENTS }, (_, i) => new WarrenCaller(`ws://127.0.0.1:${port}/ws?token=${prefix}-${i}`));
  await Promise.all(callers.map((c) => c.opened));
  let done = 0;
  let running = true;
  const loops = callers.map(async (caller) => {
    while (running) {
      await caller.increment();
      done++;
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const start = done;
  const began = performance.now();
  await new Promise((resolve) => setTimeout(resolve, DURATION * 1000));
  const ops = ((done - start) * 1000) / (performance.now() - began);
  running = false;
  await Promise.all(loops);
  for (const caller of callers) caller.close();
  return ops;
}

/** `members` sessions per port in room "bench"; one publisher; deliveries/s. */
async function fanout(ports, publisherPort, tag) {
  const members = [];
  for (const port of ports) {
    for (let i = 0; i < MEMBERS; i++) {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${tag}-${port}-${i}`);
      await once(socket, "open");
      socket.send(JSON.stringify({ type: "join", data: { room: "bench" } }));
      members.push(socket);
    }
  }
  const publisher = new WarrenCaller(`ws://127.0.0.1:${publisherPort}/ws?token=${tag}-publisher`);
  await publisher.opened;
  publisher.socket.send(JSON.stringify({ type: "join", data: { room: "bench" } }));
  // Wait until a probe reaches every member (joins and subscriptions settled).
  const expected = members.length;
  const counts = new Array(expected).fill(0);
  let total = 0;
  let probeSeen = 0;
  let onProbe;
  members.forEach((socket, i) =>
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data));
      if (frame.data?.type !== "tick") return;
      if (frame.data.probe) {
        if (++probeSeen === expected) onProbe();
        return;
      }
      counts[i]++;
      total++;
      if (total === expected * MESSAGES) onDone();
    }),
  );
  for (;;) {
    probeSeen = 0;
    const probed = new Promise((resolve) => (onProbe = resolve));
    publisher.socket.send(JSON.stringify({ type: "publish", data: { probe: true } }));
    const ok = await Promise.race([probed.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
    if (ok) break;
  }
  let onDone;
  const finished = new Promise((resolve) => (onDone = resolve));
  const start = performance.now();
  for (let n = 0; n < MESSAGES; n++) publisher.socket.send(JSON.stringify({ type: "publish", data: { n } }));
  await Promise.race([finished, new Promise((r) => setTimeout(r, 60_000))]);
  const seconds = (performance.now() - start) / 1000;
  const complete = total === expected * MESSAGES;
  for (const socket of members) socket.terminate();
  publisher.close();
  return { deliveries_per_s: Math.round(total / seconds), complete, delivered: total, expected: expected * MESSAGES };
}

const redis = await startRedis();
const nodes = [];
for (const id of ["n1", "n2", "n3"]) nodes.push(await startNode(redis.url, id));
const single = await startNode(undefined, "single");
const socketio = [];
for (let i = 0; i < 3; i++) socketio.push(await startSocketIo(redis.url));
const results = {
  calls_local: [],
  calls_forwarded: [],
  commits_cluster: [],
  commits_single: [],
  fanout_cluster: [],
  fanout_single: [],
  fanout_socketio_cluster: [],
  takeovers: [],
};
try {
  for (let round = 1; round <= ROUNDS; round++) {
    const user = `lat-${round}`;
    const local = new WarrenCaller(`ws://127.0.0.1:${nodes[0].port}/ws?token=${user}`);
    await local.opened;
    await local.call("noop");
    const forwarded = new WarrenCaller(`ws://127.0.0.1:${nodes[1].port}/ws?token=${user}`);
    await forwarded.opened;
    await forwarded.call("noop");
    results.calls_local.push(await sequentialCalls(local));
    results.calls_forwarded.push(await sequentialCalls(forwarded));
    local.close();
    forwarded.close();
    results.commits_cluster.push(await commits(nodes[0].port, `c${round}`));
    results.commits_single.push(await commits(single.port, `s${round}`));
    results.fanout_cluster.push(await fanout(nodes.map((n) => n.port), nodes[0].port, `fc${round}`));
    results.fanout_single.push(await fanout([single.port, single.port, single.port], single.port, `fs${round}`));
    results.fanout_socketio_cluster.push(await fanoutSocketIo(socketio.map((s) => s.port), socketio[0].port));
    process.stderr.write(`round ${round} done\n`);
  }
  for (let trial = 1; trial <= TAKEOVERS; trial++) results.takeovers.push(await takeover(redis.url, nodes[trial % 3], trial));
} finally {
  for (const node of [...nodes, single, ...socketio]) node.stop();
  redis.stop();
}
const takeoverMs = results.takeovers.map((t) => t.ms).sort((a, b) => a - b);

const summary = {
  date: new Date().toISOString(),
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`,
  node: process.version,
  params: { CALLS, CLIENTS, DURATION, MEMBERS, MESSAGES, ROUNDS, LEASE_MS, TAKEOVERS },
  calls_local: { p50_us: median(results.calls_local.map((r) => r.p50_us)), p99_us: median(results.calls_local.map((r) => r.p99_us)) },
  calls_forwarded: { p50_us: median(results.calls_forwarded.map((r) => r.p50_us)), p99_us: median(results.calls_forwarded.map((r) => r.p99_us)) },
  commits_per_s: { cluster_redis_strict: Math.round(median(results.commits_cluster)), single_sled_strict: Math.round(median(results.commits_single)) },
  fanout_deliveries_per_s: {
    cluster_3_nodes: median(results.fanout_cluster.map((r) => r.deliveries_per_s)),
    single_node: median(results.fanout_single.map((r) => r.deliveries_per_s)),
    socketio_redis_adapter_3_processes: median(results.fanout_socketio_cluster.map((r) => r.deliveries_per_s)),
    all_complete: [...results.fanout_cluster, ...results.fanout_single, ...results.fanout_socketio_cluster].every((r) => r.complete),
  },
  takeover_after_sigkill_ms: {
    lease_ms: LEASE_MS,
    p50: Math.round(percentile(takeoverMs, 50)),
    p99: Math.round(percentile(takeoverMs, 99)),
    state_kept: results.takeovers.every((t) => t.kept),
  },
  rounds: results,
};
const fmt = (n) => Math.round(n).toLocaleString("en-US");
console.log(`cluster mode, ${ROUNDS} rounds, medians (${summary.machine}, node ${process.version})`);
console.log(`calls, one user, sequential:  local p50 ${fmt(summary.calls_local.p50_us)} µs, p99 ${fmt(summary.calls_local.p99_us)} µs`);
console.log(`                              forwarded p50 ${fmt(summary.calls_forwarded.p50_us)} µs, p99 ${fmt(summary.calls_forwarded.p99_us)} µs`);
console.log(`persisted increments (strict): cluster (Redis AOF always) ${fmt(summary.commits_per_s.cluster_redis_strict)}/s, single node (sled) ${fmt(summary.commits_per_s.single_sled_strict)}/s`);
console.log(`room fan-out, ${MEMBERS * 3} members:  3 nodes ${fmt(summary.fanout_deliveries_per_s.cluster_3_nodes)} deliveries/s, one node ${fmt(summary.fanout_deliveries_per_s.single_node)} deliveries/s (complete: ${summary.fanout_deliveries_per_s.all_complete})`);
console.log(`                              socket.io + redis-adapter, 3 processes ${fmt(summary.fanout_deliveries_per_s.socketio_redis_adapter_3_processes)} deliveries/s`);
console.log(`takeover after SIGKILL (lease ${LEASE_MS} ms, ${TAKEOVERS} trials): p50 ${fmt(summary.takeover_after_sigkill_ms.p50)} ms, p99 ${fmt(summary.takeover_after_sigkill_ms.p99)} ms (state kept: ${summary.takeover_after_sigkill_ms.state_kept})`);
mkdirSync(join(here, "results"), { recursive: true });
const file = join(here, "results", `cluster-${summary.date.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
console.log(`results: ${file}`);
process.exit(0);
