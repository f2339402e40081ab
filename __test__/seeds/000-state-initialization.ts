import { defineConnection } from "./env";

const connection = defineConnection({
  state: {
    count: 0,
    lastActivity: null as Date | null
  },
  persistedKeys: ["count", "lastActivity"],

  onConnect(ctx) {
    // State is ready here - loaded from storage
    console.log(`Current count: ${ctx.state.count}`);

    // Changes are automatically persisted
    ctx.state.count++;
  }
});
