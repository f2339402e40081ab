/**
 * What may be stored: the policy every value entering a persisted key passes, and the walk that
 * applies it. A value lands under a persisted key only if it comes back from storage as it went
 * in; anything else is a TypeError at the assignment, naming its path, with the state untouched,
 * rather than a silent loss at the next save (Verani drops functions and cycles, and Dates come
 * back as strings).
 *
 * The same walk unwraps state proxies on the way in, so the raw state never holds one of them,
 * at any depth: without this, proxies stored in the state nest exponentially (Rivet had to
 * unwrap them before persisting, #5582). An object read from another cell's state is copied
 * when assigned under a persisted key: a change made through one cell never changes what
 * another stores without marking it dirty.
 */

import { types } from "node:util";
import type { StateCell } from "./cell";

/** The kinds of object that can be stored, by prototype. */
export type Kind = "object" | "array" | "map" | "set" | "date" | "regexp" | "buffer" | "typed" | "dataview";

const KINDS = new Map<object | null, Kind>([
  [Object.prototype, "object"],
  [null, "object"],
  [Array.prototype, "array"],
  [Map.prototype, "map"],
  [Set.prototype, "set"],
  [Date.prototype, "date"],
  [RegExp.prototype, "regexp"],
  [ArrayBuffer.prototype, "buffer"],
  [DataView.prototype, "dataview"],
  [Buffer.prototype, "typed"],
  ...[
    Int8Array,
    Uint8Array,
    Uint8ClampedArray,
    Int16Array,
    Uint16Array,
    Int32Array,
    Uint32Array,
    Float32Array,
    Float64Array,
    BigInt64Array,
    BigUint64Array,
  ].map((constructor): [object, Kind] => [constructor.prototype, "typed"]),
]);


export const INDEX = /^(?:0|[1-9]\d*)$/;
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** The brand check of each kind whose prototype alone can be borrowed (`Object.create(Map.prototype)`). */
const BRANDS: Partial<Record<Kind, (value: object) => boolean>> = {
  array: Array.isArray,
  map: types.isMap,
  set: types.isSet,
  date: types.isDate,
  regexp: types.isRegExp,
  buffer: types.isArrayBuffer,
  dataview: types.isDataView,
  typed: types.isTypedArray,
};

/** The kind of a storable object; undefined for anything else (class instances included). */
export function kindOf(value: object): Kind | undefined {
  if (types.isProxy(value)) return undefined;
  const kind = KINDS.get(Object.getPrototypeOf(value));
  if (kind === undefined) return undefined;
  const brand = BRANDS[kind];
  return brand === undefined || brand(value) ? kind : undefined;
}

export function nameOf(value: object): string {
  const prototype = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
  const name = prototype?.constructor?.name;
  return typeof name === "string" && name !== "" ? name : "an anonymous class";
}

/** Why an object of no storable kind cannot be stored. */
function whyNot(value: object): string {
  if (types.isProxy(value)) return "proxies cannot be persisted";
  if (types.isPromise(value)) return "promises cannot be persisted";
  if (types.isWeakMap(value) || types.isWeakSet(value) || value instanceof WeakRef) {
    return "WeakMap, WeakSet and WeakRef cannot be persisted";
  }
  if (types.isSharedArrayBuffer(value)) return "SharedArrayBuffer cannot be persisted";
  const name = nameOf(value);
  return `instances of ${name} cannot be persisted (they would not come back as ${name})`;
}

/** A property key as a path step: `.name`, `[3]` or `["odd key"]`. */
export function segment(key: string | symbol): string {
  if (typeof key === "symbol") return `[${key.toString()}]`;
  if (IDENTIFIER.test(key)) return `.${key}`;
  return INDEX.test(key) ? `[${key}]` : `[${JSON.stringify(key)}]`;
}

/** How a value was reached from its container, for its path: a property, a Map entry, an iterator. */
export type Step = "property" | "get" | "keys" | "values";

export function step(how: Step, key: unknown): string {
  if (how === "property") return segment(key as string | symbol);
  return how === "get" ? `.get(${describeKey(key)})` : `.${how}()`;
}

/** A Map key as it appears in a path: `.get("a")`, `.get(3)`, `.get({…})`. */
export function describeKey(key: unknown): string {
  if (typeof key === "string") return JSON.stringify(key);
  if (typeof key === "bigint") return `${key}n`;
  if ((typeof key === "object" && key !== null) || typeof key === "function") return "{…}";
  return String(key);
}

export function dataProperty(value: unknown): PropertyDescriptor {
  return { value, writable: true, enumerable: true, configurable: true };
}

/** Where each of our proxies comes from: its raw target and the cell that made it. */
export const owners = new WeakMap<object, { readonly target: object; readonly cell: StateCell }>();

/** One walk over a value entering the state (or looked at by `assertStorable`). */
export interface Walk {
  /** Refuse what cannot be stored: the value lands under a persisted key. */
  readonly check: boolean;
  /** The cell the value enters: its own proxies are replaced by their targets in place,
   * other cells' are copied. Null: only look, change nothing. */
  readonly cell: StateCell | null;
  /** The value is stored as a structuredClone of it (the defaults): frozen objects and
   * read-only properties are fine, the copy has neither. */
  readonly cloned: boolean;
  /** Raw objects already checked and free of proxies (the cell's persisted graph): skipped. */
  readonly known: WeakSet<object> | null;
  /** Objects visited by this walk; guards against cycles. */
  readonly seen: Set<object>;
  /** Path of the current value, as steps; joined only for an error message. */
  readonly path: string[];
}

function refuse(walk: Walk, reason: string): void {
  if (walk.check) throw new TypeError(`cannot store ${walk.path.join("")}: ${reason}`);
}

/** Checks (when `walk.check`) and unwraps `value`; returns what the raw state should hold. */
export function admit(value: unknown, walk: Walk): unknown {
  if (typeof value === "function") refuse(walk, "functions cannot be persisted");
  if (typeof value === "symbol") refuse(walk, "symbols cannot be persisted");
  if (typeof value !== "object" || value === null) return value;
  let raw: object = value;
  const owner = owners.get(value);
  if (owner !== undefined) {
    raw = owner.target;
    if (walk.check && walk.cell !== null && owner.cell !== walk.cell) {
      // Checked before the copy: structuredClone would flatten what v8 cannot store.
      admit(raw, { ...walk, cell: null, cloned: true, known: null, seen: new Set() });
      raw = structuredClone(raw);
    }
  }
  if (walk.seen.has(raw) || walk.known?.has(raw)) return raw;
  walk.seen.add(raw);
  const kind = kindOf(raw);
  if (kind === undefined) {
    refuse(walk, whyNot(raw));
    return raw;
  }
  if (kind === "object" || kind === "array") {
    admitProperties(raw, kind, walk);
  } else if (kind !== "typed" && Object.keys(raw).length > 0) {
    refuse(walk, `properties added to a ${nameOf(raw)} are not persisted`);
  }
  if (kind === "map") admitMap(raw as Map<unknown, unknown>, walk);
  if (kind === "set") admitSet(raw as Set<unknown>, walk);
  return raw;
}

function admitProperties(raw: object, kind: Kind, walk: Walk): void {
  if (!walk.cloned && !Object.isExtensible(raw)) {
    refuse(walk, "frozen, sealed or non-extensible objects cannot be persisted (they would come back unfrozen)");
  }
  for (const key of Reflect.ownKeys(raw)) {
    if (kind === "array" && key === "length") continue;
    const descriptor = Reflect.getOwnPropertyDescriptor(raw, key)!;
    walk.path.push(segment(key));
    if (typeof key === "symbol") refuse(walk, "symbol keys cannot be persisted");
    if (!("value" in descriptor)) refuse(walk, "getters and setters cannot be persisted");
    if (!descriptor.enumerable || (!walk.cloned && (!descriptor.writable || !descriptor.configurable))) {
      refuse(walk, "non-enumerable or read-only properties cannot be persisted");
    }
    if ("value" in descriptor) {
      const value = admit(descriptor.value, walk);
      if (value !== descriptor.value && walk.cell !== null) Reflect.defineProperty(raw, key, { ...descriptor, value });
    }
    walk.path.pop();
  }
}

function admitMap(map: Map<unknown, unknown>, walk: Walk): void {
  const entries: Array<[unknown, unknown]> = [];
  let changed = false;
  for (const [key, value] of map) {
    walk.path.push(".keys()");
    const k = admit(key, walk);
    walk.path.pop();
    walk.path.push(`.get(${describeKey(key)})`);
    const v = admit(value, walk);
    walk.path.pop();
    entries.push([k, v]);
    changed ||= k !== key || v !== value;
  }
  if (!changed || walk.cell === null) return;
  map.clear();
  for (const [k, v] of entries) map.set(k, v);
}

function admitSet(set: Set<unknown>, walk: Walk): void {
  const members: unknown[] = [];
  let changed = false;
  walk.path.push(".values()");
  for (const member of set) {
    const m = admit(member, walk);
    members.push(m);
    changed ||= m !== member;
  }
  walk.path.pop();
  if (!changed || walk.cell === null) return;
  set.clear();
  for (const m of members) set.add(m);
}

/**
 * Throws a TypeError naming the path (e.g. `cannot store state.profile.onClick: functions
 * cannot be persisted`) when `value` would not come back from storage as it is: functions,
 * symbols, promises, weak collections, class instances (they come back as plain objects),
 * getters, symbol keys, non-enumerable or read-only properties, frozen objects. Accepts JSON
 * values and Date, Map, Set, BigInt, RegExp, ArrayBuffer, typed arrays, Buffer and DataView, in
 * any nesting, cycles included. State proxies are looked through.
 */
export function assertStorable(value: unknown, path: string): void {
  admit(value, { check: true, cell: null, cloned: false, known: null, seen: new Set(), path: [path] });
}
