// Fairness: how much a client flooding the server with events slows a quiet client's
// calls. One warren server in this process; the two clients in a child process (their own event
// loop, so they measure the server, not a shared JS thread):
//
//   quiet    calls `probe` in a closed loop, one in flight; latency of each call is recorded
//   flooder  sends 1 KiB `flood` events as fast as its socket takes them (a handler costing
//            about 20 µs of JS each, so the server's JS thread cannot keep up)
//
// Phases: the quiet client alone, then with the flooder (each up to `--calls` calls or 20 s). Prints one JSON object:
// {alone: {p50_ms, p99_ms, calls}, flooded: {p50_ms, p99_ms, calls}, ratio_p99}.
//
//   node --import tsx benchmark/fairness.mjs [--calls 300]
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";

const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};
const calls = Number(option("calls", 300));

if (argv[0] === "--clients") {
  await clients(argv[1]);
} else {
  await server();
}

async function server() {
  const { createServer, defineConnection } = await import("../index.js");
  const Fair = defineConnection({ name: "Fair" });
  let sink = 0;
  Fair.on("flood", (_ctx, data) => {
    // About 20 µs of work per event: a handler that does something.
    const until = process.hrtime.bigint() + 20_000n;
    while (process.hrtime.bigint() < until) sink++;
    sink += data.pad.length;
  });
  Fair.on("probe", () => 1);
  const warren = createServer({ connections: [Fair], storage: ":memory:" });
  const { url } = await warren.listen({ port: 0 });
  const child = fork(fileURLToPath(import.meta.url), ["--clients", url, "--calls", String(calls)]);
  const [result] = await new Promise((resolve) => child.once("message", (m) => resolve([m])));
  child.kill();
  await warren.close();
  console.log(JSON.stringify(result));
}

async function clients(url) {
  const { default: WebSocket } = await import("ws");
  const open = async () => {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    return socket;
  };
  const quiet = await open();
  let next = 1;
  const waiting = new Map();
  quiet.on("message", (raw) => {
    const frame = JSON.parse(String(raw));
    if (frame.type === "reply") waiting.get(frame.id)?.();
  });
  const call = () =>
    new Promise((resolve) => {
      const id = next++;
      const start = process.hrtime.bigint();
      waiting.set(id, () => {
        waiting.delete(id);
        resolve(Number(process.hrtime.bigint() - start) / 1e6);
      });
      quiet.send(JSON.stringify({ type: "call", id, event: "probe", data: {} }));
    });
  // Up to `calls` calls, for at most 20 s: before the fix a flooded call takes seconds.
  const measure = async () => {
    const latencies = [];
    const end = Date.now() + 20_000;
    while (latencies.length < calls && Date.now() < end) latencies.push(await call());
    latencies.sort((a, b) => a - b);
    const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    return { p50_ms: +at(0.5).toFixed(2), p99_ms: +at(0.99).toFixed(2), calls: latencies.length };
  };
  for (let i = 0; i < 50; i++) await call();
  const alone = await measure();
  const flooder = await open();
  const frame = JSON.stringify({ type: "flood", data: { pad: "x".repeat(1000) } });
  let flooding = true;
  const pump = () => {
    if (!flooding) return;
    while (flooder.bufferedAmount < 4 << 20) flooder.send(frame);
    setImmediate(pump);
  };
  pump();
  // Let the flood build up before measuring.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const flooded = await measure();
  flooding = false;
  process.send({ alone, flooded, ratio_p99: +(flooded.p99_ms / alone.p99_ms).toFixed(1) });
}
