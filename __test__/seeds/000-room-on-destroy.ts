import { createRoomHandler } from "./env";

createRoomHandler({
  name: "ChatRoom",
  connectionBinding: "UserConnection",
  onDestroy(ctx) {
    // Room-level cleanup
  }
});
