// Type tests of contracts: one declaration of a connection's events, calls and params,
// read by the server (`defineConnection({ contract })`) and the client (`WarrenClient<typeof X>`).
// The eleven mistakes a new user makes are each a `@ts-expect-error` below, first against a
// contract of type markers, then against the server's definition, then with zod schemas.
// Checked by `npm run test:types`; never run.
import { z } from "zod";
import {
  createRoomHandler,
  createServer,
  defineConnection,
  defineContract,
  payload,
  type ConnectionContext,
  type Contract,
  type In,
  type Out,
  type UpgradeRequest,
} from "warren";
import { WarrenClient, defineContract as defineClientContract } from "warren/client";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertTrue<T extends true>(): void {}
function expectType<T>(_value: T): void {}

// ---- a contract of type markers: what a separate front-end package imports ----

export const chat = defineContract({
  clientEvents: {
    "chat.send": payload<{ room: string; text: string }>(),
    typing: payload<{ room: string } | undefined>(),
  },
  serverEvents: {
    "chat.message": payload<{ from: string; text: string }>(),
    welcome: payload<{ count: number }>(),
    "user.left": payload<{ userId: string }>(),
  },
  calls: {
    "count.get": { result: payload<number>() },
    add: { args: payload<{ a: number; b: number }>(), result: payload<number>() },
  },
  params: payload<{ token: string }>(),
});

// `warren/client` exports the same function: a contract module need not import the server.
assertTrue<Equal<typeof defineClientContract, typeof defineContract>>();

interface Meta {
  userId: string;
  name: string;
  [key: string]: unknown;
}

export const ChatConnection = defineConnection({
  name: "Chat",
  contract: chat,
  meta: payload<Meta>(),
  state: { count: 0 },
  // Key order does not matter: `meta` types ctx.meta, written before or after the hooks.
  onConnect(ctx) {
    expectType<string>(ctx.meta.name);
    ctx.state.count++;
    ctx.emit("welcome", { count: ctx.state.count });
    // (2) an unknown server event name
    // @ts-expect-error "welcom" is not a server event of the contract
    ctx.emit("welcom", { count: 1 });
    // (3) a wrong payload field
    // @ts-expect-error welcome carries `count`, not `cuont`
    ctx.emit("welcome", { cuont: 1 });
    // @ts-expect-error welcome needs its payload
    ctx.emit("welcome");
    // @ts-expect-error the same through ctx.emit.emit
    ctx.emit.emit("welcome", { count: "1" });
    // @ts-expect-error and through ctx.broadcast
    ctx.broadcast("welcome", { count: "1" });
  },
  extractMeta(req) {
    // req.params is typed from the contract's `params`.
    expectType<{ token: string }>(req.params);
    return { userId: req.params.token, name: req.params.token };
  },
  onBeforeConnect(req) {
    expectType<UpgradeRequest<{ token: string }>>(req);
    // @ts-expect-error params have no `password`
    void req.params.password;
  },
  onDisconnect(ctx) {
    ctx.emit.toRoom("lobby").emit("user.left", { userId: ctx.meta.userId });
    // (4) toRoom / toUser with an unknown name or a wrong payload
    // @ts-expect-error toRoom: "user.gone" is not a server event
    ctx.emit.toRoom("lobby").emit("user.gone", { userId: ctx.meta.userId });
    // @ts-expect-error toRoom: `user` is not a field of user.left
    ctx.emit.toRoom("lobby").emit("user.left", { user: ctx.meta.userId });
    // @ts-expect-error toUser: unknown name
    ctx.emit.toUser("bob").emit("dm", { text: "hi" });
    // @ts-expect-error toUser: wrong payload field
    ctx.emit.toUser("bob").emit("chat.message", { from: "a", txt: "hi" });
  },
});

ChatConnection.on("chat.send", (ctx, data) => {
  expectType<{ room: string; text: string }>(data);
  ctx.emit.toRoom(data.room).emit("chat.message", { from: ctx.meta.userId, text: data.text });
  // (1) a misspelled field on inbound data
  // @ts-expect-error chat.send has `text`, not `txt`
  void data.txt;
});
ChatConnection.on("typing", (_ctx, data) => {
  expectType<{ room: string } | undefined>(data);
});
ChatConnection.on("count.get", (ctx) => ctx.state.count);
ChatConnection.on("add", async (_ctx, { a, b }) => a + b);
// @ts-expect-error a call handler returns the declared result (number)
ChatConnection.on("count.get", () => "many");
// (5) connection.on with an event the contract does not have
// @ts-expect-error "chat.sned" is neither a client event nor a call
ChatConnection.on("chat.sned", () => {});

// ---- the client, typed from the contract object ----

async function fromContract(): Promise<void> {
  const client = new WarrenClient<typeof chat>("ws://127.0.0.1:8787/ws", { params: { token: "alice" } });
  client.on("chat.message", (msg) => {
    expectType<{ from: string; text: string }>(msg);
  });
  client.on("close", ({ code }) => expectType<number>(code));
  client.emit("chat.send", { room: "lobby", text: "hi" });
  client.emit("typing");
  const count = await client.call("count.get");
  expectType<number>(count);
  const sum = await client.call("add", { a: 1, b: 2 }, { timeout: 1000 });
  expectType<number>(sum);

  // (6) client on with an unknown name
  // @ts-expect-error "chat.msg" is not a server event
  client.on("chat.msg", () => {});
  // (7) the on callback reading a wrong field
  // @ts-expect-error chat.message has `text`, not `body`
  client.on("chat.message", (msg) => msg.body);
  // (8) client emit with an unknown name or a wrong payload
  // @ts-expect-error "chat.sned" is not a client event
  client.emit("chat.sned", { room: "lobby", text: "hi" });
  // @ts-expect-error chat.send needs `room`
  client.emit("chat.send", { text: "hi" });
  // @ts-expect-error chat.send's text is a string
  client.emit("chat.send", { room: "lobby", text: 5 });
  // (9) client call with an unknown name
  // @ts-expect-error "count.gt" is not a call
  await client.call("count.gt");
  // (10) client call with a wrong argument type
  // @ts-expect-error add takes numbers
  await client.call("add", { a: "1", b: 2 });
  // @ts-expect-error add needs its argument
  await client.call("add");
  // (11) the awaited result used as the wrong type
  // @ts-expect-error count.get resolves with a number
  const wrong: string = await client.call("count.get");
  // @ts-expect-error a typed call takes no asserted result type
  await client.call<string>("count.get");
  // @ts-expect-error params are the contract's
  new WarrenClient<typeof chat>("ws://x/ws", { params: { token: 1 } });
  void wrong;
}
void fromContract;

// ---- the client, typed from the server's definition (in an app: `import type`) ----

async function fromDefinition(): Promise<void> {
  const client = new WarrenClient<typeof ChatConnection>("ws://127.0.0.1:8787/ws");
  client.on("welcome", ({ count }) => expectType<number>(count));
  const n: number = await client.call("count.get");
  // @ts-expect-error (6) unknown server event
  client.on("welcom", () => {});
  // @ts-expect-error (7) wrong field in the listener
  client.on("welcome", (data) => data.cuont);
  // @ts-expect-error (8) wrong payload
  client.emit("chat.send", { room: 1, text: "hi" });
  // @ts-expect-error (9) unknown call
  await client.call("count");
  // @ts-expect-error (10) wrong argument
  await client.call("add", [1, 2]);
  // @ts-expect-error (11) wrong result type
  const s: string = await client.call("add", { a: 1, b: 2 });
  void [n, s];
}
void fromDefinition;

// ---- schemas (zod): types are inferred from them; the server runs them on what clients send ----

const Text = z.object({ text: z.string().min(1).max(500) });
export const echo = defineContract({
  clientEvents: { echo: Text },
  serverEvents: { "echo.reply": z.object({ text: z.string(), at: z.number() }) },
  calls: {
    shout: { args: Text, result: z.string() },
    parse: { args: z.object({ n: z.string().transform((s) => Number(s)) }), result: z.number() },
  },
});
assertTrue<Equal<Out<typeof Text>, { text: string }>>();
assertTrue<Equal<In<(typeof echo)["calls"]["parse"]["args"]>, { n: string }>>();
assertTrue<Equal<Out<(typeof echo)["calls"]["parse"]["args"]>, { n: number }>>();

const Echo = defineConnection({ name: "Echo", contract: echo });
Echo.on("echo", (ctx, data) => {
  ctx.emit("echo.reply", { text: data.text, at: Date.now() });
  // @ts-expect-error (1) inferred from the schema: no `txt`
  void data.txt;
  // @ts-expect-error (3) echo.reply's `at` is a number
  ctx.emit("echo.reply", { text: data.text, at: "now" });
});
Echo.on("shout", (_ctx, { text }) => text.toUpperCase());
// The handler sees the schema's output (after transforms), the client sends its input.
Echo.on("parse", (_ctx, { n }) => {
  expectType<number>(n);
  return n * 2;
});
// @ts-expect-error (5) not in the contract
Echo.on("shout.loud", () => "x");

async function withSchemas(): Promise<void> {
  const client = new WarrenClient<typeof Echo>("ws://127.0.0.1:8787/ws");
  client.on("echo.reply", ({ text, at }) => expectType<[string, number]>([text, at]));
  const shouted: string = await client.call("shout", { text: "hi" });
  const doubled: number = await client.call("parse", { n: "21" });
  // @ts-expect-error (10) the client sends the schema's input: n is a string
  await client.call("parse", { n: 21 });
  // @ts-expect-error (8) echo carries text
  client.emit("echo", { message: "hi" });
  // @ts-expect-error (11) shout resolves with a string
  const wrong: number = await client.call("shout", { text: "hi" });
  void [shouted, doubled, wrong];
}
void withSchemas;

// ---- call results inferred from the handlers of a chain, when the contract declares none ----

const Counter = defineConnection({
  name: "Counter",
  contract: defineContract({
    calls: { "count.get": {}, add: { args: payload<{ a: number; b: number }>() } },
  }),
  state: { count: 0 },
})
  .on("count.get", (ctx) => ctx.state.count)
  .on("add", async (_ctx, { a, b }) => ({ sum: a + b }));

async function inferredResults(): Promise<void> {
  const client = new WarrenClient<typeof Counter>("ws://x/ws");
  const count = await client.call("count.get");
  assertTrue<Equal<typeof count, number>>();
  const { sum } = await client.call("add", { a: 1, b: 2 });
  expectType<number>(sum);
  // @ts-expect-error (11) inferred from the handler: a number, not a string
  const wrong: string = await client.call("count.get");
  // @ts-expect-error (11) the result has `sum`, not `total`
  void (await client.call("add", { a: 1, b: 2 })).total;
  void wrong;
}
void inferredResults;

// Without any contract, a chain still types the results; names and data stay untyped.
const Chained = defineConnection({ name: "Chained", state: { n: 0 } }).on("n.get", (ctx) => ctx.state.n);
async function chainedClient(): Promise<void> {
  const client = new WarrenClient<typeof Chained>("ws://x/ws");
  const n = await client.call("n.get");
  assertTrue<Equal<typeof n, number>>();
  // @ts-expect-error (11) inferred: a number
  const wrong: string = await client.call("n.get");
  const other = await client.call<boolean>("other", {});
  expectType<boolean>(other);
  void [n, wrong];
}
void chainedClient;

// ---- partial contracts: a section left out stays untyped ----

const onlyServer = defineContract({ serverEvents: { tick: payload<{ n: number }>() } });
const Partial = defineConnection({ name: "Partial", contract: onlyServer });
Partial.on("anything", (ctx, data) => {
  ctx.emit("tick", { n: data.whatever });
  // @ts-expect-error serverEvents is given, so it is closed
  ctx.emit("tock", { n: 1 });
});
async function partialClient(): Promise<void> {
  const client = new WarrenClient<typeof onlyServer>("ws://x/ws");
  client.emit("anything", { at: 1 });
  const r = await client.call<number>("anything", {});
  expectType<number>(r);
  client.on("tick", ({ n }) => expectType<number>(n));
}
void partialClient;

// ---- rooms take the contract's server events ----

createRoomHandler({
  name: "Lobby",
  contract: chat,
  state: { joins: 0 },
  onJoin(room, userId) {
    room.joins++;
    room.emit("user.left", { userId });
    room.broadcast("chat.message", { from: "system", text: `${userId} joined` });
    // @ts-expect-error rooms: unknown server event
    room.emit("user.joined", { userId });
    // @ts-expect-error rooms: wrong payload
    room.broadcast("chat.message", { from: "system" });
  },
});

// ---- key order: ctx.meta from extractMeta, whichever comes first, with `meta` ----

defineConnection({
  meta: payload<Meta>(),
  onConnect(ctx) {
    expectType<string>(ctx.meta.name);
  },
  extractMeta: (req) => ({ userId: "u", name: String(req.query.get("name")) }),
});
// Without `meta`, extractMeta written first still types ctx.meta (as before).
defineConnection({
  extractMeta: () => ({ userId: "u", name: "n" }),
  onConnect(ctx) {
    expectType<string>(ctx.meta.name);
  },
});

// ---- named context types take the contract ----

function greet(ctx: ConnectionContext<Meta, { count: number }, typeof chat>): void {
  ctx.emit("welcome", { count: ctx.state.count });
  // @ts-expect-error typed by the contract
  ctx.emit("welcome", { count: "x" });
}
void greet;

// ---- untyped use is unchanged ----

const Untyped = defineConnection({ name: "Untyped" });
Untyped.on("anything", (ctx, data) => {
  ctx.emit("whatever", { any: data.field });
  ctx.emit.toRoom("r").emit("x", {});
});
async function untypedClient(): Promise<void> {
  const client = new WarrenClient("ws://x/ws");
  client.on("anything", (data) => data.whatever);
  client.emit("anything", 5);
  const n = await client.call<number>("anything", {}, { timeout: 1 });
  expectType<number>(n);
  const fromDef = new WarrenClient<typeof Untyped>("ws://x/ws");
  fromDef.on("x", (data) => data.y);
  await fromDef.call<string>("y");
}
void untypedClient;

const typedContract: Contract = chat;
void typedContract;

// Definitions typed by contracts and chains go to createServer like any other.
createServer({ connections: [ChatConnection, Echo, Counter, Chained, Untyped], rooms: [] });
