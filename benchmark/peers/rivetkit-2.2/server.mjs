// RivetKit 2.2.1 peer for the `calls` scenario: a `counter` actor whose `increment` changes persisted
// state (RivetKit's own state persistence, default settings) and returns the new count.
//
//   RIVETKIT_STORAGE_PATH=<dir> node server.mjs <port>
//
// With no endpoint, 2.2.1 runs the pure TypeScript runtime with its in-process file-system driver and
// serves the manager (HTTP + WebSocket) on <port> in this one process. Prints `READY <port>` once the
// counter actor answers.
import { actor, setup } from "rivetkit";
import { createClient } from "rivetkit/client";

const port = Number(process.argv[2] ?? 6420);

const counter = actor({
  state: { count: 0 },
  actions: {
    increment: (c, by = 1) => {
      c.state.count += by;
      return c.state.count;
    },
    get: (c) => c.state.count,
  },
});

const registry = setup({ use: { counter }, managerPort: port, managerHost: "127.0.0.1" });
registry.start();

const endpoint = `http://127.0.0.1:${port}`;
const deadline = Date.now() + 60_000;
for (;;) {
  try {
    const client = createClient(endpoint);
    await client.counter.getOrCreate(["ready-probe"]).get();
    break;
  } catch (error) {
    if (Date.now() > deadline) throw error;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
process.stdout.write(`READY ${port}\n`);
