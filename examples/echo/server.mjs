// A raw echo server: every text or binary message comes back as it was sent, through the JS
// handler (`ctx.send(data)`). The WebSocket conformance run (.ci/autobahn.sh) tests the transport
// against it.
//
//   node examples/echo/server.mjs            # port from PORT, else the first argument, else 9001
//   node examples/echo/server.mjs 0          # a free port; the URL is printed
//
// Its limits are raised to what the conformance cases send (16 MiB messages, 64-byte fragments
// of 4 MiB), and it keeps no state, so its store is in memory.
import { createServer, defineRawConnection } from "../../index.js";

const Echo = defineRawConnection({
  name: "Echo",
  websocketPath: "/",
  onMessage(ctx, data) {
    ctx.send(data);
  },
});

const port = Number(process.env.PORT ?? process.argv[2] ?? 9001);
const host = process.env.HOST ?? "127.0.0.1";
const server = createServer({
  connections: [Echo],
  storage: ":memory:",
  maxPayloadBytes: 64 << 20,
  maxFragments: 1 << 20,
  maxBackpressure: 64 << 20,
});
const { url } = await server.listen({ port, host });
console.log(url);

const stop = () => server.close().then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
