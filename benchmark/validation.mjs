// What validation at the edge costs: the echo scenario (an event in, the same payload out) on a
// warren server whose handler has no schema, and on one whose contract gives the event a zod
// schema. Each server runs in its own process (pinned to core 0 when taskset exists); N `ws`
// clients in this process (core 1) each keep a window of events in flight until each has had M
// echoes back. Modes alternate round by round, so drift on the machine hits both alike; prints
// msgs/s per round, the medians and the ratio (schema ÷ none).
//
//   node benchmark/validation.mjs                      5 rounds, 50 clients × 4000 messages
//   node benchmark/validation.mjs --rounds 3 --clients 20 --messages 2000 --window 32
//
// Needs `npm run build:js` (it loads ../index.js) and the dev dependencies (`ws`, `zod`).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : fallback;
};
const MODES = ["none", "schema"];

if (args[0] === "--serve") await serve(args[1]);
else await drive();

/** The server process: echo with or without a schema; prints its port, stops on stdin's end. */
async function serve(mode) {
  const { createServer, defineConnection, defineContract } = (await import("../index.js")).default;
  const { z } = await import("zod");
  const contract =
    mode === "schema"
      ? defineContract({ clientEvents: { echo: z.object({ text: z.string().max(1000), n: z.number().int() }) } })
      : undefined;
  const Echo = defineConnection({ name: "Echo", contract });
  Echo.on("echo", (ctx, data) => void ctx.emit("echo", data));
  const server = createServer({ connections: [Echo], storage: ":memory:" });
  const { port } = await server.listen({ port: 0, host: "127.0.0.1" });
  process.stdout.write(`${port}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => server.close().then(() => process.exit(0)));
}

async function drive() {
  const rounds = option("rounds", 5);
  const clients = option("clients", 50);
  const messages = option("messages", 4000);
  const window = option("window", 32);
  const pin = availableParallelism() >= 2 && existsSync("/usr/bin/taskset");
  const results = Object.fromEntries(MODES.map((mode) => [mode, []]));
  console.log(`echo: ${clients} clients × ${messages} messages, window ${window}, ${rounds} rounds${pin ? ", pinned" : ""}`);
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? MODES : [...MODES].reverse();
    for (const mode of order) {
      const rate = await measure(mode, { clients, messages, window, pin });
      results[mode].push(rate);
      console.log(`round ${round}  ${mode.padEnd(6)} ${Math.round(rate).toLocaleString("en")} msgs/s`);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const none = median(results.none);
  const schema = median(results.schema);
  console.log(`median  none   ${Math.round(none).toLocaleString("en")} msgs/s`);
  console.log(`median  schema ${Math.round(schema).toLocaleString("en")} msgs/s`);
  console.log(`ratio   schema ÷ none = ${(schema / none).toFixed(3)}`);
}

/** One run: starts the server, connects the clients, returns echoes per second. */
async function measure(mode, { clients, messages, window, pin }) {
  const script = fileURLToPath(import.meta.url);
  const command = pin ? "taskset" : process.execPath;
  const argv = pin ? ["-c", "0", process.execPath, script, "--serve", mode] : [script, "--serve", mode];
  const child = spawn(command, argv, { stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.once("data", (chunk) => resolve(Number(String(chunk).trim())));
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  const url = `ws://127.0.0.1:${port}/ws`;
  const sockets = await Promise.all(
    Array.from({ length: clients }, () => new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.once("open", () => resolve(socket));
      socket.once("error", reject);
    })),
  );
  const frame = (n) => JSON.stringify({ type: "echo", data: { text: "hello, warren", n } });
  const started = performance.now();
  await Promise.all(
    sockets.map((socket) => new Promise((resolve, reject) => {
      let sent = 0;
      let received = 0;
      const send = () => socket.send(frame(sent++));
      socket.on("message", (data) => {
        const text = String(data);
        if (!text.includes('"echo"')) return;
        if (text.includes("system:error")) return reject(new Error(text));
        received++;
        if (sent < messages) send();
        if (received === messages) resolve();
      });
      socket.once("close", (code) => received < messages && reject(new Error(`closed with ${code}`)));
      for (let i = 0; i < Math.min(window, messages); i++) send();
    })),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.close();
  child.stdin.end();
  await new Promise((resolve) => child.once("exit", resolve));
  return (clients * messages) / seconds;
}
