// Peer server: Bun's built-in WebSocket server (uWebSockets inside, the stand-in for uWebSockets.js,
// which is not on the npm registry) doing the work ws-echo.mjs does, with Bun's pub/sub for rooms.
//
//   bun bun.ts [port]     (or PORT=...; 0 or nothing = any free port)
//
// Prints `READY <port>` on stdout once listening on 127.0.0.1.
// - `/raw`: every frame is echoed verbatim (the loadgen's `--proto raw`).
// - any other path: the upgrade reads `?token=` in JS (as warren's `extractMeta` does; 401 without
//   one); each text frame is JSON.parsed; `echo` -> the event frame warren sends for
//   `ctx.emit("echo", data)`, byte for byte; `join` -> `ws.subscribe(room)`; `publish` -> the tick
//   frame is stringified once and `server.publish("bench", frame)` lets uWebSockets fan it out;
//   `ping` -> `{"type":"pong"}`.

const ROOM = "bench";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

type Data = { raw: boolean; userId: string | null };

const event = (type: string, data: object) => JSON.stringify({ type: "event", channel: "default", data: { type, ...data } });

const server = Bun.serve<Data, never>({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    const url = new URL(req.url);
    if (url.pathname === "/healthz") return new Response(null, { status: 200 });
    const raw = url.pathname === "/raw";
    const userId = raw ? null : url.searchParams.get("token");
    if (!raw && !userId) return new Response("token required", { status: 401 });
    if (server.upgrade(req, { data: { raw, userId } })) return undefined;
    return new Response(null, { status: 404 });
  },
  websocket: {
    maxPayloadLength: 1 << 20,
    message(ws, message) {
      if (ws.data.raw) {
        ws.send(message);
        return;
      }
      let frame;
      try {
        frame = JSON.parse(String(message));
      } catch {
        ws.send(event("system:error", { code: "bad_frame", message: "invalid JSON" }));
        return;
      }
      switch (frame.type) {
        case "echo":
          ws.send(event("echo", frame.data));
          break;
        case "join":
          ws.subscribe(frame.data.room);
          break;
        case "publish":
          server.publish(ROOM, event("tick", frame.data));
          break;
        case "ping":
          ws.send('{"type":"pong"}');
          break;
      }
    },
  },
});

process.stdout.write(`READY ${server.port}\n`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    server.stop(true);
    process.exit(0);
  });
}
