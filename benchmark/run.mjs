// The side-by-side benchmark harness: starts each server pinned to core 0, drives it with the
// same load generator pinned to core 1, stops it, and interleaves the servers round by round so
// drift on the machine hits every server alike. Prints medians, ranges and ratios (warren ÷
// peer) and writes benchmark/results/<date>.json.
//
//   npm run bench                      all scenarios, 3 rounds
//   npm run bench -- --quick           1 round, short runs
//   npm run bench -- --only echo1,fanout1k --rounds 5
//   npm run bench -- --smoke           a few seconds, warren and ws only (CI keeps the harness working)
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

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

/** The servers; each prints `READY <port>` once listening. */
const SERVERS = {
  warren: { cmd: [process.execPath, join(here, "servers/warren.mjs"), "0"], proto: "warren" },
  ws: { cmd: [process.execPath, join(here, "servers/ws-echo.mjs"), "0"], proto: "warren" },
  socketio: { cmd: [process.execPath, join(here, "servers/socketio.mjs"), "0"], proto: "socketio" },
  rust: { cmd: [ceiling, "0"], proto: "warren" },
};

const secs = (full, short) => String(quick || smoke ? short : full);
/** Scenarios: the loadgen arguments and the figure each reports. */
const SCENARIOS = {
  echo1: {
    what: "echo through a JS handler, 50 clients, 32 B, 1 in flight",
    argv: ["echo", "--clients", "50", "--inflight", "1", "--size", "32", "--duration", secs(8, 2), "--warmup", secs(2, 1)],
    figure: (r) => r.msgs_per_s,
    unit: "msgs/s",
  },
  echo8: {
    what: "echo through a JS handler, 50 clients, 32 B, 8 in flight",
    argv: ["echo", "--clients", "50", "--inflight", "8", "--size", "32", "--duration", secs(8, 2), "--warmup", secs(2, 1)],
    figure: (r) => r.msgs_per_s,
    unit: "msgs/s",
  },
  fanout1k: {
    what: "fan-out: 1 publisher → 1,000 room members",
    argv: ["fanout", "--members", "1000", "--messages", secs(1000, 200), "--warmup-messages", "50"],
    figure: (r) => r.deliveries_per_s,
    unit: "deliveries/s",
  },
  fanout10k: {
    what: "fan-out: 1 publisher → 10,000 room members",
    argv: ["fanout", "--members", "10000", "--messages", secs(200, 30), "--warmup-messages", "10"],
    figure: (r) => r.deliveries_per_s,
    unit: "deliveries/s",
    skip: ["socketio"],
  },
  idle1k: {
    what: "idle memory: server RSS per open socket at 1,000 sockets",
    argv: ["idle", "--sockets", "1000"],
    figure: (r) => r.rss_per_socket_kib,
    unit: "KiB/socket",
    lowerIsBetter: true,
  },
  idle10k: {
    what: "idle memory: server RSS per open socket at 10,000 sockets",
    argv: ["idle", "--sockets", "10000"],
    figure: (r) => r.rss_per_socket_kib,
    unit: "KiB/socket",
    lowerIsBetter: true,
  },
  accept: {
    what: "accept rate: connect + upgrade (extractMeta in JS for warren) + close",
    argv: ["accept", "--connections", secs(4000, 500), "--concurrency", "50"],
    figure: (r) => r.connections_per_s,
    unit: "conns/s",
  },
};

const only = option("only", smoke ? "echo1" : undefined)?.split(",");
const serverNames = option("servers", smoke ? "warren,ws" : Object.keys(SERVERS).join(",")).split(",");
const scenarioNames = only ?? Object.keys(SCENARIOS);
for (const name of scenarioNames) if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}`);

function build() {
  const cargo = (manifest) =>
    execFileSync("cargo", ["build", "--release", "--quiet", "--manifest-path", join(here, manifest)], { stdio: "inherit" });
  cargo("loadgen/Cargo.toml");
  if (serverNames.includes("rust")) cargo("servers/rust-ceiling/Cargo.toml");
  if (serverNames.includes("socketio") && !existsSync(join(here, "node_modules/socket.io"))) {
    execFileSync("npm", ["install", "--no-audit", "--no-fund"], { cwd: here, stdio: "inherit" });
  }
}

const taskset = (core, cmd) => (pin ? ["taskset", "-c", String(core), ...cmd] : cmd);

/** CPU seconds used by a process so far, from /proc. */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

function rssKib(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) : NaN;
}

async function startServer(name) {
  const [bin, ...rest] = taskset(0, SERVERS[name].cmd);
  const child = spawn(bin, rest, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, WARREN_WORKER_THREADS: "1" } });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start`)), 20_000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = /READY (\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.on("exit", (code) => reject(new Error(`${name} exited with ${code}`)));
  });
  child.stdout.resume();
  return { child, port };
}

async function stopServer(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Runs the generator; for idle, samples the server's RSS while the sockets are held. */
function drive(argv, port, proto, serverPid) {
  return new Promise((resolve, reject) => {
    const [bin, ...rest] = taskset(1, [loadgen, ...argv, "--port", String(port), "--proto", proto, "--timeout", "120"]);
    const idle = argv[0] === "idle";
    const baseline = idle ? rssKib(serverPid) : 0;
    const gen = spawn(bin, rest, { stdio: ["pipe", "pipe", "pipe"] });
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
      try {
        const result = JSON.parse(out.trim().split("\n").pop());
        if (result.error) return reject(new Error(result.error));
        if (idle) {
          result.results.rss_baseline_kib = baseline;
          result.results.rss_held_kib = rssHeld;
          result.results.rss_per_socket_kib = Math.round(((rssHeld - baseline) / result.results.opened) * 10) / 10;
        }
        resolve(result.results);
      } catch (error) {
        reject(new Error(`loadgen: ${error.message}; stderr: ${err.slice(-500)}`));
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

async function main() {
  build();
  const started = new Date();
  const runs = [];
  for (let round = 1; round <= rounds; round++) {
    for (const scenario of scenarioNames) {
      for (const server of serverNames) {
        if (SCENARIOS[scenario].skip?.includes(server)) continue;
        const { child, port } = await startServer(server);
        const cpuBefore = cpuSeconds(child.pid);
        const wallBefore = performance.now();
        let result;
        try {
          result = await drive(SCENARIOS[scenario].argv, port, SERVERS[server].proto, child.pid);
        } catch (error) {
          result = { error: error.message };
        }
        const wall = (performance.now() - wallBefore) / 1000;
        result.server_cpu_pct = Math.round(((cpuSeconds(child.pid) - cpuBefore) / wall) * 1000) / 10;
        await stopServer(child);
        const figure = result.error ? NaN : SCENARIOS[scenario].figure(result);
        const genCpu = result.generator?.cpu_pct ?? NaN;
        runs.push({ round, scenario, server, figure, result });
        console.error(
          `round ${round} ${scenario.padEnd(9)} ${server.padEnd(8)} ${Number.isNaN(figure) ? `error: ${result.error}` : `${figure} ${SCENARIOS[scenario].unit}`}` +
            ` (server cpu ${result.server_cpu_pct}%, generator cpu ${genCpu}%)`,
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
      const p99 = mine.map((r) => r.result.latency_us?.p99).filter((v) => v !== undefined);
      const genCpu = mine.map((r) => r.result.generator?.cpu_pct ?? 0);
      summary[scenario][server] = {
        median: median(figures),
        min: Math.min(...figures),
        max: Math.max(...figures),
        p50_us: median(mine.map((r) => r.result.latency_us?.p50).filter((v) => v !== undefined)) || undefined,
        p99_us: p99.length ? median(p99) : undefined,
        generator_bound: median(genCpu) >= 90,
      };
    }
  }
  console.log(`\nwarren benchmarks — ${started.toISOString().slice(0, 10)}, ${cpus()[0]?.model ?? "cpu"} ×${availableParallelism()}, ` +
    `node ${process.version}, ${rounds} round(s)${pin ? ", server on core 0, generator on core 1" : ", unpinned"}\n`);
  for (const scenario of scenarioNames) {
    const { what, unit, lowerIsBetter } = SCENARIOS[scenario];
    console.log(`${what} (${unit})`);
    const base = summary[scenario].warren?.median;
    for (const [server, s] of Object.entries(summary[scenario])) {
      const ratio = base && server !== "warren" ? (lowerIsBetter ? s.median / base : base / s.median) : undefined;
      const latency = s.p99_us !== undefined ? `  p50 ${s.p50_us} µs  p99 ${s.p99_us} µs` : "";
      console.log(
        `  ${server.padEnd(9)} ${String(s.median).padStart(11)}  [${s.min} – ${s.max}]${latency}` +
          `${ratio ? `  warren ×${ratio.toFixed(2)}` : ""}${s.generator_bound ? "  (generator-bound)" : ""}`,
      );
    }
  }
  const out = join(here, "results", smoke ? "tmp" : "");
  mkdirSync(out, { recursive: true });
  const file = join(out, `${started.toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ started, rounds, pinned: pin, node: process.version, summary, runs }, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
