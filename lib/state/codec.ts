/**
 * The stored form of persisted state: V8 structured serialization (`node:v8`), which keeps Date,
 * Map, Set, BigInt, RegExp, binary data and cycles as they are. What may be stored is decided
 * before (`storable.ts`); this file only encodes and decodes, and refuses bytes that do not
 * decode to a plain object rather than fall back to defaults silently.
 */

import { types } from "node:util";
import { DefaultDeserializer, serialize } from "node:v8";
import { WarrenError, messageOf } from "../errors";
import { kindOf, owners } from "./storable";

/**
 * Encodes a persisted-state object to bytes with v8 serialization. Does not check the value
 * (`assertStorable` does): class instances would be flattened, functions throw.
 */
export function encodeState(value: object): Uint8Array {
  return serialize(owners.get(value)?.target ?? value);
}

const readHostObject = (
  DefaultDeserializer.prototype as unknown as { _readHostObject(): NodeJS.ArrayBufferView }
)._readHostObject;

/**
 * Node restores a typed array as a view into the whole input (or into a shared pool chunk when
 * unaligned): its `.buffer` would expose the rest of the stored state and keep it alive. Each
 * view gets its own ArrayBuffer instead.
 */
class Deserializer extends DefaultDeserializer {
  _readHostObject(): NodeJS.ArrayBufferView {
    const view = readHostObject.call(this);
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
    if (Buffer.isBuffer(view)) return Buffer.from(bytes.buffer);
    if (types.isDataView(view)) return new DataView(bytes.buffer);
    return new (view.constructor as new (buffer: ArrayBuffer) => NodeJS.ArrayBufferView)(bytes.buffer);
  }
}

/**
 * Decodes bytes written by `encodeState`. Bytes that do not decode to a plain object throw a
 * `WarrenError` with code `"corrupt_state"`; nothing falls back to defaults silently.
 * The format is V8's: bytes written by a newer Node may not be readable by an older one.
 */
export function decodeState(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    const deserializer = new Deserializer(bytes);
    deserializer.readHeader();
    value = deserializer.readValue();
  } catch (error) {
    throw new WarrenError("corrupt_state", `stored state cannot be decoded: ${messageOf(error)}`);
  }
  if (typeof value !== "object" || value === null || kindOf(value) !== "object") {
    throw new WarrenError("corrupt_state", "stored state cannot be decoded: it is not an object");
  }
  return value as Record<string, unknown>;
}
