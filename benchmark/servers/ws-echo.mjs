// Peer server: `ws` 8 with a JSON handler doing the work warren's benchmark app does (DESIGN §3 frames).
//
//   node ws-echo.mjs [port]     (or PORT=...; 0 or nothing = any free port)
//
// Prints `READY <port>` on stdout once listening on 127.0.0.1.
// - `/raw`: every text frame is echoed verbatim (the loadgen's `--proto raw`).
// - any other path: `echo` -> the event frame warren sends for `ctx.emit("echo", data)`, byte for byte;
//   `join` -> the socket is added to the room's Set; `publish` -> the tick frame is stringified once and
//   sent to every member of the benchmark room in a `for` loop; `ping` -> `{"type":"pong"}`.
import http from "node:http";
import { WebSocketServer } from "ws";

const ROOM = "bench";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

/** @type {Map<string, Set<import("ws").WebSocket>>} room name -> member sockets */
const rooms = new Map();

const event = (type, data) => JSON.stringify({ type: "event", channel: "default", data: { type, ...data } });

const server = http.createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404).end();
});
const wss = new WebSocketServer({ server, maxPayload: 1 << 20 });

wss.on("connection", (ws, req) => {
  if (req.url === "/raw" || req.url.startsWith("/raw?")) {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  /** rooms this socket joined, so close can leave them */
  const joined = new Set();
  ws.on("message", (data) => {
    let frame;
    try {
      frame = JSON.parse(data.toString());
    } catch {
      ws.send(event("system:error", { code: "bad_frame", message: "invalid JSON" }));
      return;
    }
    switch (frame.type) {
      case "echo":
        ws.send(event("echo", frame.data));
        break;
      case "join": {
        const name = frame.data.room;
        let members = rooms.get(name);
        if (!members) rooms.set(name, (members = new Set()));
        members.add(ws);
        joined.add(name);
        break;
      }
      case "publish": {
        const members = rooms.get(ROOM);
        if (!members) break;
        const out = event("tick", frame.data);
        for (const member of members) if (member !== ws) member.send(out);
        break;
      }
      case "ping":
        ws.send('{"type":"pong"}');
        break;
    }
  });
  ws.on("close", () => {
    for (const name of joined) rooms.get(name)?.delete(ws);
  });
});

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
