import { defineConnection } from "./env";

const connection = defineConnection({
  onDestroy(ctx) {
    // Cleanup: notify other services, flush analytics, etc.
    // Room leave and WebSocket close are handled automatically
  }
});
