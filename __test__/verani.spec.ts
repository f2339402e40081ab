// Verani's surface of defineConnection and createRoomHandler, over real sockets: definitions
// that leave every option out, and rooms whose hooks take the room state first.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createServer, defineConnection } from "../index.js";
import { serve, TestClient } from "./helpers.js";

describe("Verani's defineConnection defaults", () => {
  test("a definition with no option at all serves /ws as VeraniConnectionDO, each session its own user", async () => {
    const connection = defineConnection({
      onConnect(ctx) {
        ctx.emit("welcome", { message: "Connected!", userId: ctx.meta.userId });
      },
    });
    assert.equal(connection.name, "VeraniConnectionDO");
    assert.equal(connection.websocketPath, "/ws");
    const { server, port } = await serve({ connections: [connection] });
    const a = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
    const b = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
    const [welcomeA, welcomeB] = [await a.event("welcome"), await b.event("welcome")];
    assert.equal(welcomeA.message, "Connected!");
    assert.notEqual(welcomeA.userId, welcomeB.userId, "without extractMeta every session is its own user");
    assert.equal(server.destroyActor("VeraniConnectionDO", welcomeA.userId), true, "the default name addresses the actors");
    assert.equal((await a.closed).reason, "Actor destroyed");
    await b.close();
  });

  test("unnamed definitions on two paths live side by side, each with its own name and state", async () => {
    const counting = (label: string) =>
      defineConnection({
        websocketPath: `/${label}`,
        extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
        state: { count: 0 },
        onConnect(ctx) {
          ctx.state.count++;
          ctx.emit("count", { label, count: ctx.state.count });
        },
      });
    const one = counting("one");
    const two = counting("two");
    assert.equal(one.name, "VeraniConnectionDO:/one");
    assert.notEqual(one.name, two.name);
    const { port } = await serve({ connections: [one, two] });
    for (const expected of [1, 2]) {
      const client = await TestClient.open(`ws://127.0.0.1:${port}/one?user=u`);
      assert.deepEqual(await client.event("count"), { type: "count", label: "one", count: expected });
      await client.close();
    }
    const other = await TestClient.open(`ws://127.0.0.1:${port}/two?user=u`);
    assert.deepEqual(await other.event("count"), { type: "count", label: "two", count: 1 }, "same user, other definition");
    await other.close();
  });

  test("definitions clash only when they serve the same path", () => {
    assert.throws(() => createServer({ connections: [defineConnection({}), defineConnection({})], storage: ":memory:" }), /two connection definitions/);
    assert.throws(
      () => createServer({ connections: [defineConnection({ name: "A" }), defineConnection({ name: "B" })], storage: ":memory:" }),
      /two connection definitions serve the path "\/ws"/,
    );
    const server = createServer({
      connections: [defineConnection({}), defineConnection({ websocketPath: "/other" })],
      storage: ":memory:",
    });
    void server.close();
  });
});
