// A disk that fills up under `durability: "strict"`, on a real 3 MiB tmpfs: the process lives,
// calls whose state cannot be stored get `storage_unavailable` (nothing they did is
// acknowledged), others keep working, and once the disk has room commits succeed again with no
// restart; what was acknowledged is still there after one.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createServer, defineConnection } from "../index.js";
import { listenForTest, TestClient } from "./helpers.js";

const Blob = defineConnection({
  name: "Blob",
  extractMeta: (req) => ({ userId: String(req.query.get("user")) }),
  state: { blob: "", n: 0 },
});
Blob.on("grow", (ctx, data: { size: number }) => {
  ctx.state.blob = "x".repeat(data.size) + ctx.state.n;
  return ++ctx.state.n;
});
Blob.on("count", (ctx) => ctx.state.n);
Blob.on("echo", () => "pong");

/** A 3 MiB tmpfs of its own (root can mount one; CI runs as root). */
function smallDisk(): { dir: string; unmount: () => void } | undefined {
  const dir = mkdtempSync(join(tmpdir(), "warren-full-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", dir], { stdio: "ignore" });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  return {
    dir,
    unmount: () => {
      execFileSync("umount", ["-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test("a full disk refuses the calls it cannot store, and commits again once it has room", async (t) => {
  const disk = smallDisk();
  if (!disk) return t.skip("mounting a tmpfs needs root");
  t.after(disk.unmount);
  const filler = join(disk.dir, "filler");
  writeFileSync(filler, Buffer.alloc(1 << 20));
  const storage = join(disk.dir, "store");
  const server = createServer({ connections: [Blob], storage });
  const { url, close } = await listenForTest(t, server);
  const writer = await TestClient.open(`${url}?user=writer`);
  const bystander = await TestClient.open(`${url}?user=bystander`);

  let acknowledged = 0;
  let refused: any;
  for (let i = 0; i < 20 && !refused; i++) {
    const reply = await writer.call("grow", { size: 400_000 });
    if (reply.error) refused = reply.error;
    else acknowledged = reply.data;
    assert.equal((await bystander.call("echo")).data, "pong", "a call that stores nothing is answered");
  }
  assert.equal(refused?.code, "storage_unavailable", "the disk filled up and said so");
  assert.ok(acknowledged > 0);
  assert.ok(server.stats().storageFailures > 0);
  assert.equal(server.stats().heldFrames, 0, "nothing waits forever behind the gate");

  // Room again: the store is reopened in the background and changes are stored again, with no
  // restart (a call during the reopening is refused like the ones before).
  rmSync(filler);
  let again = await writer.call("grow", { size: 1000 });
  const until = Date.now() + 10_000;
  while (again.error && Date.now() < until) {
    assert.equal(again.error.code, "storage_unavailable");
    await new Promise((resolve) => setTimeout(resolve, 50));
    again = await writer.call("grow", { size: 1000 });
  }
  assert.equal(again.error, undefined, "commits succeed again once the disk has room");
  const stored = again.data;
  await Promise.all([writer.close(), bystander.close()]);
  await close();

  // What was acknowledged is there after a restart.
  const restarted = createServer({ connections: [Blob], storage });
  const { url: url2 } = await listenForTest(t, restarted);
  const reader = await TestClient.open(`${url2}?user=writer`);
  assert.ok((await reader.call("count")).data >= stored, "acknowledged ≤ stored");
  await reader.close();
});
