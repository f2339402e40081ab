// The environment the seed files assume, and their only import: the package's API, with every
// definition they make recorded (`made`) so that seeds.spec.ts can serve it, plus what the seeds
// take from elsewhere: the `connection` the event-handler snippet registers on, and the Full
// Example's `myValidateAuthToken`.
import * as warren from "../../index.js";

export * from "../../index.js";

/** Every definition made through this module, in order. */
export const made = {
  connections: [] as warren.ConnectionDefinition<any, any>[],
  rooms: [] as warren.RoomDefinition[],
};

export const defineConnection = ((options: warren.ConnectionOptions<any, any>) => {
  const definition = warren.defineConnection(options);
  made.connections.push(definition);
  return definition;
}) as typeof warren.defineConnection;

export const createRoomHandler = ((options: warren.RoomOptions<any>) => {
  const definition = warren.createRoomHandler(options);
  made.rooms.push(definition);
  return definition;
}) as typeof warren.createRoomHandler;

/**
 * The connection the event-handler snippet registers on: the seed page defines it elsewhere;
 * here its users are named by `?user=` and join the room "chat" (ChatRoom) when they connect.
 */
export const connection = defineConnection({
  name: "UserConnection",
  rooms: { chat: "ChatRoom" },
  extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
  onConnect(ctx) {
    ctx.actor.joinRoom("chat");
  },
});

/** The Full Example's stand-in for an auth API: a token `token:<userId>` is valid for that user. */
export async function myValidateAuthToken(token: string): Promise<{ userId: string } | null> {
  return typeof token === "string" && token.startsWith("token:") ? { userId: token.slice("token:".length) } : null;
}
