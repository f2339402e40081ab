// Actor figures that the load generator does not cover: committed state changes per second
// under strict and relaxed durability, and hibernation (memory of 10,000 hibernated actors
// against 10,000 awake ones, and wake latency). The server runs pinned to core 0 with real
// files; the clients (the `ws` package) run here, pinned to core 1 when possible.
//
//   node benchmark/actors.mjs            full run
//   node benchmark/actors.mjs --quick    shorter, 2,000 actors
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { WarrenCaller } from "./warren-caller.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes("--quick");
const pin = availableParallelism() >= 2 && existsSync("/usr/bin/taskset");
const SECONDS = quick ? 3 : 10;
const ACTORS = quick ? 2_000 : 10_000;
const WAKE_SAMPLES = quick ? 200 : 1_000;

async function startServer(env = {}) {
  const command = [process.execPath, "--expose-gc", join(here, "servers/warren.mjs"), "0"];
  const [bin, ...args] = pin ? ["taskset", "-c", "0", ...command] : command;
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, WARREN_WORKER_THREADS: "1", ...env } });
  const port = await new Promise((resolve, reject) => {
    child.stdout.on("data", (chunk) => {
      const match = /READY (\d+)/.exec(String(chunk));
      if (match) resolve(Number(match[1]));
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, port };
}

async function stopServer(child) {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  setTimeout(() => child.kill("SIGKILL"), 5000).unref();
  await exited;
}

async function openMany(port, prefix, count, concurrency = 200) {
  const callers = [];
  for (let i = 0; i < count; i += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, count - i) }, (_, j) => new WarrenCaller(`ws://127.0.0.1:${port}/ws?token=${prefix}${i + j}`));
    await Promise.all(batch.map((c) => c.opened));
    callers.push(...batch);
  }
  return callers;
}

const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
const summary = (samples) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50_ms: +percentile(sorted, 0.5).toFixed(3), p99_ms: +percentile(sorted, 0.99).toFixed(3) };
};

async function commits(durability) {
  const { child, port } = await startServer({ WARREN_DURABILITY: durability });
  const callers = await openMany(port, `c-${durability}-`, 100);
  const latencies = [];
  let done = 0;
  const until = performance.now() + SECONDS * 1000;
  await Promise.all(
    callers.map(async (caller) => {
      while (performance.now() < until) {
        const started = performance.now();
        await caller.call("increment");
        latencies.push(performance.now() - started);
        done++;
      }
    }),
  );
  for (const caller of callers) caller.socket.terminate();
  await stopServer(child);
  return { durability, actors: 100, commits_per_s: Math.round(done / SECONDS), ...summary(latencies) };
}

async function hibernation() {
  const { child, port } = await startServer();
  const admin = new WarrenCaller(`ws://127.0.0.1:${port}/ws?token=admin`);
  await admin.opened;
  const base = await admin.call("admin.memory");
  const callers = await openMany(port, "h", ACTORS);
  for (let i = 0; i < callers.length; i += 500) await Promise.all(callers.slice(i, i + 500).map((c) => c.call("increment")));
  const awake = await admin.call("admin.memory");
  const awakeRtt = [];
  for (let i = 0; i < WAKE_SAMPLES; i++) {
    const started = performance.now();
    await callers[i].call("increment");
    awakeRtt.push(performance.now() - started);
  }
  const { hibernated } = await admin.call("admin.hibernate-all");
  let asleep = await admin.call("admin.memory");
  const wakeRtt = [];
  for (let i = 0; i < WAKE_SAMPLES; i++) {
    const started = performance.now();
    await callers[i].call("increment");
    wakeRtt.push(performance.now() - started);
  }
  for (const caller of callers) caller.socket.terminate();
  admin.socket.terminate();
  await stopServer(child);
  const perActor = (m) => ({
    rss_mib: +(m.rss / 2 ** 20).toFixed(1),
    heap_mib: +(m.heapUsed / 2 ** 20).toFixed(1),
    rss_kib_per_actor: +((m.rss - base.rss) / 1024 / ACTORS).toFixed(2),
    heap_kib_per_actor: +((m.heapUsed - base.heapUsed) / 1024 / ACTORS).toFixed(2),
    hibernated: m.hibernated,
  });
  return {
    actors: ACTORS,
    hibernated,
    awake: perActor(awake),
    asleep: perActor(asleep),
    call_rtt_awake: summary(awakeRtt),
    call_rtt_waking: summary(wakeRtt),
  };
}

const started = new Date();
const results = { started, pinned: pin, node: process.version, commits: [], hibernation: null };
for (const durability of ["strict", "relaxed"]) {
  const result = await commits(durability);
  results.commits.push(result);
  console.log(`commits, 100 actors, ${durability}: ${result.commits_per_s}/s  p50 ${result.p50_ms} ms  p99 ${result.p99_ms} ms`);
}
results.hibernation = await hibernation();
const h = results.hibernation;
console.log(`${h.actors} actors with one socket each, awake:      RSS ${h.awake.rss_mib} MiB (${h.awake.rss_kib_per_actor} KiB/actor), JS heap ${h.awake.heap_mib} MiB (${h.awake.heap_kib_per_actor} KiB/actor)`);
console.log(`${h.actors} actors with one socket each, hibernated: RSS ${h.asleep.rss_mib} MiB (${h.asleep.rss_kib_per_actor} KiB/actor), JS heap ${h.asleep.heap_mib} MiB (${h.asleep.heap_kib_per_actor} KiB/actor); ${h.hibernated} hibernated`);
console.log(`call round trip to an awake actor: p50 ${h.call_rtt_awake.p50_ms} ms, p99 ${h.call_rtt_awake.p99_ms} ms; waking a hibernated one: p50 ${h.call_rtt_waking.p50_ms} ms, p99 ${h.call_rtt_waking.p99_ms} ms`);
mkdirSync(join(here, "results"), { recursive: true });
const file = join(here, "results", `actors-${started.toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(`results: ${file}`);
