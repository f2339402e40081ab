// Where an idle socket's memory goes: opens N idle sockets (benchmark/loadgen `idle`, source
// addresses spread over 127.0.0.x) against each server variant and reports, per socket, the
// change in RSS, in V8's heap (after full collections, per space) and in glibc malloc's bytes
// (in use and taken from the system: `malloc_stats()` called through gdb). Variants run
// interleaved, round by round, pinned like the harness (server core 0, generator core 1).
//
//   node benchmark/memory/idle.mjs --sockets 10000 --rounds 2 \
//     --variants 'warren,warren@/tmp/warren-base,warren+MALLOC_ARENA_MAX=2,rust,ws'
//
// A variant is `kind[@dir][+ENV=VALUE...]`: kind is warren (benchmark/servers/warren.mjs of the
// repo at dir, default this one), ws (benchmark/servers/ws-echo.mjs) or rust (the pure
// tokio-tungstenite server, benchmark/servers/rust-ceiling). Needs gdb for the malloc figures.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const bench = join(here, "..");
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const sockets = Number(option("sockets", 10000));
const rounds = Number(option("rounds", 1));
const variants = option("variants", "warren").split(",");
const loadgen = join(bench, "loadgen/target/release/loadgen");
const ceiling = join(bench, "servers/rust-ceiling/target/release/rust-ceiling");
const probe = join(here, "probe.cjs");
const pin = existsSync("/usr/bin/taskset");
const taskset = (core, cmd) => (pin ? ["taskset", "-c", String(core), ...cmd] : cmd);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parseVariant(spec) {
  const [head, ...envs] = spec.split("+");
  const [kind, dir] = head.split("@");
  const env = Object.fromEntries(envs.map((e) => e.split("=")));
  const root = resolve(dir ?? join(bench, ".."));
  let cmd;
  if (kind === "warren") cmd = [process.execPath, "--expose-gc", "--require", probe, join(root, "benchmark/servers/warren.mjs"), "0"];
  else if (kind === "ws") cmd = [process.execPath, "--expose-gc", "--require", probe, join(root, "benchmark/servers/ws-echo.mjs"), "0"];
  else if (kind === "rust") cmd = [ceiling, "0"];
  else throw new Error(`unknown variant kind ${kind}`);
  return { spec, kind, env, cmd, node: kind !== "rust" };
}

function rssKib(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) : NaN;
}

/** glibc's totals (every arena, mmapped chunks included), printed by the server's own stderr. */
async function mallocStats(server) {
  const mark = server.err.length;
  try {
    execFileSync("gdb", ["-p", String(server.child.pid), "-batch", "-ex", "call (void) malloc_stats()"], { stdio: "ignore", timeout: 60_000 });
  } catch {
    return { in_use_kib: NaN, system_kib: NaN, arenas: NaN };
  }
  for (let i = 0; i < 50 && !/Total \(incl\. mmap\):\s*\nsystem bytes\s*=\s*\d+\s*\nin use bytes\s*=\s*\d+/.test(server.err.slice(mark)); i++) await sleep(20);
  const text = server.err.slice(mark);
  const total = /Total \(incl\. mmap\):\s*\nsystem bytes\s*=\s*(\d+)\s*\nin use bytes\s*=\s*(\d+)/.exec(text);
  return {
    in_use_kib: total ? Math.round(Number(total[2]) / 1024) : NaN,
    system_kib: total ? Math.round(Number(total[1]) / 1024) : NaN,
    arenas: (text.match(/^Arena \d+:/gm) ?? []).length,
  };
}

/** V8's figures after full collections (node servers only), from the preloaded probe. */
async function v8Stats(server) {
  if (!server.variant.node) return null;
  const mark = server.err.length;
  process.kill(server.child.pid, "SIGUSR2");
  for (let i = 0; i < 500; i++) {
    const match = /MEM (\{.*\})\n/.exec(server.err.slice(mark));
    if (match) return JSON.parse(match[1]);
    await sleep(20);
  }
  throw new Error("no MEM line from the probe");
}

async function sample(server) {
  const rss = rssKib(server.child.pid);
  const v8 = await v8Stats(server);
  const malloc = await mallocStats(server);
  return { rss_kib: rss, rss_after_gc_kib: rssKib(server.child.pid), v8, malloc };
}

async function start(variant) {
  const [bin, ...rest] = taskset(0, variant.cmd);
  const child = spawn(bin, rest, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WARREN_WORKER_THREADS: "1", ...variant.env } });
  const server = { child, variant, err: "" };
  child.stderr.on("data", (chunk) => (server.err += chunk));
  server.port = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = /READY (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.on("exit", (code) => reject(new Error(`${variant.spec} exited with ${code}: ${server.err.slice(-500)}`)));
  });
  child.stdout.resume();
  return server;
}

async function stop(server) {
  const exited = new Promise((resolve) => server.child.once("exit", resolve));
  server.child.kill("SIGTERM");
  const timer = setTimeout(() => server.child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

async function measure(variant) {
  const server = await start(variant);
  try {
    await sleep(500);
    const before = await sample(server);
    const [bin, ...rest] = taskset(1, [loadgen, "idle", "--sockets", String(sockets), "--port", String(server.port), "--proto", "warren", "--timeout", "120"]);
    const gen = spawn(bin, rest, { stdio: ["pipe", "pipe", "pipe"] });
    let genErr = "";
    let genOut = "";
    gen.stdout.on("data", (c) => (genOut += c));
    const genExit = new Promise((resolve) => gen.once("exit", resolve));
    await new Promise((resolve, reject) => {
      gen.stderr.on("data", (chunk) => {
        genErr += chunk;
        if (/IDLE OPEN/.test(genErr)) resolve();
      });
      gen.once("exit", () => reject(new Error(`generator ended early: ${genErr.slice(-300)}`)));
    });
    await sleep(1000);
    const held = await sample(server);
    gen.stdin.end();
    await genExit;
    const opened = JSON.parse(genOut.trim().split("\n").pop()).results.opened;
    return { before, held, opened };
  } finally {
    await stop(server);
  }
}

const per = (a, b, n) => Math.round(((b - a) / n) * 100) / 100;

function perSocket({ before, held, opened }) {
  const row = {
    opened,
    rss: per(before.rss_kib, held.rss_kib, opened),
    rss_after_gc: per(before.rss_after_gc_kib, held.rss_after_gc_kib, opened),
    malloc_in_use: per(before.malloc.in_use_kib, held.malloc.in_use_kib, opened),
    malloc_system: per(before.malloc.system_kib, held.malloc.system_kib, opened),
    arenas: held.malloc.arenas,
  };
  if (held.v8) {
    row.v8_heap_used = per(before.v8.heap_used_kib, held.v8.heap_used_kib, opened);
    row.v8_heap_committed = per(before.v8.heap_total_kib, held.v8.heap_total_kib, opened);
    row.v8_external = per(before.v8.external_kib, held.v8.external_kib, opened);
    row.v8_spaces_used = Object.fromEntries(
      Object.keys(held.v8.spaces)
        .map((name) => [name, per(before.v8.spaces[name]?.used_kib ?? 0, held.v8.spaces[name].used_kib, opened)])
        .filter(([, v]) => v !== 0),
    );
    row.v8_spaces_committed = Object.fromEntries(
      Object.keys(held.v8.spaces)
        .map((name) => [name, per(before.v8.spaces[name]?.committed_kib ?? 0, held.v8.spaces[name].committed_kib, opened)])
        .filter(([, v]) => v !== 0),
    );
  }
  return row;
}

const results = {};
for (let round = 1; round <= rounds; round++) {
  for (const spec of variants) {
    const variant = parseVariant(spec);
    const run = await measure(variant);
    const row = perSocket(run);
    (results[spec] ??= []).push({ ...row, raw: run });
    console.error(`round ${round} ${spec}: ${JSON.stringify(row)}`);
  }
}
console.log(`\nKiB per idle socket at ${sockets} sockets (RSS as the harness reads it, before any collection)`);
for (const [spec, rows] of Object.entries(results)) {
  for (const { raw, ...row } of rows) console.log(`${spec.padEnd(40)} ${JSON.stringify(row)}`);
}
