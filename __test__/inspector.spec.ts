/**
 * The inspector: its JSON API behind the admin token, and its page in headless Chromium (Debian's
 * `chromium` driven by playwright-core, as in browser.spec.ts) showing an actor this test created,
 * its state changing live, its recent events, and destroying it.
 *
 * Writes its screenshot to __test__/artifacts/ (ignored by git); with WARREN_UPDATE_DOCS=1, to
 * docs/inspector.png, which the README shows.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createRoomHandler, createServer, defineConnection } from "../index.js";
import { serve, TestClient, withTimeout } from "./helpers.js";

const TOKEN = "inspector-s3cret";
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const WAIT_MS = 15_000;
const SCREENSHOTS = fileURLToPath(new URL(process.env.WARREN_UPDATE_DOCS === "1" ? "../docs/" : "./artifacts/", import.meta.url));

function app() {
  const Counter = defineConnection({
    name: "Counter",
    rooms: { lobby: "Lobby" },
    extractMeta: (req) => ({ userId: req.query.get("u")! }),
    state: { count: 0, tags: new Set<string>() },
    onConnect(ctx) {
      ctx.actor.joinRoom("lobby");
    },
  })
    .on("inc", (ctx, data: { by?: number } | undefined) => (ctx.state.count += data?.by ?? 1))
    .on("tag", (ctx, data: { tag: string }) => {
      ctx.state.tags.add(data.tag);
    });
  const Lobby = createRoomHandler({ name: "Lobby", connectionBinding: "Counter" });
  return { connections: [Counter], rooms: [Lobby] };
}

/** `token` "" sends no Authorization header. */
async function api(port: number, path: string, method = "GET", token = TOKEN): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`http://127.0.0.1:${port}/_warren/${path}`, {
    method,
    headers: token === "" ? {} : { Authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  const json = response.headers.get("content-type")?.startsWith("application/json");
  return { status: response.status, body: json ? JSON.parse(text) : text, headers: response.headers };
}

describe("inspector", () => {
  test("inspector: true without adminToken refuses to start with invalid_option", () => {
    assert.throws(() => createServer({ ...app(), storage: ":memory:", inspector: true }), (error: any) => {
      assert.equal(error.code, "invalid_option");
      assert.match(error.message, /inspector.*adminToken/);
      return true;
    });
  });

  test("the JSON API needs the token; it lists actors, sessions and rooms, shows state and events, hibernates and destroys", async () => {
    const { server, port, url } = await serve({ ...app(), inspector: true, adminToken: TOKEN });
    const alice = await TestClient.open(`${url}?u=alice`);
    const bob = await TestClient.open(`${url}?u=bob`);
    await alice.call("inc", { by: 2 });
    await alice.call("tag", { tag: "vip" });
    assert.equal((await api(port, "api/actors", "GET", "")).status, 401);
    assert.equal((await api(port, "api/actors", "GET", "wrong")).status, 401);
    assert.equal((await api(port, "api/actor/destroy?kind=Counter&key=alice", "POST", "")).status, 401);
    const page = await api(port, "inspector", "GET", "");
    assert.equal(page.status, 200, "the page itself holds no data and needs no token");
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    const overview = (await api(port, "api/actors")).body;
    assert.deepEqual(overview.counts, { sessions: 2, actorsAwake: 2, actorsHibernated: 0, rooms: 1, actors: 2 });
    assert.deepEqual(
      overview.actors.map((a: any) => [a.kind, a.key, a.hibernated, a.sessions.length, a.rooms]),
      [["Counter", "alice", false, 1, ["lobby"]], ["Counter", "bob", false, 1, ["lobby"]]],
    );
    assert.deepEqual(overview.rooms, [{ name: "lobby", hibernated: false, members: ["alice", "bob"] }]);
    const actor = (await api(port, "api/actor?kind=Counter&key=alice")).body;
    assert.equal(actor.inMemory, true);
    assert.deepEqual(actor.state, { count: 2, tags: { $set: ["vip"] } });
    assert.deepEqual(
      actor.events.filter((e: any) => e.kind === "call").map((e: any) => [e.name, e.data]),
      [["inc", '{"by":2}'], ["tag", '{"tag":"vip"}']],
    );
    assert.equal((await api(port, "api/actor?kind=Nope&key=alice")).status, 404);
    assert.equal((await api(port, "api/actor/hibernate?kind=Counter&key=bob", "POST")).status, 200);
    assert.equal((await api(port, "api/actors")).body.counts.actorsHibernated, 1);
    assert.equal((await api(port, "api/actor/destroy?kind=Counter&key=alice", "GET")).status, 405);
    assert.equal((await api(port, "api/actor/destroy?kind=Counter&key=alice", "POST")).status, 200);
    assert.deepEqual(await alice.closed, { code: 1000, reason: "Actor destroyed" });
    const after = (await api(port, "api/actor?kind=Counter&key=alice")).body;
    assert.equal(after.inMemory, false);
    assert.equal(after.state, null, "a destroyed actor's state is forgotten");
    assert.ok(server.stats().sessions === 1);
    await bob.close();
  });

  test("the page in Chromium shows an actor this test created, its state live, and destroys it", { timeout: 90_000 }, async (t) => {
    assert.ok(existsSync(CHROMIUM), `Chromium is not installed (${CHROMIUM} is missing)`);
    const { chromium } = await import("playwright-core");
    const { port, url } = await serve({ ...app(), inspector: true, adminToken: TOKEN, metrics: true });
    const ann = await TestClient.open(`${url}?u=ann`);
    const bob = await TestClient.open(`${url}?u=bob`);
    await ann.call("inc", { by: 1 });
    const profile = await mkdtemp(join(tmpdir(), "warren-inspector-chromium-"));
    t.after(() => rm(profile, { recursive: true, force: true }));
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1100, height: 640 } });
    t.after(() => context.close());
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("dialog", (dialog) => void dialog.accept());
    await page.goto(`http://127.0.0.1:${port}/_warren/inspector#token=${TOKEN}`);
    assert.equal(new URL(page.url()).hash, "", "the token leaves the address bar at once");
    const row = page.locator("tr.actor", { hasText: "ann" });
    await row.waitFor({ state: "visible", timeout: WAIT_MS });
    await page.locator("#counts [data-count=sessions]", { hasText: "sessions 2" }).waitFor({ timeout: WAIT_MS });
    await row.click();
    await page.locator("#state", { hasText: '"count": 1' }).waitFor({ timeout: WAIT_MS });
    // Live: a change made now shows up on the next poll, with its event.
    await ann.call("inc", { by: 41 });
    await ann.call("tag", { tag: "admin" });
    await page.locator("#state", { hasText: '"count": 42' }).waitFor({ timeout: WAIT_MS });
    await page.locator("#events td", { hasText: '{"by":41}' }).first().waitFor({ timeout: WAIT_MS });
    await page.locator("#rooms td", { hasText: "ann, bob" }).waitFor({ timeout: WAIT_MS });
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "inspector.png") });
    await page.locator("#destroy").click();
    assert.deepEqual(await withTimeout(ann.closed, "ann's socket to close"), { code: 1000, reason: "Actor destroyed" });
    await row.waitFor({ state: "detached", timeout: WAIT_MS });
    await page.locator("#detail-meta", { hasText: "not in memory" }).waitFor({ timeout: WAIT_MS });
    await bob.close();
  });
});
