import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { TestClient, withTimeout } from "./helpers.js";

describe("the chat demo", () => {
  test("serves its page and lets two users chat with join notices and history", async () => {
    const script = fileURLToPath(new URL("../examples/chat/server.mjs", import.meta.url));
    const storage = await mkdtemp(join(tmpdir(), "warren-demo-"));
    after(() => rm(storage, { recursive: true, force: true }));
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, PORT: "0", WARREN_STORAGE: storage },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = once(child, "exit");
    try {
      const [line] = (await withTimeout(once(child.stdout, "data"), "the demo to start")) as [Buffer];
      const base = /http:\/\/[^/]+\//.exec(line.toString())?.[0];
      assert.ok(base, line.toString());
      const page = await fetch(base);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /warren chat/);
      assert.equal((await fetch(`${base}warren-client.mjs`)).status, 200);
      const socket = `${base.replace("http", "ws")}ws`;
      const ann = await TestClient.open(`${socket}?name=ann`);
      assert.deepEqual((await ann.event("chat.history")).online, ["ann"]);
      const ben = await TestClient.open(`${socket}?name=ben`);
      await ann.next((f) => f.data?.type === "user.joined" && f.data.userId === "ben", "ben's join notice");
      ann.emit("chat.message", { text: "hello ben" });
      assert.equal((await ben.event("chat.message")).text, "hello ben");
      const cat = await TestClient.open(`${socket}?name=cat`);
      const history = await cat.event("chat.history");
      assert.deepEqual(history.messages.map((m: { text: string }) => m.text), ["hello ben"]);
      await ben.close();
      await ann.next((f) => f.data?.type === "user.left" && f.data.userId === "ben", "ben's leave notice");
      await Promise.all([ann.close(), cat.close()]);
    } finally {
      child.kill("SIGTERM");
      await withTimeout(exited, "the demo to exit");
    }
  });
});
