// Type tests of the server API (`warren`): what the README's examples write must type-check, and
// the mistakes below must not. Checked by `npm run test:types`; never run.
import {
  createRoomHandler,
  createServer,
  defineConnection,
  defineRawConnection,
  HttpError,
  UserError,
  WarrenError,
  type ActorContext,
  type ConnectionContext,
  type ListeningAddress,
  type RawConnectionContext,
  type RawData,
  type RoomContext,
  type RoomHookContext,
  type ServerStats,
  type UpgradeRequest,
  type WarrenServer,
} from "warren";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T>(_value: T): void {}
function assertTrue<T extends true>(): void {}

interface Meta {
  userId: string;
  name: string;
  [key: string]: unknown;
}

// ---- defineConnection: ctx.state is typed from `state`, ctx.meta from the Meta parameter ----

const UserConnection = defineConnection<Meta, { count: number; lastSeen: string | null }>({
  name: "UserConnection",
  websocketPath: "/ws",
  rooms: { chat: "ChatRoom", conversation: "ChatRoom" },
  extractMeta(req) {
    expectType<UpgradeRequest>(req);
    expectType<URLSearchParams>(req.query);
    // Shaped like a fetch Request: Headers (entries also plain properties) and the real Request.
    expectType<string | null>(req.headers.get("authorization"));
    expectType<string>(req.headers["authorization"]);
    expectType<Request>(req.request);
    expectType<string>(new URL(req.request.url).host);
    expectType<string>(req.method);
    const token = req.query.get("token");
    if (!token) throw new HttpError(403, "token required");
    return { userId: token, name: token };
  },
  state: { count: 0, lastSeen: null },
  persistedKeys: ["count", "lastSeen"],
  onInit(ctx) {
    expectType<number>(ctx.state.count);
  },
  onConnect(ctx) {
    ctx.state.count++;
    ctx.state.lastSeen = new Date().toISOString();
    const sent: boolean = ctx.emit("welcome", { count: ctx.state.count });
    ctx.emit.emit("welcome", { again: true });
    ctx.actor.joinRoom("chat", { name: ctx.meta.name });
    expectType<string>(ctx.meta.name);
    expectType<number>(ctx.sessionId);
    void sent;
  },
  onDisconnect(ctx, { code, reason }) {
    const reached: number = ctx.emit.toRoom("chat").emit("user.left", { userId: ctx.meta.userId, code, reason });
    void reached;
  },
  onDestroy(ctx) {
    expectType<"evicted" | "shutdown" | "destroyed">(ctx.reason);
  },
  onError(error, ctx) {
    expectType<unknown>(error);
    void ctx;
  },
});

UserConnection.on("chat.message", (ctx, data) => {
  ctx.emit.toRoom("chat").emit("chat.message", { from: ctx.meta.userId, text: data.text });
  ctx.emit.toRoom("chat", { includeSelf: true }).emit("chat.echo", { text: data.text });
});

UserConnection.on("dm", (ctx, data) => {
  const reached: number = ctx.emit.toUser(data.to).emit("dm", { from: ctx.meta.userId, text: data.text });
  ctx.emit("dm.sent", { reached });
});

UserConnection.on("count.get", (ctx) => ctx.state.count);

UserConnection.on("spend", async (ctx, { amount }: { amount: number }) => {
  if (amount > ctx.state.count) throw new UserError("not enough", { code: "insufficient", meta: { amount } });
  ctx.schedule.after(60_000, "refill", { amount });
  return ctx.state.count;
});

// `state` is inferred when no type arguments are given.
const Inferred = defineConnection({
  name: "Inferred",
  state: { visits: 0, tags: new Set<string>() },
  onConnect(ctx) {
    ctx.state.visits += 1;
    ctx.state.tags.add("seen");
    // @ts-expect-error a state field keeps its type
    ctx.state.visits = "many";
  },
});
void Inferred;

defineConnection<Meta, { count: number }>({
  name: "WrongDefaults",
  // @ts-expect-error the defaults must match the declared state
  state: { count: "zero" },
});

defineConnection<Meta>({
  name: "NoUserId",
  // @ts-expect-error extractMeta must return the meta, userId included
  extractMeta: () => ({ name: "x" }),
});

defineConnection<Meta, { count: number }>({
  name: "WrongKey",
  state: { count: 0 },
  // @ts-expect-error persistedKeys name keys of the state
  persistedKeys: ["total"],
});

UserConnection.on("bad.payload", (ctx) => {
  // @ts-expect-error event payloads are objects (their fields are spread into the event)
  ctx.emit("n", 5);
  // @ts-expect-error room sends too
  ctx.emit.toRoom("chat").emit("n", "text");
});

// Every option may be left out (Verani's defaults: name, "/ws", a fresh user per session).
const Minimal = defineConnection({
  onConnect(ctx) {
    ctx.emit("welcome", { message: "Connected!" });
  },
});
const defaultName: string = Minimal.name;
void defaultName;

// ---- hook context types by name ----

function actorLevel(ctx: ActorContext<{ count: number }>): number {
  return ctx.broadcast("tick", { count: ctx.state.count });
}
function sessionLevel(ctx: ConnectionContext<Meta, { count: number }>): string {
  return ctx.meta.userId;
}
void actorLevel;
void sessionLevel;

// ---- createRoomHandler ----

const ChatRoom = createRoomHandler({
  name: "ChatRoom",
  connectionBinding: "UserConnection",
  state: { totalJoins: 0 },
  persistedKeys: ["totalJoins"],
  onJoin(ctx, userId, metadata) {
    ctx.state.totalJoins++;
    expectType<string>(userId);
    expectType<Record<string, unknown>>(metadata);
    ctx.emit("joined", { userId, members: ctx.memberCount() });
  },
  onLeave(ctx, userId) {
    ctx.broadcast("left", { userId });
    // @ts-expect-error room state keeps its type
    ctx.state.totalJoins = "none";
  },
  onDestroy(ctx) {
    expectType<"evicted" | "shutdown" | "destroyed">(ctx.reason);
  },
});

// Verani's style: hooks take the room state first; without `state`, any key may be used.
createRoomHandler({
  name: "VeraniStyle",
  connectionBinding: "UserConnection",
  onInit(roomState) {
    roomState.totalJoins ??= 0;
  },
  onJoin(roomState, userId, metadata) {
    roomState.totalJoins++;
    roomState.last = { userId, metadata };
  },
  onLeave(roomState, userId) {
    roomState.emit("left", { userId });
  },
  onDestroy(roomState) {
    expectType<"evicted" | "shutdown" | "destroyed">(roomState.reason);
  },
});

// With `state`, the room state is typed both ways: as the hook's object and as ctx.state.
createRoomHandler({
  state: { totalJoins: 0 },
  onJoin(roomState) {
    roomState.totalJoins++;
    roomState.state.totalJoins++;
    // @ts-expect-error typed keys keep their type on the hook's object too
    roomState.totalJoins = "many";
  },
});

function roomHook(roomState: RoomHookContext<{ totalJoins: number }>): number {
  roomState.totalJoins++;
  return roomState.memberCount() + roomState.state.totalJoins;
}
void roomHook;

// ---- createServer ----

const server: WarrenServer = createServer({
  connections: [UserConnection],
  rooms: [ChatRoom],
  storage: "./.warren",
  durability: "strict",
  hibernateAfterMs: 30_000,
});

async function serve(): Promise<void> {
  const address: ListeningAddress = await server.listen({ port: 8787, host: "127.0.0.1" });
  expectType<string>(address.url);
  const room: RoomContext = server.room("chat");
  const reached: number = room.emit("notice", { text: "maintenance at noon" });
  const stats: ServerStats = server.stats();
  void reached;
  void stats;
  server.destroyActor("UserConnection", "alice");
  // @ts-expect-error listen takes a numeric port
  await server.listen({ port: "8787" });
  await server.close();
}
void serve;

// @ts-expect-error durability is "strict" or "relaxed"
createServer({ connections: [UserConnection], durability: "eventual" });

// @ts-expect-error a UserError needs a message
new UserError();

const error = new WarrenError("invalid_option", "x");
assertTrue<Equal<typeof error.code, string>>();

// ---- defineRawConnection: messages as they are, `ctx.send` of strings and bytes ----

const RawEcho = defineRawConnection<Meta, { seen: number }>({
  name: "RawEcho",
  websocketPath: "/raw",
  extractMeta: () => ({ userId: "u", name: "n" }),
  state: { seen: 0 },
  onConnect(ctx) {
    expectType<RawConnectionContext<Meta, { seen: number }>>(ctx);
    ctx.send("hello");
  },
  onMessage(ctx, data) {
    assertTrue<Equal<typeof data, RawData>>();
    assertTrue<Equal<RawData, string | Uint8Array>>();
    ctx.state.seen++;
    const sent: boolean = ctx.send(typeof data === "string" ? data : data.subarray(1));
    const reached: number = ctx.sendToRoom("doc", new Uint8Array([1]), { exceptSelf: true });
    expectType<boolean>(sent);
    expectType<number>(reached);
    // @ts-expect-error raw messages are strings or bytes
    ctx.send({ type: "x" });
  },
  onDisconnect(ctx, info) {
    expectType<number>(info.code);
    expectType<string>(ctx.meta.name);
  },
});
expectType<"raw">(RawEcho.messages);
declare const someRoom: RoomContext;
expectType<number>(someRoom.sendRaw(new Uint8Array([1, 2])));
createServer({ connections: [UserConnection, RawEcho], maxFragments: 64 });
// @ts-expect-error a raw endpoint has no contract
defineRawConnection({ contract: {} });
