import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Tag } from "../lib/runtime/tags.js";

/** `Name = N` members of the enum called `Tag` in a source file. */
function tagsOf(path: string, opening: RegExp): Map<string, number> {
  const text = readFileSync(new URL(path, import.meta.url), "utf8");
  const start = text.search(opening);
  assert.ok(start >= 0, `no Tag enum in ${path}`);
  const body = text.slice(start, text.indexOf("}", start));
  return new Map([...body.matchAll(/^\s*(\w+) = (\d+),/gm)].map((match) => [match[1]!, Number(match[2])]));
}

test("the batch tags of lib/ are the ones the native core writes", () => {
  const native = tagsOf("../src/events/mod.rs", /pub enum Tag \{/);
  const js = tagsOf("../lib/runtime/tags.ts", /export enum Tag \{/);
  assert.ok(native.size >= 17, `read ${native.size} tags from src/events/mod.rs`);
  assert.deepEqual([...js.entries()].sort(), [...native.entries()].sort());
  for (const [name, value] of native) assert.equal((Tag as unknown as Record<string, number>)[name], value, name);
});
