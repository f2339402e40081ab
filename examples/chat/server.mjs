// The chat demo: a connection actor per user (token auth by name), join/leave notices, typing,
// and the last 50 messages. Serves the page and the socket on one port.
//
//   npm run demo            # then open the printed URL in two browser tabs
//   PORT=8787 HOST=0.0.0.0 npm run demo
import { copyFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createServer, defineConnection } from "../../index.js";

const publicDir = fileURLToPath(new URL("./public", import.meta.url));
// The page imports the browser build of warren/client from its own directory.
copyFileSync(fileURLToPath(new URL("../../client/index.mjs", import.meta.url)), `${publicDir}/warren-client.mjs`);

const HISTORY = 50;
const history = [];
const online = new Map(); // userId -> number of open sessions

function everyone(ctx, event, data) {
  for (const userId of online.keys()) ctx.emit.toUser(userId).emit(event, data);
}

const UserConnection = defineConnection({
  name: "UserConnection",
  extractMeta(req) {
    const name = (req.query.get("name") ?? "").trim();
    if (!/^[\w .-]{1,24}$/.test(name)) throw new Error("pick a name of 1-24 letters, digits, spaces, . or -");
    return { userId: name, name };
  },
  onConnect(ctx) {
    const sessions = (online.get(ctx.meta.userId) ?? 0) + 1;
    online.set(ctx.meta.userId, sessions);
    ctx.emit("chat.history", { messages: history, online: [...online.keys()] });
    if (sessions === 1) everyone(ctx, "user.joined", { userId: ctx.meta.userId });
  },
  onDisconnect(ctx) {
    const sessions = (online.get(ctx.meta.userId) ?? 1) - 1;
    if (sessions > 0) {
      online.set(ctx.meta.userId, sessions);
      return;
    }
    online.delete(ctx.meta.userId);
    everyone(ctx, "user.left", { userId: ctx.meta.userId });
  },
});

UserConnection.on("chat.message", (ctx, data) => {
  const text = String(data?.text ?? "").slice(0, 500).trim();
  if (!text) return;
  const message = { from: ctx.meta.userId, text, at: new Date().toISOString() };
  history.push(message);
  if (history.length > HISTORY) history.shift();
  everyone(ctx, "chat.message", message);
});

UserConnection.on("chat.typing", (ctx) => {
  for (const userId of online.keys()) {
    if (userId !== ctx.meta.userId) ctx.emit.toUser(userId).emit("chat.typing", { userId: ctx.meta.userId });
  }
});

const server = createServer({ connections: [UserConnection], static: publicDir });
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
