// The chat demo: a connection actor per user (token auth by name), one chat room whose state
// keeps the last 50 messages, join/leave notices from the room's hooks, and typing indicators.
// Serves the page and the socket on one port.
//
//   npm run demo            # then open the printed URL in two browser tabs
//   PORT=8787 HOST=0.0.0.0 npm run demo
import { copyFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createRoomHandler, createServer, defineConnection } from "../../index.js";

const publicDir = fileURLToPath(new URL("./public", import.meta.url));
// The page imports the browser build of warren/client from its own directory.
copyFileSync(fileURLToPath(new URL("../../client/index.mjs", import.meta.url)), `${publicDir}/warren-client.mjs`);

const HISTORY = 50;

const UserConnection = defineConnection({
  name: "UserConnection",
  rooms: { chat: "ChatRoom" },
  extractMeta(req) {
    const name = (req.query.get("name") ?? "").trim();
    if (!/^[\w .-]{1,24}$/.test(name)) throw new Error("pick a name of 1-24 letters, digits, spaces, . or -");
    return { userId: name, name };
  },
  onConnect(ctx) {
    ctx.actor.joinRoom("chat");
    const chat = server.room("chat");
    ctx.emit("chat.history", { messages: chat.state.history, online: chat.members().map((m) => m.userId) });
  },
});

UserConnection.on("chat.message", (ctx, data) => {
  const text = String(data?.text ?? "").slice(0, 500).trim();
  if (!text) return;
  const message = { from: ctx.meta.userId, text, at: new Date().toISOString() };
  const chat = server.room("chat");
  chat.state.history.push(message);
  if (chat.state.history.length > HISTORY) chat.state.history.shift();
  ctx.emit.toRoom("chat", { includeSelf: true }).emit("chat.message", message);
});

UserConnection.on("chat.typing", (ctx) => {
  ctx.emit.toRoom("chat").emit("chat.typing", { userId: ctx.meta.userId });
});

const ChatRoom = createRoomHandler({
  name: "ChatRoom",
  connectionBinding: "UserConnection",
  state: { history: [] },
  onJoin(ctx, userId) {
    ctx.emit("user.joined", { userId });
  },
  onLeave(ctx, userId) {
    ctx.emit("user.left", { userId });
  },
});

const server = createServer({
  connections: [UserConnection],
  rooms: [ChatRoom],
  static: publicDir,
  storage: process.env.WARREN_STORAGE ?? "./.warren",
});
const { port, host } = await server.listen({
  port: Number(process.env.PORT ?? 8787),
  host: process.env.HOST ?? "127.0.0.1",
});
console.log(`warren chat demo: http://${host === "0.0.0.0" ? "localhost" : host}:${port}/`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    console.log("shutting down");
    server.close();
  });
}
