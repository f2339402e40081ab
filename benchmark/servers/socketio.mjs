// Peer server: socket.io 4, WebSocket transport only, the same work as warren's benchmark app.
//
//   node socketio.mjs [port]    (or PORT=...; 0 or nothing = any free port)
//
// Prints `READY <port>` on stdout once listening on 127.0.0.1.
// Events: `echo` -> emitted back to the sender; `join` -> socket.join(room);
// `publish` -> io.to("bench").emit("tick", data) (socket.io encodes once for the whole room).
// With SOCKETIO_REDIS=redis://… it runs as one of several processes sharing rooms through Redis
// (@socket.io/redis-adapter over node-redis).
import http from "node:http";
import { Server } from "socket.io";

const ROOM = "bench";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const server = http.createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404).end();
});
const io = new Server(server, { transports: ["websocket"], serveClient: false });
if (process.env.SOCKETIO_REDIS) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const publishing = createClient({ url: process.env.SOCKETIO_REDIS });
  const subscribing = publishing.duplicate();
  await Promise.all([publishing.connect(), subscribing.connect()]);
  io.adapter(createAdapter(publishing, subscribing));
}

io.on("connection", (socket) => {
  socket.on("echo", (data) => socket.emit("echo", data));
  socket.on("join", (data) => socket.join(data.room));
  socket.on("publish", (data) => io.to(ROOM).emit("tick", data));
});

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
