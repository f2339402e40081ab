// RivetKit 2.3 peer for the `calls` scenario (the counter actor: ../counter-peer.mjs).
//
//   RIVETKIT_STORAGE_PATH=<dir> node server.mjs <enginePort>
//
// `registry.start()` runs this Node process as an envoy of the Rivet Engine; with a loopback endpoint
// the Rust core spawns the bundled engine binary (as an orphan in its own process group: the caller
// must kill it by PID). Clients talk to the engine on <enginePort>. Prints `READY <enginePort>` once
// the engine answers and the counter actor answers through the gateway.
import { actor, setup } from "rivetkit";
import { createClient } from "rivetkit/client";
import { serveCounter } from "../counter-peer.mjs";

const enginePort = Number(process.argv[2] ?? 6420);
await serveCounter(
  { actor, setup, createClient },
  { startEngine: true, enginePort, engineHost: "127.0.0.1" },
  enginePort,
);
