// What a refused client learns from extractMeta's errors: a refusal thrown on purpose carries its
// message; a bug in extractMeta (TypeError and its kin) answers "unauthorized" and is logged,
// unless the server runs with exposeErrors, as for call errors.
import assert from "node:assert/strict";
import { test } from "node:test";
import { defineConnection } from "../index.js";
import { refusedUpgrade, serve } from "./helpers.js";

const Buggy = defineConnection({
  name: "Buggy",
  extractMeta(req) {
    const claims = (req as unknown as { claims: { sub: string } }).claims;
    return { userId: claims.sub };
  },
});

async function quietly<T>(run: () => Promise<T>): Promise<{ result: T; logged: string[] }> {
  const logged: string[] = [];
  const original = console.error;
  console.error = (...parts: unknown[]) => void logged.push(parts.map(String).join(" "));
  try {
    return { result: await run(), logged };
  } finally {
    console.error = original;
  }
}

test("a bug in extractMeta answers 401 unauthorized without its message, and is logged", async () => {
  const { url } = await serve({ connections: [Buggy] });
  const { result, logged } = await quietly(() => refusedUpgrade(url));
  assert.deepEqual(result, { status: 401, body: { error: "unauthorized" }, opened: false });
  assert.ok(logged.some((line) => line.includes("Buggy") && line.includes("TypeError")), logged.join("\n"));
});

test("with exposeErrors the bug's message reaches the client", async () => {
  const { url } = await serve({ connections: [Buggy], exposeErrors: true });
  const { result } = await quietly(() => refusedUpgrade(url));
  assert.equal(result.status, 401);
  assert.match(result.body.error, /Cannot read properties of undefined/);
});
