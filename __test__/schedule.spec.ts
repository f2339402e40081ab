import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createServer, defineConnection } from "../index.js";
import { deferred, serve, TestClient, withTimeout } from "./helpers.js";

function reminders(fired: (text: string, count: number) => void) {
  const Conn = defineConnection({
    name: "Reminders",
    extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
    state: { fired: 0 },
  });
  Conn.on("remind", (ctx, data) => ctx.schedule.after(data.ms, "reminder", { text: data.text }));
  Conn.on("remind-at", (ctx, data) => ctx.schedule.at(new Date(Date.now() + data.ms), "reminder", { text: data.text }));
  Conn.on("pending", (ctx) => ctx.schedule.list().map((s) => s.data));
  Conn.on("cancel", (ctx, data) => ctx.schedule.cancel(data.id));
  Conn.on("reminder", (ctx, data) => {
    ctx.state.fired++;
    ctx.broadcast("reminded", { text: data.text });
    fired(data.text, ctx.state.fired);
  });
  return Conn;
}

describe("schedules", () => {
  test("after and at deliver the event to the actor's handler, in order; list and cancel work", async () => {
    const seen: string[] = [];
    const done = deferred();
    const Conn = reminders((text) => {
      seen.push(text);
      if (seen.length === 2) done.resolve();
    });
    const { url } = await serve({ connections: [Conn] });
    const client = await TestClient.open(`${url}?user=ann`);
    await client.call("remind", { ms: 120, text: "second" });
    await client.call("remind-at", { ms: 40, text: "first" });
    const doomed = (await client.call("remind", { ms: 80, text: "cancelled" })).data;
    assert.deepEqual((await client.call("pending")).data, [{ text: "first" }, { text: "cancelled" }, { text: "second" }]);
    assert.equal((await client.call("cancel", { id: doomed })).data, true);
    assert.equal((await client.call("cancel", { id: doomed })).data, false);
    await withTimeout(done.promise, "two reminders");
    assert.deepEqual(seen, ["first", "second"]);
    assert.equal((await client.event("reminded")).text, "first");
    assert.deepEqual((await client.call("pending")).data, []);
  });

  test("a schedule wakes a hibernated actor, and re-creates an evicted one", async () => {
    const fired = deferred<number>();
    const Conn = reminders((_text, count) => fired.resolve(count));
    const { url, server } = await serve({ connections: [Conn], hibernateAfterMs: 40 });
    const client = await TestClient.open(`${url}?user=bo`);
    await client.call("remind", { ms: 400, text: "wake up" });
    await client.close();
    assert.equal(await withTimeout(fired.promise, "the reminder"), 1);
    assert.equal(server.stats().actors, 1, "the schedule brought the evicted actor back");
  });

  test("schedules survive a restart on the same storage", async () => {
    const dir = await mkdtemp(join(tmpdir(), "warren-schedule-"));
    after(() => rm(dir, { recursive: true, force: true }));
    const fired = deferred<string>();
    let server = createServer({ connections: [reminders(() => {})], storage: dir });
    let { url } = await server.listen({ port: 0 });
    const client = await TestClient.open(`${url}?user=cy`);
    // Due well after the first server has closed, so it can only fire on the second one.
    await client.call("remind", { ms: 2500, text: "after restart" });
    await server.close();
    server = createServer({ connections: [reminders((text) => fired.resolve(text))], storage: dir });
    ({ url } = await server.listen({ port: 0 }));
    after(() => server.close());
    assert.equal(await withTimeout(fired.promise, "the stored reminder"), "after restart");
  });
});
