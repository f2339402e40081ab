// RivetKit 2.3 peer for the `calls` scenario: a `counter` actor whose `increment` changes persisted
// state (RivetKit's own state persistence, default settings) and returns the new count.
//
//   RIVETKIT_STORAGE_PATH=<dir> node server.mjs <enginePort>
//
// `registry.start()` runs this Node process as an envoy of the Rivet Engine; with a loopback endpoint
// the Rust core spawns the bundled engine binary (as an orphan in its own process group: the caller
// must kill it by PID). Clients talk to the engine on <enginePort>. Prints `READY <enginePort>` once
// the engine answers /health and the counter actor answers through the gateway.
import { actor, setup } from "rivetkit";
import { createClient } from "rivetkit/client";

const enginePort = Number(process.argv[2] ?? 6420);

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

const registry = setup({ use: { counter }, startEngine: true, enginePort, engineHost: "127.0.0.1" });
registry.start();

const endpoint = `http://127.0.0.1:${enginePort}`;
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
process.stdout.write(`READY ${enginePort}\n`);
