// Driver for the `calls` scenario: N clients, each calling `increment` on its own actor (a change to
// persisted state) in a closed loop, one call in flight per client. The load generator does not
// speak RivetKit's protocol, so this Node process drives every target instead, each through the
// client a user of that server would use:
//
//   warren        the `ws` package with raw call frames
//                 {"type":"call","id":n,"event":"increment","data":{}} → {"type":"reply","id":n,"data":count};
//                 client i connects as `?token=calls-i`, so it is its own connection actor
//   rivetkit-2.3  RivetKit's own client (`rivetkit/client` from benchmark/peers/rivetkit-2.3, default
//   rivetkit-2.2  encoding): createClient(endpoint).counter.getOrCreate(["calls-i"]).connect(), then
//                 `await conn.increment(1)`
//
// Persistence: warren's bench server runs with strict durability (a call's reply leaves only once
// its state change is flushed to disk); RivetKit runs with its default state persistence (the
// actor's state is saved by RivetKit's own throttled saves, so a reply can precede the write).
//
//   node benchmark/calls.mjs --target warren|rivetkit-2.3|rivetkit-2.2 --port N
//        [--clients 100] [--duration 8] [--warmup 2] [--open-concurrency 4] [--timeout 120]
//
// run.mjs starts the server pinned to core 0 and this driver pinned to core 1. Prints one JSON
// object on stdout, shaped like the load generator's: {scenario, target, client, params, results}
// or {error}. Results: ops_per_s, latency_us {p50, p99, …} over the measured window (the calls
// that complete inside it), and generator {cpu_pct} for this process.
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { WarrenCaller } from "./warren-caller.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};
const target = option("target", "warren");
const port = Number(option("port", 0));
const clients = Number(option("clients", 100));
const duration = Number(option("duration", 8));
const warmup = Number(option("warmup", 2));
const timeout = Number(option("timeout", 120));

const CLIENTS = {
  warren: "ws 8 (raw warren call frames, JSON)",
  "rivetkit-2.3": "rivetkit/client 2.3 (createClient → getOrCreate([key]).connect(), default encoding)",
  "rivetkit-2.2": "rivetkit/client 2.2.1 (createClient → getOrCreate([key]).connect(), default encoding)",
};

function report(body) {
  process.stdout.write(
    `${JSON.stringify({ scenario: "calls", target, client: CLIENTS[target], params: { clients, duration, warmup }, ...body })}\n`,
  );
  process.exit(body.error ? 1 : 0);
}

setTimeout(() => report({ error: `hard timeout after ${timeout}s` }), timeout * 1000).unref();

/** Opens the clients; each has `increment(): Promise<number>` and `close()`. */
async function open() {
  if (target === "warren") {
    const callers = Array.from({ length: clients }, (_, i) => new WarrenCaller(`ws://127.0.0.1:${port}/ws?token=calls-${i}`));
    await Promise.all(callers.map((c) => c.opened));
    return { callers, dispose: async () => callers.forEach((c) => c.close()) };
  }
  if (target === "rivetkit-2.3" || target === "rivetkit-2.2") {
    const { createClient } = await import(pathToFileURL(join(here, "peers", target, "client.mjs")).href);
    const client = createClient(`http://127.0.0.1:${port}`);
    // Actors are created (by the first call on each connection) a few at a time: RivetKit 2.3's engine
    // takes seconds per actor here and, given more at once, often fails to resolve a new actor within
    // its 15 s route timeout; an actor that failed that way keeps failing, so a retry uses a fresh key.
    const open = async (i) => {
      for (let attempt = 0; ; attempt++) {
        const conn = client.counter.getOrCreate([attempt ? `calls-${i}-retry${attempt}` : `calls-${i}`]).connect();
        try {
          await conn.increment(1);
          return { increment: () => conn.increment(1), close: () => conn.dispose() };
        } catch (error) {
          setup.retries++;
          setup.last_error = String(error?.message ?? error).split("\n")[0];
          conn.dispose().catch(() => {});
          if (attempt >= 5) throw error;
        }
      }
    };
    const callers = new Array(clients);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(OPEN_CONCURRENCY, clients) }, async () => {
        while (next < clients) {
          const i = next++;
          callers[i] = await open(i);
        }
      }),
    );
    return {
      callers,
      dispose: async () => {
        await Promise.allSettled(callers.map((c) => c.close()));
        await client.dispose?.();
      },
    };
  }
  throw new Error(`unknown --target ${target}`);
}

/** RivetKit actors created at once during setup (see open()). */
const OPEN_CONCURRENCY = Number(option("open-concurrency", 4));

/** How opening the clients went (RivetKit: actor creation retries). */
const setup = { seconds: 0, retries: 0, last_error: undefined };

const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];

async function main() {
  if (!port) throw new Error("--port is required");
  const setupStart = performance.now();
  const { callers, dispose } = await open();
  // The first call on each client creates (or wakes) its actor; it is not part of any figure.
  await Promise.all(callers.map((c) => c.increment()));
  setup.seconds = Math.round(performance.now() - setupStart) / 1000;
  const t0 = performance.now();
  const measureFrom = t0 + warmup * 1000;
  const until = measureFrom + duration * 1000;
  const latencies = [];
  let cpuStart = null;
  let measureStart = 0;
  let counts = 0;
  let lastCount = new Array(clients).fill(0);
  let decreased = 0;
  let callErrors = 0;
  let firstCallError;
  const cpuTimer = setTimeout(() => {
    cpuStart = process.cpuUsage();
    measureStart = performance.now();
  }, warmup * 1000);
  await Promise.all(
    callers.map(async (caller, i) => {
      while (performance.now() < until) {
        const started = performance.now();
        let count;
        try {
          count = await caller.increment();
        } catch (error) {
          callErrors++;
          firstCallError ??= String(error?.message ?? error).split("\n")[0];
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        const ended = performance.now();
        if (typeof count !== "number" || count <= lastCount[i]) decreased++;
        lastCount[i] = count;
        if (ended >= measureFrom && ended <= until) {
          latencies.push(ended - started);
          counts++;
        }
      }
    }),
  );
  clearTimeout(cpuTimer);
  const wall = (performance.now() - (measureStart || t0)) / 1000;
  const cpu = process.cpuUsage(cpuStart ?? undefined);
  await Promise.race([dispose(), new Promise((resolve) => setTimeout(resolve, 2000))]);
  latencies.sort((a, b) => a - b);
  const us = (ms) => Math.round(ms * 1000);
  report({
    results: {
      ops_per_s: Math.round((counts / duration) * 10) / 10,
      completed: counts,
      // Each reply must be a number above the client's previous one (its own actor's counter).
      out_of_order_or_bad_replies: decreased,
      call_errors: callErrors,
      first_call_error: firstCallError,
      latency_us: {
        p50: us(percentile(latencies, 0.5)),
        p90: us(percentile(latencies, 0.9)),
        p99: us(percentile(latencies, 0.99)),
        max: us(latencies[latencies.length - 1] ?? 0),
      },
      setup,
      generator: { cpu_pct: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 1000) / 10 },
    },
  });
}

main().catch((error) => report({ error: String(error?.stack ?? error).split("\n").slice(0, 3).join("\n"), setup }));
