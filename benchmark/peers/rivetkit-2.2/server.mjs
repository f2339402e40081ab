// RivetKit 2.2.1 peer for the `calls` scenario (the counter actor: ../counter-peer.mjs).
//
//   RIVETKIT_STORAGE_PATH=<dir> node server.mjs <port>
//
// With no endpoint, 2.2.1 runs the pure TypeScript runtime with its in-process file-system driver and
// serves the manager (HTTP + WebSocket) on <port> in this one process. Prints `READY <port>` once the
// counter actor answers.
import { actor, setup } from "rivetkit";
import { createClient } from "rivetkit/client";
import { serveCounter } from "../counter-peer.mjs";

const port = Number(process.argv[2] ?? 6420);
await serveCounter({ actor, setup, createClient }, { managerPort: port, managerHost: "127.0.0.1" }, port);
