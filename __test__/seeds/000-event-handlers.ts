import { connection } from "./env";

connection.on("chat.message", (ctx, data) => {
  // ctx.emit is available here
  ctx.emit.toRoom("chat").emit("chat.message", {
    from: ctx.meta.userId,
    text: data.text
  });
});
