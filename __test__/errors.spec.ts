import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { createServer, defineConnection } from "../index.js";
import { serve } from "./helpers.js";

const Conn = defineConnection({ name: "Conn" });

/** Asserts that `run` throws an error whose `code` is `code` and whose message matches. */
function throwsWithCode(run: () => unknown, code: string, message: RegExp): void {
  assert.throws(run, (error: any) => {
    assert.equal(error.code, code, `code of: ${error.message}`);
    assert.match(error.message, message);
    return true;
  });
}

describe("native errors carry stable codes", () => {
  test("a busy port throws EADDRINUSE, as Node's net does", async (t) => {
    const { server, port } = await serve({ connections: [Conn], storage: ":memory:" });
    t.after(() => server.close());
    const second = createServer({ connections: [Conn], storage: ":memory:" });
    t.after(() => second.close());
    await assert.rejects(second.listen({ port, host: "127.0.0.1" }), (error: any) => {
      assert.equal(error.code, "EADDRINUSE");
      assert.match(error.message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
      return true;
    });
  });

  test("a storage directory another server owns throws storage_locked", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "warren-errors-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const first = createServer({ connections: [Conn], storage: dir });
    t.after(() => first.close());
    throwsWithCode(() => createServer({ connections: [Conn], storage: dir }), "storage_locked", /in use by another warren server/);
  });

  test("an option the core refuses throws invalid_option naming it", () => {
    throwsWithCode(
      () => createServer({ connections: [Conn], storage: ":memory:", maxPayloadBytes: 10 }),
      "invalid_option",
      /maxPayloadBytes must be at least 128/,
    );
  });
});
