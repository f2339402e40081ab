// The side-by-side benchmark harness: starts each server pinned to core 0, drives it with a load
// generator pinned to core 1, stops it, and interleaves the servers round by round so drift on the
// machine hits every server alike. Prints medians, ranges and ratios (warren ÷ peer), writes
// benchmark/results/<date>.json and draws benchmark/results/chart.svg from it (--quick and --smoke
// write to benchmark/results/tmp/ instead, which git ignores).
//
//   npm run bench                      all scenarios, 3 rounds (≤ 10 minutes on 2 cores)
//   npm run bench -- --quick           1 round, short runs (≤ 2 minutes)
//   npm run bench -- --only echo1,calls --servers warren,bun --rounds 5
//   npm run bench -- --smoke           a few seconds, warren and ws only (CI keeps the harness working)
//   npm run bench -- --no-chart        skip the chart
//
//   npm run bench -- --only idle1k     scenarios left out by default can be named
//   npm run bench -- --only echo1 --servers warren,baseline --baseline /path/to/other/checkout
//                                      A/B: `baseline` is warren's benchmark app run from another
//                                      built checkout (its lib/ and addon), interleaved with this one
//
// Servers: warren, ws, socket.io, Bun (Bun.serve + uWebSockets pub/sub) and the pure-Rust ceiling
// in every scenario but `calls`; `calls` (actor calls that change persisted state) runs warren,
// RivetKit 2.3.x and RivetKit 2.2.1. Generators: the Rust load generator (benchmark/loadgen) for
// every scenario but `calls`, which benchmark/calls.mjs drives (warren with raw `ws` call frames,
// RivetKit through its own client). Peers that need installs (socket.io, Bun, vega for the chart:
// benchmark/package.json; RivetKit: benchmark/peers/rivetkit-*/package.json) are installed on
// first use; --smoke needs none of them. Every server process (RivetKit 2.3's orphaned engine
// included) is killed by PID, with a SIGKILL fallback, also when the harness is interrupted.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, cpus, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const quick = flag("quick");
const smoke = flag("smoke");
const rounds = Number(option("rounds", quick || smoke ? 1 : 3));
const pin = availableParallelism() >= 2 && existsSync("/usr/bin/taskset");
const loadgen = join(here, "loadgen/target/release/loadgen");
const ceiling = join(here, "servers/rust-ceiling/target/release/rust-ceiling");
const bunBin = join(here, "node_modules/@oven/bun-linux-x64/bin/bun");
const peerDir = (name) => join(here, "peers", name);

/** A free loopback port p such that p + extra (for each extra) is free too. */
async function freePort(extra = []) {
  const free = (port) =>
    new Promise((resolve) => {
      const probe = createServer();
      probe.once("error", () => resolve(false));
      probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 10000);
    if ((await free(base)) && (await Promise.all(extra.map((d) => free(base + d)))).every(Boolean)) return base;
  }
  throw new Error("no free port");
}

/**
 * The servers; each prints `READY <port>` once listening. `port` (optional) picks the port up front
 * for servers that cannot take 0; `scenarios` limits a server to the scenarios it can run.
 */
const SERVERS = {
  warren: { cmd: () => [process.execPath, join(here, "servers/warren.mjs"), "0"], proto: "warren", target: "warren" },
  // The same app attached to a node:http server (`server.attach`): sockets handed over by Node.
  "warren-attached": {
    cmd: () => [process.execPath, join(here, "servers/warren.mjs"), "0", "--attach"],
    proto: "warren",
    target: "warren",
    // Only when --servers names it (a full run does not need a second warren).
    rounds: 0,
    why: "only when --servers names it",
  },
  // The same app with `metrics: true`, its /metrics scraped once a second (as Prometheus would).
  "warren-metrics": {
    cmd: () => [process.execPath, join(here, "servers/warren.mjs"), "0", "--metrics"],
    proto: "warren",
    target: "warren",
    // Only when --servers names it (a full run does not need a second warren).
    rounds: 0,
    why: "only when --servers names it",
  },
  // The same app, its clients speaking MessagePack (`encoding=msgpack`): binary frames each way.
  "warren-msgpack": {
    cmd: () => [process.execPath, join(here, "servers/warren.mjs"), "0"],
    proto: "warren-msgpack",
    target: "warren",
    // Only when --servers names it (a full run does not need a second warren).
    rounds: 0,
    why: "only when --servers names it",
  },
  ws: { cmd: () => [process.execPath, join(here, "servers/ws-echo.mjs"), "0"], proto: "warren" },
  socketio: { cmd: () => [process.execPath, join(here, "servers/socketio.mjs"), "0"], proto: "socketio" },
  bun: { cmd: () => [bunBin, join(here, "servers/bun.ts"), "0"], proto: "warren" },
  rust: { cmd: () => [ceiling, "0"], proto: "warren" },
  // RivetKit 2.3 (Rust core): this Node process is an envoy of the Rivet Engine, which the core spawns
  // as an orphan in its own process group; it listens on port, port+1 and port+10, and is killed by
  // PID with the rest of the server's process tree.
  "rivetkit-2.3": {
    cmd: (port) => [process.execPath, join(peerDir("rivetkit-2.3"), "server.mjs"), String(port)],
    port: () => freePort([1, 10]),
    storage: true,
    quiet: true,
    target: "rivetkit-2.3",
    scenarios: ["calls"],
    killAfterMs: 1500,
    // Creating its 100 actors takes 50–100 s here (the engine manages 1–2 a second), so unless
    // --servers names it, it runs in round 1 only and not at all with --quick: 3 rounds of it would
    // not fit in 10 minutes, nor one in --quick's 2.
    rounds: quick ? 0 : 1,
    why: "creating its 100 actors takes 50–100 s here",
  },
  // RivetKit 2.2.1: the TypeScript runtime with its in-process file-system driver, one process. It
  // ignores SIGTERM, hence the short SIGKILL fallback.
  "rivetkit-2.2": {
    cmd: (port) => [process.execPath, join(peerDir("rivetkit-2.2"), "server.mjs"), String(port)],
    port: () => freePort(),
    storage: true,
    quiet: true,
    target: "rivetkit-2.2",
    scenarios: ["calls"],
    killAfterMs: 1500,
  },
};

// `--baseline <dir>`: another built warren checkout, run as the server `baseline` (A/B runs).
const baselineDir = option("baseline", undefined);
if (baselineDir) {
  SERVERS.baseline = {
    cmd: () => [process.execPath, join(resolve(baselineDir), "benchmark/servers/warren.mjs"), "0"],
    proto: "warren",
    target: "warren",
  };
}

const secs = (full, short) => String(quick || smoke ? short : full);
const loadgenDriver = (argv) => (port, server) => [loadgen, ...argv, "--port", String(port), "--proto", SERVERS[server].proto, "--timeout", "120"];

/** Scenarios: the generator command and the figure each reports. */
const SCENARIOS = {
  echo1: {
    what: "echo through a JS handler, 50 clients, 32 B, 1 in flight",
    driver: loadgenDriver(["echo", "--clients", "50", "--inflight", "1", "--size", "32", "--duration", secs(4, 2), "--warmup", secs(1, 0.5)]),
    figure: (r) => r.msgs_per_s,
    unit: "msgs/s",
  },
  echo8: {
    what: "echo through a JS handler, 50 clients, 32 B, 8 in flight",
    driver: loadgenDriver(["echo", "--clients", "50", "--inflight", "8", "--size", "32", "--duration", secs(4, 2), "--warmup", secs(1, 0.5)]),
    figure: (r) => r.msgs_per_s,
    unit: "msgs/s",
  },
  fanout1k: {
    what: "fan-out: 1 publisher → 1,000 room members",
    driver: loadgenDriver(["fanout", "--members", "1000", "--messages", secs(1500, 150), "--warmup-messages", "50"]),
    figure: (r) => r.deliveries_per_s,
    unit: "deliveries/s",
  },
  fanout10k: {
    what: "fan-out: 1 publisher → 10,000 room members",
    driver: loadgenDriver(["fanout", "--members", "10000", "--messages", secs(200, 20), "--warmup-messages", "10"]),
    figure: (r) => r.deliveries_per_s,
    unit: "deliveries/s",
    skip: ["socketio"],
  },
  idle1k: {
    what: "idle memory: server RSS per open socket at 1,000 sockets",
    driver: loadgenDriver(["idle", "--sockets", "1000"]),
    figure: (r) => r.rss_per_socket_kib,
    unit: "KiB/socket",
    lowerIsBetter: true,
    optional: true,
  },
  idle10k: {
    what: "idle memory: server RSS per open socket at 10,000 sockets",
    driver: loadgenDriver(["idle", "--sockets", "10000"]),
    figure: (r) => r.rss_per_socket_kib,
    unit: "KiB/socket",
    lowerIsBetter: true,
  },
  accept: {
    what: "accept rate: connect + upgrade (token read in JS: warren's extractMeta, Bun's fetch) + close",
    driver: loadgenDriver(["accept", "--connections", secs(4000, 1000), "--concurrency", "50"]),
    figure: (r) => r.connections_per_s,
    unit: "conns/s",
  },
  calls: {
    what: "actor calls that change persisted state: 100 clients calling increment, 1 in flight each",
    driver: (port, server) => [
      process.execPath,
      join(here, "calls.mjs"),
      "--target",
      SERVERS[server].target,
      "--port",
      String(port),
      "--clients",
      "100",
      "--duration",
      secs(5, 2),
      "--warmup",
      secs(1, 1),
      // RivetKit 2.3 needs 50–100 s here to create its 100 actors before the measured window.
      "--timeout",
      "240",
    ],
    figure: (r) => r.ops_per_s,
    unit: "ops/s",
    servers: ["warren", "baseline", "rivetkit-2.3", "rivetkit-2.2"],
  },
};

const only = option("only", smoke ? "echo1" : undefined)?.split(",");
// idle1k is a cross-check of idle10k at a smaller count: only with --only, to keep the run short.
const scenarioNames = only ?? Object.keys(SCENARIOS).filter((name) => !SCENARIOS[name].optional);
for (const name of scenarioNames) if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}`);
const explicitServers = option("servers", smoke ? "warren,ws" : undefined);
const serverNames = (explicitServers ?? Object.keys(SERVERS).join(",")).split(",");
for (const name of serverNames) if (!SERVERS[name]) throw new Error(`unknown server ${name}`);
const chart = !smoke && !flag("no-chart");

/** Whether `server` takes part in `scenario`. */
const runs_in = (scenario, server) =>
  !SCENARIOS[scenario].skip?.includes(server) &&
  (SCENARIOS[scenario].servers ?? Object.keys(SERVERS).filter((s) => !SERVERS[s].scenarios)).includes(server) &&
  (!SERVERS[server].scenarios || SERVERS[server].scenarios.includes(scenario));
const roundsFor = (server) => (explicitServers || SERVERS[server].rounds === undefined ? rounds : Math.min(rounds, SERVERS[server].rounds));
const used = serverNames.filter((server) => roundsFor(server) > 0 && scenarioNames.some((scenario) => runs_in(scenario, server)));
const notes = serverNames
  .filter((server) => roundsFor(server) < rounds && scenarioNames.some((scenario) => runs_in(scenario, server)))
  .map((server) => `${server}: ${roundsFor(server) === 0 ? "not run with --quick" : `round${roundsFor(server) > 1 ? "s" : ""} 1${roundsFor(server) > 1 ? `–${roundsFor(server)}` : ""} only`} (${SERVERS[server].why})`);

/**
 * The warren addon the servers load: a debug build (napi build without --release) has a
 * `.debug_info` section; the release profile strips it. Reads the ELF section headers.
 */
function warrenBuild() {
  const addon = join(here, "..", "warren.linux-x64-gnu.node");
  if (!existsSync(addon)) return "missing";
  try {
    const elf = readFileSync(addon);
    const shoff = Number(elf.readBigUInt64LE(0x28));
    const shentsize = elf.readUInt16LE(0x3a);
    const shnum = elf.readUInt16LE(0x3c);
    const strtab = Number(elf.readBigUInt64LE(shoff + elf.readUInt16LE(0x3e) * shentsize + 0x18));
    for (let i = 0; i < shnum; i++) {
      const nameAt = strtab + elf.readUInt32LE(shoff + i * shentsize);
      if (elf.toString("latin1", nameAt, elf.indexOf(0, nameAt)) === ".debug_info") return "debug (built without --release)";
    }
    return "release";
  } catch {
    return "unknown";
  }
}

function npmInstall(dir) {
  console.error(`installing ${dir} (npm install) …`);
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: dir, stdio: "inherit" });
}

function prepare() {
  const cargo = (manifest) =>
    execFileSync("cargo", ["build", "--release", "--quiet", "--manifest-path", join(here, manifest)], { stdio: "inherit" });
  cargo("loadgen/Cargo.toml");
  if (used.includes("rust")) cargo("servers/rust-ceiling/Cargo.toml");
  const needsBenchDeps =
    (used.includes("socketio") && !existsSync(join(here, "node_modules/socket.io"))) ||
    (used.includes("bun") && !existsSync(bunBin)) ||
    (chart && !existsSync(join(here, "node_modules/vega-lite")));
  if (needsBenchDeps) npmInstall(here);
  for (const peer of ["rivetkit-2.3", "rivetkit-2.2"]) {
    if (used.includes(peer) && !existsSync(join(peerDir(peer), "node_modules/rivetkit"))) npmInstall(peerDir(peer));
  }
}

const taskset = (core, cmd) => (pin ? ["taskset", "-c", String(core), ...cmd] : cmd);

/** Fields of /proc/<pid>/stat after the command name (index 0 = state), or null if it is gone. */
function procStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(") ") + 2).split(" ");
  } catch {
    return null;
  }
}

/**
 * A throughput scenario's figure per second of server CPU (median over rounds), or undefined for
 * memory and latency scenarios or when the CPU was not sampled.
 */
function perCpuSecond(scenario, runs) {
  const { unit, lowerIsBetter } = SCENARIOS[scenario];
  if (lowerIsBetter || !unit.endsWith("/s")) return undefined;
  const perCpu = runs
    .filter((r) => (r.result.server_cpu_pct ?? 0) > 0)
    .map((r) => r.figure / (r.result.server_cpu_pct / 100));
  return perCpu.length ? Math.round(median(perCpu)) : undefined;
}

/** CPU seconds used by a process so far, from /proc. */
function cpuSeconds(pid) {
  const fields = procStat(pid);
  return fields ? (Number(fields[11]) + Number(fields[12])) / 100 : NaN;
}

/** `pid` and every live descendant (RivetKit 2.3's engine, Bun's helpers) found in /proc. */
function processTree(pid) {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = procStat(entry);
    if (!fields || fields[0] === "Z") continue;
    const ppid = Number(fields[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(entry));
  }
  const tree = [];
  const queue = [pid];
  while (queue.length) {
    const next = queue.shift();
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

const alive = (pid) => {
  const fields = procStat(pid);
  return fields !== null && fields[0] !== "Z";
};

function rssKib(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) : NaN;
}

/** Every process a running server owns, so nothing survives the harness (even on Ctrl-C). */
const live = new Set();
/** Storage directories of running servers, removed even on Ctrl-C. */
const storages = new Set();
function killAllNow() {
  for (const pid of [...live]) for (const child of alive(pid) ? processTree(pid) : []) live.add(child);
  for (const pid of live) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  for (const dir of storages) rmSync(dir, { recursive: true, force: true });
}
process.on("exit", killAllNow);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    killAllNow();
    process.exit(130);
  });
}

async function startServer(name) {
  const spec = SERVERS[name];
  const chosen = spec.port ? await spec.port() : 0;
  const storage = spec.storage ? mkdtempSync(join(tmpdir(), `warren-bench-${name}-`)) : null;
  if (storage) storages.add(storage);
  const [bin, ...rest] = taskset(0, spec.cmd(chosen));
  const env = { ...process.env, WARREN_WORKER_THREADS: "1" };
  if (storage) Object.assign(env, { RIVETKIT_STORAGE_PATH: storage, RIVET_LOG_LEVEL: "warn", RIVET_RUN_SERVICES: "0" });
  const child = spawn(bin, rest, { stdio: ["ignore", "pipe", spec.quiet ? "pipe" : "inherit"], env });
  live.add(child.pid);
  let log = "";
  child.stderr?.on("data", (chunk) => (log = (log + chunk).slice(-4000)));
  const server = { name, child, storage, tree: [child.pid], log: () => log };
  try {
    server.port = await new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`${name} did not start`)), 90_000);
      child.stdout.on("data", (chunk) => {
        out += chunk;
        const match = /READY (\d+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.on("error", reject);
      child.on("exit", (code, signal) => reject(new Error(`${name} exited with ${code ?? signal}: ${log.slice(-500)}`)));
    });
  } catch (error) {
    server.tree = processTree(child.pid);
    await stopServer(server);
    throw error;
  }
  child.stdout.resume();
  server.tree = processTree(child.pid);
  for (const pid of server.tree) live.add(pid);
  return server;
}

/**
 * RivetKit 2.3's engine, from the runtime file it writes in the storage directory: found even if
 * the Node process died before the harness saw the engine in its process tree. Checked against the
 * process's command line so a reused PID is never signalled.
 */
function enginePid(storage) {
  try {
    const { pid } = JSON.parse(readFileSync(join(storage, ".rivetkit/var/engine/runtime.json"), "utf8"));
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.startsWith(join(here, "peers")) ? [pid] : [];
  } catch {
    return [];
  }
}

/** SIGTERM to the server's whole process tree, SIGKILL to whatever is left after a grace period. */
async function stopServer(server) {
  const pids = [
    ...new Set([
      ...server.tree,
      ...(alive(server.child.pid) ? processTree(server.child.pid) : []),
      ...(server.storage ? enginePid(server.storage) : []),
    ]),
  ];
  const signal = (sig) => {
    for (const pid of pids) {
      try {
        if (alive(pid)) process.kill(pid, sig);
      } catch {}
    }
  };
  signal("SIGTERM");
  const graceMs = SERVERS[server.name].killAfterMs ?? 5000;
  const start = Date.now();
  while (pids.some(alive) && Date.now() - start < graceMs) await new Promise((resolve) => setTimeout(resolve, 50));
  if (pids.some(alive)) {
    signal("SIGKILL");
    while (pids.some(alive) && Date.now() - start < graceMs + 5000) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const left = pids.filter(alive);
  if (left.length) console.error(`warning: ${server.name} left processes ${left.join(", ")} after SIGKILL`);
  for (const pid of pids) if (!alive(pid)) live.delete(pid);
  if (server.storage) {
    rmSync(server.storage, { recursive: true, force: true });
    storages.delete(server.storage);
  }
}

/** Runs the generator; for idle, samples the server's RSS while the sockets are held. */
function drive(cmd, serverPid) {
  return new Promise((resolve, reject) => {
    const [bin, ...rest] = taskset(1, cmd);
    const idle = cmd[1] === "idle";
    const baseline = idle ? rssKib(serverPid) : 0;
    const gen = spawn(bin, rest, { stdio: ["pipe", "pipe", "pipe"] });
    live.add(gen.pid);
    let out = "";
    let err = "";
    let rssHeld = NaN;
    gen.stdout.on("data", (chunk) => (out += chunk));
    gen.stderr.on("data", (chunk) => {
      err += chunk;
      if (idle && /IDLE OPEN/.test(err) && Number.isNaN(rssHeld)) {
        setTimeout(() => {
          rssHeld = rssKib(serverPid);
          gen.stdin.end();
        }, 1000);
      }
    });
    gen.on("exit", () => {
      live.delete(gen.pid);
      try {
        const report = JSON.parse(out.trim().split("\n").pop());
        if (report.error) return reject(new Error(report.error));
        const result = report.results;
        if (report.client) result.client = report.client;
        if (idle) {
          result.rss_baseline_kib = baseline;
          result.rss_held_kib = rssHeld;
          result.rss_per_socket_kib = Math.round(((rssHeld - baseline) / result.opened) * 10) / 10;
        }
        resolve(result);
      } catch (error) {
        reject(new Error(`generator: ${error.message}; stderr: ${err.slice(-500)}`));
      }
    });
    if (!idle) gen.stdin.end();
  });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** What each server ran with, for the results file and the chart caption. */
function versions() {
  const pkg = (dir, name) => {
    try {
      return JSON.parse(readFileSync(join(dir, "node_modules", name, "package.json"), "utf8")).version;
    } catch {
      return undefined;
    }
  };
  const bun = () => {
    try {
      return execFileSync(bunBin, ["--version"], { encoding: "utf8" }).trim();
    } catch {
      return undefined;
    }
  };
  const all = {
    warren: JSON.parse(readFileSync(join(here, "../package.json"), "utf8")).version,
    "warren-attached": "warren's app on node:http (server.attach)",
    "warren-msgpack": "warren's app, clients on encoding=msgpack",
    node: process.version,
    ws: pkg(here, "ws") ?? pkg(join(here, ".."), "ws"),
    socketio: pkg(here, "socket.io"),
    bun: bun(),
    rust: "tokio-tungstenite (benchmark/servers/rust-ceiling)",
    "rivetkit-2.3": pkg(peerDir("rivetkit-2.3"), "rivetkit"),
    "rivetkit-2.2": pkg(peerDir("rivetkit-2.2"), "rivetkit"),
  };
  return Object.fromEntries(Object.entries(all).filter(([name]) => name === "node" || used.includes(name)));
}

/**
 * One benchmark run at a time on this machine: two runs pinned to the same cores would disturb
 * each other's figures. A second run waits (up to 20 minutes) for the first to finish.
 */
const LOCK = join(tmpdir(), "warren-bench.lock");
async function takeLock() {
  const deadline = Date.now() + 20 * 60_000;
  for (let announced = false; ; ) {
    try {
      writeFileSync(LOCK, String(process.pid), { flag: "wx" });
      process.on("exit", () => {
        try {
          if (readFileSync(LOCK, "utf8") === String(process.pid)) rmSync(LOCK);
        } catch {}
      });
      return;
    } catch {}
    let holder = NaN;
    try {
      holder = Number(readFileSync(LOCK, "utf8"));
    } catch {}
    let holderIsRun = false;
    try {
      holderIsRun = alive(holder) && readFileSync(`/proc/${holder}/cmdline`, "utf8").includes("run.mjs");
    } catch {}
    if (!holderIsRun) {
      rmSync(LOCK, { force: true }); // left by a run that died
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another benchmark run (pid ${holder}) still holds ${LOCK}`);
    if (!announced) console.error(`waiting for another benchmark run (pid ${holder}) to finish …`);
    announced = true;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function main() {
  await takeLock();
  const wallStart = performance.now();
  prepare();
  const build = warrenBuild();
  const started = new Date();
  const runs = [];
  for (let round = 1; round <= rounds; round++) {
    for (const scenario of scenarioNames) {
      for (const server of serverNames) {
        if (!runs_in(scenario, server)) continue;
        if (round > roundsFor(server)) continue;
        const runStart = performance.now();
        let result;
        let srv;
        let cpuBefore = 0;
        let wallBefore = performance.now();
        try {
          srv = await startServer(server);
          cpuBefore = srv.tree.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
          wallBefore = performance.now();
          const cmd = SCENARIOS[scenario].driver(srv.port, server);
          // The generator reads the server's CPU at the edges of its measured window.
          if (cmd[0] === loadgen) cmd.push("--server-pids", srv.tree.join(","));
          result = await drive(cmd, srv.child.pid);
        } catch (error) {
          result = { error: error.message };
        }
        const wall = (performance.now() - wallBefore) / 1000;
        if (srv) {
          const cpu = srv.tree.reduce((sum, pid) => sum + (cpuSeconds(pid) || 0), 0);
          // The measured window's share when the generator read it (fan-out: the publishing,
          // not the connecting and joining before it), else the whole run's.
          result.server_cpu_pct = result.server_window?.cpu_pct ?? Math.round(((cpu - cpuBefore) / wall) * 1000) / 10;
          if (srv.tree.length > 1) result.server_processes = srv.tree.length;
          await stopServer(srv);
        }
        const figure = result.error ? NaN : SCENARIOS[scenario].figure(result);
        const genCpu = result.generator?.cpu_pct ?? NaN;
        const took_s = Math.round((performance.now() - runStart) / 100) / 10;
        runs.push({ round, scenario, server, figure, took_s, result });
        console.error(
          `round ${round} ${scenario.padEnd(9)} ${server.padEnd(12)} ${Number.isNaN(figure) ? `error: ${result.error}` : `${figure} ${SCENARIOS[scenario].unit}`}` +
            ` (server cpu ${result.server_cpu_pct}%, generator cpu ${genCpu}%; ${took_s} s)`,
        );
      }
    }
  }
  const summary = {};
  for (const scenario of scenarioNames) {
    summary[scenario] = {};
    for (const server of serverNames) {
      const mine = runs.filter((r) => r.scenario === scenario && r.server === server && !Number.isNaN(r.figure));
      if (mine.length === 0) continue;
      const figures = mine.map((r) => r.figure);
      const p50 = mine.map((r) => r.result.latency_us?.p50).filter((v) => v !== undefined);
      const p99 = mine.map((r) => r.result.latency_us?.p99).filter((v) => v !== undefined);
      const genCpu = mine.map((r) => r.result.generator?.cpu_pct ?? 0);
      summary[scenario][server] = {
        median: median(figures),
        min: Math.min(...figures),
        max: Math.max(...figures),
        p50_us: p50.length ? median(p50) : undefined,
        p99_us: p99.length ? median(p99) : undefined,
        server_cpu_pct: median(mine.map((r) => r.result.server_cpu_pct ?? 0)),
        // Work per server CPU-second: a multi-threaded server and a single-threaded one compare
        // equally only per unit of CPU they burn (throughput scenarios only).
        per_cpu_second: perCpuSecond(scenario, mine),
        generator_cpu_pct: median(genCpu),
        generator_bound: median(genCpu) >= 90,
        client: mine[0].result.client,
      };
    }
  }
  const machine = `${cpus()[0]?.model?.trim() ?? "cpu"} ×${availableParallelism()}, ${Math.round(totalmem() / 2 ** 30)} GiB`;
  const method =
    `${rounds} interleaved round(s) after warm-up, medians [min – max]` +
    `${pin ? "; server pinned to core 0, generator to core 1 (taskset)" : "; unpinned"}`;
  const peers = versions();
  console.log(`\nwarren benchmarks — ${started.toISOString().slice(0, 10)}, ${machine}, node ${process.version}, ${method}`);
  console.log(`peers: ${Object.entries(peers).map(([k, v]) => `${k} ${v ?? "?"}`).join(", ")}`);
  console.log(`warren addon: ${build}${build === "release" ? "" : "  ← WARNING: warren's figures are not those of a release build"}`);
  for (const note of notes) console.log(`note: ${note}`);
  console.log("");
  for (const scenario of scenarioNames) {
    const { what, unit, lowerIsBetter } = SCENARIOS[scenario];
    console.log(`${what} (${unit}${lowerIsBetter ? ", lower is better" : ""})`);
    const base = summary[scenario].warren?.median;
    for (const [server, s] of Object.entries(summary[scenario])) {
      const ratio = base && server !== "warren" ? (lowerIsBetter ? s.median / base : base / s.median) : undefined;
      const latency = s.p99_us !== undefined ? `  p50 ${s.p50_us} µs  p99 ${s.p99_us} µs` : "";
      const perCpu = s.per_cpu_second !== undefined ? `  ${s.per_cpu_second} per server CPU-s` : "";
      console.log(
        `  ${server.padEnd(12)} ${String(s.median).padStart(11)}  [${s.min} – ${s.max}]${latency}` +
          `${ratio ? `  warren ×${ratio.toFixed(2)}` : ""}${perCpu}` +
          `  (cpu: server ${s.server_cpu_pct}%, generator ${s.generator_cpu_pct}%${s.generator_bound ? ", generator-bound" : ""})`,
      );
    }
    const failed = runs.filter((r) => r.scenario === scenario && Number.isNaN(r.figure));
    for (const r of failed) console.log(`  ${r.server.padEnd(12)} round ${r.round} failed: ${r.result.error.split("\n")[0].slice(0, 200)}`);
    if (scenario === "calls") {
      const clients = [...new Set(Object.entries(summary.calls).map(([server, s]) => `${server}: ${s.client}`))];
      console.log(`  clients — ${clients.join("; ")}`);
    }
  }
  // Rough runs (--smoke, --quick) stay out of the committed results and chart.
  const out = join(here, "results", smoke || quick ? "tmp" : "");
  mkdirSync(out, { recursive: true });
  const file = join(out, `${started.toISOString().replace(/[:.]/g, "-")}.json`);
  const scenarios = Object.fromEntries(
    scenarioNames.map((name) => [name, { what: SCENARIOS[name].what, unit: SCENARIOS[name].unit, lowerIsBetter: !!SCENARIOS[name].lowerIsBetter }]),
  );
  writeFileSync(
    file,
    `${JSON.stringify({ started, rounds, quick, pinned: pin, machine, method, node: process.version, warren_build: build, peers, notes, scenarios, summary, runs }, null, 2)}\n`,
  );
  console.log(`\nresults: ${file}`);
  if (chart) {
    try {
      const { renderChart } = await import(pathToFileURL(join(here, "chart.mjs")).href);
      console.log(`chart:   ${await renderChart(file, join(out, "chart.svg"))}`);
    } catch (error) {
      console.error(`chart failed: ${error.stack ?? error}`);
    }
  }
  console.log(`took ${Math.round((performance.now() - wallStart) / 1000)} s`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
