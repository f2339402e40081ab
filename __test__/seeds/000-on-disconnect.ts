import { defineConnection } from "./env";

const connection = defineConnection({
  onDisconnect(ctx) {
    // ctx.emit is available here
    ctx.emit.toRoom("chat").emit("user.left", {
      userId: ctx.meta.userId
    });
  }
});
