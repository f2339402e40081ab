// warren doing the benchmark app's work (the same frames the peer servers send):
//
//   node warren.mjs [port] [--attach] [--metrics]     (or PORT=...; 0 or nothing = any free port)
//
// With --attach, warren answers the upgrades of a node:http server (`server.attach`) that
// listens on the port, instead of listening itself.
// Prints `READY <port>` on stdout once listening on 127.0.0.1.
// - `extractMeta` reads `?token=` in JS (the accept-rate scenario measures it);
// - `echo` -> `ctx.emit("echo", data)`;
// - `join` -> `ctx.actor.joinRoom(room)`; `publish` -> `ctx.emit.toRoom("bench").emit("tick", data)`
//   (fan-out in Rust, one encoding for every member);
// - `increment` (a call) -> `++ctx.state.count`, the reply is the new count; `noop` (a call) -> 1.
// With WARREN_CLUSTER=redis://… (and WARREN_NODE=<id>, WARREN_LEASE_MS) it runs as one node of a
// cluster. With --metrics it runs with `metrics: true` and scrapes its own /metrics once a second.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer, get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRoomHandler, createServer, defineConnection } from "../../index.js";

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const BenchConnection = defineConnection({
  name: "BenchConnection",
  rooms: { bench: "BenchRoom" },
  extractMeta(req) {
    const token = req.query.get("token");
    if (!token) throw new Error("token required");
    return { userId: token };
  },
  state: { count: 0 },
  onConnect: (ctx) => void users.add(ctx.meta.userId),
});
BenchConnection.on("echo", (ctx, data) => ctx.emit("echo", data));
BenchConnection.on("join", (ctx, data) => ctx.actor.joinRoom(data.room));
BenchConnection.on("publish", (ctx, data) => ctx.emit.toRoom("bench").emit("tick", data));
BenchConnection.on("increment", (ctx) => ++ctx.state.count);
BenchConnection.on("noop", () => 1);

// Tools for benchmark/actors.mjs (hibernation and memory figures): every user seen, forced
// hibernation, and the server's memory after a full collection (run node with --expose-gc).
const users = new Set();
BenchConnection.on("admin.hibernate-all", () => {
  let hibernated = 0;
  for (const user of users) if (server.hibernate("BenchConnection", user)) hibernated++;
  return { hibernated };
});
BenchConnection.on("admin.memory", async () => {
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (let i = 0; i < 3; i++) globalThis.gc?.();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed, ...server.stats() };
});

const BenchRoom = createRoomHandler({ name: "BenchRoom", connectionBinding: "BenchConnection" });

// Real files (fsync included) in a fresh directory per run; WARREN_DURABILITY picks the mode.
const storage = mkdtempSync(join(tmpdir(), "warren-bench-"));
process.on("exit", () => rmSync(storage, { recursive: true, force: true }));
const server = createServer({
  connections: [BenchConnection],
  rooms: [BenchRoom],
  maxSessions: 1_000_000,
  storage,
  durability: process.env.WARREN_DURABILITY === "relaxed" ? "relaxed" : "strict",
  // WARREN_CLUSTER=redis://host:port (and WARREN_NODE=<id>, WARREN_LEASE_MS): one node of a cluster.
  cluster: process.env.WARREN_CLUSTER
    ? {
        redis: process.env.WARREN_CLUSTER,
        nodeId: process.env.WARREN_NODE,
        leaseMs: process.env.WARREN_LEASE_MS ? Number(process.env.WARREN_LEASE_MS) : undefined,
      }
    : undefined,
  metrics: process.argv.includes("--metrics"),
});
let address;
if (process.argv.includes("--attach")) {
  const httpServer = createHttpServer((_req, res) => res.writeHead(404).end());
  server.attach(httpServer);
  await new Promise((resolve) => httpServer.listen(port, "127.0.0.1", resolve));
  address = httpServer.address();
} else {
  address = await server.listen({ port, host: "127.0.0.1" });
}
if (process.argv.includes("--metrics")) {
  const scrape = () => get(`http://127.0.0.1:${address.port}/metrics`, (res) => res.resume()).on("error", () => {});
  setInterval(scrape, 1000).unref();
}
process.stdout.write(`READY ${address.port}\n`);
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => server.close().then(() => process.exit(0)));
