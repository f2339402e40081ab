import { defineConnection } from "./env";

const connection = defineConnection({
  onConnect(ctx) {
    // ctx.emit is available here
    ctx.emit("welcome", { message: "Connected!" });
  }
});
