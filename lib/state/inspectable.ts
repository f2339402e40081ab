/**
 * A persisted state as JSON for the inspector, which only shows it: `Map` and `Set` become
 * `{"$map": [[key, value], ...]}` and `{"$set": [...]}`, a `BigInt` its decimal digits with an
 * `n`, binary data `{"$bytes": length}`, a `RegExp` its source, and a cycle `"[cycle]"`.
 * Nothing reads it back.
 */

import { types } from "node:util";

export function inspectable(state: unknown): string {
  const ancestors: object[] = [];
  return JSON.stringify(state, function (this: unknown, _key: string, value: unknown) {
    // JSON.stringify calls with `this` = the holder: drop ancestors that are not on this path.
    while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
    if (typeof value === "bigint") return `${value}n`;
    if (value === null || typeof value !== "object") return value;
    if (ancestors.includes(value)) return "[cycle]";
    if (value instanceof Map) value = { $map: [...value.entries()] };
    else if (value instanceof Set) value = { $set: [...value.values()] };
    else if (ArrayBuffer.isView(value) || types.isArrayBuffer(value)) return { $bytes: (value as ArrayBufferLike).byteLength };
    else if (value instanceof RegExp) return String(value);
    ancestors.push(value as object);
    return value;
  }) ?? "null";
}
