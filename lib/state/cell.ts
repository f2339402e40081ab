/**
 * The persisted-state proxy: the stable object user code reads and writes as `ctx.state`, and
 * the change tracking behind it (what changed since the last save). What may be stored is
 * `storable.ts`'s policy; the bytes are `codec.ts`'s; when they are saved is `persistence.ts`'s.
 *
 * Invariant: the raw state (what the proxies wrap) never holds one of our proxies, at any depth
 * (`storable.ts` unwraps values on the way in, and a proxy is never wrapped again).
 *
 * Limit: only writes through the proxy are seen. Mutating a raw reference (the literal you
 * assigned, a `subarray()` view, an ArrayBuffer through your own view) changes memory without
 * marking the cell dirty. Read the value back through `ctx.state` and mutate that.
 */

import { types } from "node:util";
import { decodeState, encodeState } from "./codec";
import {
  INDEX,
  admit,
  dataProperty,
  describeKey,
  kindOf,
  nameOf,
  owners,
  segment,
  step,
  type Kind,
  type Step,
  type Walk,
} from "./storable";

/** Typed-array methods that write in place; index writes go through the `set` trap. */
const TYPED_MUTATORS = new Set<string | symbol>(["set", "fill", "copyWithin", "reverse", "sort"]);

/** Map and Set methods whose results hold stored values, which must come back wrapped. */
const ITERATORS = new Set<string | symbol>(["entries", "keys", "values", Symbol.iterator]);

/**
 * The state of one actor or room: the stable proxy user code reads and writes as `ctx.state`,
 * and what changed since the last save.
 *
 * A write marks the cell dirty when it can change what is stored: a set, delete or
 * defineProperty at any depth under a persisted key, `Map#set/delete/clear`, `Set#add/delete/
 * clear`, `Date#set*`, `DataView#set*`, typed-array index writes and `set/fill/copyWithin/
 * reverse/sort`. Writing the value already there, deleting a missing key or a missing Map
 * entry, and reads, do not. Writes under keys that are not persisted are neither checked nor
 * tracked: anything can live there, in memory.
 *
 * The proxy behaves as the plain value does for `instanceof`, `Array.isArray`, iteration,
 * spreading and `JSON.stringify`, and the same object always gives the same proxy. It is not
 * the object itself: `structuredClone(ctx.state.x)` and APIs that need a real typed array
 * (`TextDecoder`, `crypto`) need a copy (`{ ...x }`, `Uint8Array.from(x)`). RegExp and
 * ArrayBuffer values are returned as they are.
 *
 * Deleting a persisted key stores its absence, so the next load takes the default again.
 */
export class StateCell {
  /** The raw state. Replaced in place by `replace`, so the proxy over it never changes. */
  readonly #root: Record<string | symbol, unknown>;
  /** Persisted root keys; undefined: every own string key of the root. */
  readonly #keys: ReadonlySet<string> | undefined;
  readonly #onDirty: () => void;
  /** Proxies of the objects under the root (the root's is `#state`); made on first need. */
  #proxies: WeakMap<object, object> | null = null;
  /** Path each proxied object under the root was first reached by, for error messages. */
  #paths: WeakMap<object, string> | null = null;
  readonly #state: object;
  /** This cell's proxy handlers, by kind of object (made on first need): their traps are
   * methods on a shared prototype, so a cell costs two small objects, not a closure per trap. */
  #plainTraps: ProxyHandler<Record<string | symbol, unknown>> | null = null;
  #builtinTraps: ProxyHandler<object> | null = null;
  static #PlainTraps: new (cell: StateCell) => ProxyHandler<Record<string | symbol, unknown>>;
  static #BuiltinTraps: new (cell: StateCell) => ProxyHandler<object>;
  #dirty = false;
  /** While set, every write is refused with this reason (e.g. inside `onStateChange`). */
  #readOnly: string | null = null;
  /**
   * Raw objects reachable from persisted keys: writes to them are checked and mark the cell
   * dirty. A superset (an object detached since stays in until the next snapshot: at worst one
   * spurious save); null until a write needs it, dropped at each snapshot and replace.
   */
  #reached: WeakSet<object> | null = null;

  /**
   * @param defaults the definition's `state`: must be storable; cloned, never mutated.
   * @param persistedKeys root keys to store. `undefined`: every own key of the state at
   *   snapshot time, keys added later included; `[]`: none (never dirty, snapshots are `{}`).
   * @param stored bytes from `snapshot()`, or null. Its persisted keys override the defaults;
   *   keys it lacks keep their default (so keys added to a definition later get theirs); keys
   *   no longer persisted are dropped. Bytes that cannot be decoded throw a `WarrenError`
   *   with code `"corrupt_state"`: whether to start from the defaults is the caller's call.
   * @param onDirty called once each time the cell goes from clean to dirty, synchronously,
   *   after the write is applied.
   */
  constructor(
    defaults: object | undefined,
    persistedKeys: readonly string[] | undefined,
    stored: Uint8Array | null,
    onDirty: () => void,
  ) {
    if (defaults !== undefined && (typeof defaults !== "object" || defaults === null || kindOf(defaults) !== "object")) {
      throw new TypeError("cannot store state: the state must be a plain object");
    }
    admit(defaults, { check: true, cell: null, cloned: true, known: null, seen: new Set(), path: ["state"] });
    this.#keys = persistedKeys === undefined ? undefined : new Set(persistedKeys);
    this.#onDirty = onDirty;
    const initial = structuredClone(defaults ?? {}) as Record<string, unknown>;
    if (stored === null) {
      this.#root = initial;
    } else {
      // The stored object becomes the root, so that cycles through the root survive.
      const root = decodeState(stored);
      for (const key of Object.keys(root)) if (!this.#persists(key)) delete root[key];
      for (const key of Object.keys(initial)) {
        if (!Object.hasOwn(root, key)) Reflect.defineProperty(root, key, dataProperty(initial[key]));
      }
      this.#root = root;
    }
    this.#state = this.#proxy(this.#root, "object", "state");
  }

  /**
   * The state as user code sees it: always the same proxy, also after `replace`.
   * @example ctx.state.scores.set(userId, (ctx.state.scores.get(userId) ?? 0) + 1);
   */
  get state(): any {
    return this.#state;
  }

  /**
   * `ctx.state = value`: the root keeps its identity and takes the own enumerable keys of
   * `value` (a plain object, or a state proxy). Checked like any write, before anything
   * changes; marks the cell dirty unless nothing is persisted.
   * @example ctx.state = { ...ctx.state, round: ctx.state.round + 1 };
   */
  replace(value: object): void {
    this.#writable();
    const owner = typeof value === "object" && value !== null ? owners.get(value) : undefined;
    if (owner?.cell === this && owner.target === this.#root) {
      this.#touch(this.#keys?.size !== 0);
      return;
    }
    const source = owner?.cell === this ? owner.target : value;
    if (typeof source !== "object" || source === null || kindOf(owner?.target ?? source) !== "object") {
      throw new TypeError("cannot store state: the state must be a plain object");
    }
    const entries: Array<[string | symbol, PropertyDescriptor]> = [];
    for (const key of Reflect.ownKeys(source)) {
      const descriptor = Reflect.getOwnPropertyDescriptor(source, key)!;
      if (!descriptor.enumerable) continue;
      const path = `state${segment(key)}`;
      const tracked = this.#keys?.size !== 0 && this.#persists(key);
      if (!("value" in descriptor)) {
        if (tracked) throw new TypeError(`cannot store ${path}: getters and setters cannot be persisted`);
        entries.push([key, descriptor]);
        continue;
      }
      // Read through `source`: on another cell's proxy this gives its proxies, which get copied.
      entries.push([key, dataProperty(this.#admit(Reflect.get(source, key), path, tracked))]);
    }
    for (const key of Reflect.ownKeys(this.#root)) delete this.#root[key];
    for (const [key, descriptor] of entries) Reflect.defineProperty(this.#root, key, descriptor);
    this.#reached = null;
    this.#touch(this.#keys?.size !== 0);
  }

  /**
   * Runs `observe` with every write refused by a `TypeError` carrying `reason`.
   * `onStateChange` runs under it, so a listener cannot loop by changing what it observes.
   */
  readOnly<T>(reason: string, observe: () => T): T {
    const previous = this.#readOnly;
    this.#readOnly = reason;
    try {
      return observe();
    } finally {
      this.#readOnly = previous;
    }
  }

  #writable(): void {
    if (this.#readOnly !== null) throw new TypeError(this.#readOnly);
  }

  /** True when a persisted key changed since the last snapshot. */
  get dirty(): boolean {
    return this.#dirty;
  }

  /**
   * The persisted keys, encoded, and the cell marked clean. Meant for when `dirty` (it works
   * at any time). Throws, leaving the cell dirty, only if the state was changed behind the
   * proxy's back (a raw reference given a function or a class instance).
   */
  snapshot(): Uint8Array {
    const persisted =
      this.#keys === undefined
        ? this.#root
        : Object.fromEntries([...this.#keys].filter((key) => Object.hasOwn(this.#root, key)).map((key) => [key, this.#root[key]]));
    const bytes = encodeState(persisted);
    this.#dirty = false;
    this.#reached = null;
    return bytes;
  }

  #persists(key: string | symbol): boolean {
    return typeof key === "string" && (this.#keys === undefined || this.#keys.has(key));
  }

  /** Whether a write to `target` (at `key`; null: the object itself) can change what is stored. */
  #tracks(target: object, key: string | symbol | null): boolean {
    if (this.#keys?.size === 0) return false;
    if (target === this.#root && (key === null || this.#persists(key))) return true;
    return this.#reach().has(target);
  }

  #reach(): WeakSet<object> {
    if (this.#reached !== null) return this.#reached;
    const reached = new WeakSet<object>();
    const pending: unknown[] = [];
    for (const key of Object.keys(this.#root)) if (this.#persists(key)) pending.push(this.#root[key]);
    while (pending.length > 0) {
      const value = pending.pop();
      if (typeof value !== "object" || value === null || reached.has(value)) continue;
      reached.add(value);
      const kind = kindOf(value);
      if (kind === "object" || kind === "array") {
        for (const child of Object.values(value)) pending.push(child);
      } else if (kind === "map") {
        for (const [k, v] of value as Map<unknown, unknown>) pending.push(k, v);
      } else if (kind === "set") {
        for (const member of value as Set<unknown>) pending.push(member);
      }
    }
    return (this.#reached = reached);
  }

  /** Marks the cell dirty when `changed` (a write that can change what is stored). */
  #touch(changed: boolean): void {
    if (!changed || this.#dirty) return;
    this.#dirty = true;
    this.#onDirty();
  }

  /** Checks (when tracked) and unwraps a value about to be written; returns its raw form. */
  #admit(value: unknown, path: string, tracked: boolean): unknown {
    if ((typeof value !== "object" || value === null) && typeof value !== "function" && typeof value !== "symbol") {
      return value;
    }
    const walk: Walk = { check: tracked, cell: this, cloned: false, known: this.#reached, seen: new Set(), path: [path] };
    const raw = admit(value, walk);
    if (tracked && this.#reached !== null) for (const object of walk.seen) this.#reached.add(object);
    return raw;
  }

  #refusal(target: object, key: string | symbol | null, reason: string): TypeError {
    const path = this.#pathOf(target) + (key === null ? "" : segment(key));
    return new TypeError(`cannot store ${path}: ${reason}`);
  }

  #proxy(target: object, kind: Kind, path: string): object {
    const traps =
      kind === "object" || kind === "array"
        ? (this.#plainTraps ??= new StateCell.#PlainTraps(this))
        : (this.#builtinTraps ??= new StateCell.#BuiltinTraps(this));
    const proxy = new Proxy(target, traps as ProxyHandler<object>);
    if (target !== this.#root) {
      (this.#proxies ??= new WeakMap()).set(target, proxy);
      (this.#paths ??= new WeakMap()).set(target, path);
    }
    owners.set(proxy, { target, cell: this });
    return proxy;
  }

  /** The proxy of a raw object of this state, if it has one. */
  #proxyOf(target: object): object | undefined {
    return target === this.#root ? this.#state : (this.#proxies?.get(target) ?? undefined);
  }

  /** The path of a raw object of this state, for error messages. */
  #pathOf(target: object): string {
    return this.#paths?.get(target) ?? "state";
  }

  /** The proxy for a raw value read from `parent` (reached by `how` and `key`, for its path). */
  #wrap(value: unknown, parent: object, how: Step, key: unknown): unknown {
    if (typeof value !== "object" || value === null) return value;
    const cached = this.#proxyOf(value);
    if (cached !== undefined) return cached;
    const kind = kindOf(value);
    // RegExp and ArrayBuffer have nothing to track; proxies never nest; class instances (only
    // under keys that are not persisted) keep their own `this`.
    if (kind === undefined || kind === "regexp" || kind === "buffer") return value;
    // A proxy must report a frozen object's values as they are: leave it unwrapped.
    if ((kind === "object" || kind === "array") && !Object.isExtensible(value)) return value;
    return this.#proxy(value, kind, this.#pathOf(parent) + step(how, key));
  }

  /** Trap of both kinds of proxy: a stored object keeps its prototype. */
  #setPrototypeOf(target: object, prototype: object | null): boolean {
    if (this.#tracks(target, null)) {
      throw this.#refusal(target, null, "changing the prototype of a persisted object is not supported");
    }
    return Reflect.setPrototypeOf(target, prototype);
  }

  /** Trap of both kinds of proxy: a stored object stays open. */
  #preventExtensions(target: object): boolean {
    if (this.#tracks(target, null)) {
      throw this.#refusal(target, null, "frozen, sealed or non-extensible objects cannot be persisted (they would come back unfrozen)");
    }
    return Reflect.preventExtensions(target);
  }

  // Plain objects and arrays: array methods run on the proxy and come back through these traps.

  #plainGet(target: Record<string | symbol, unknown>, key: string | symbol): unknown {
    const value = Reflect.get(target, key);
    // `__proto__` is inherited unless stored as a key: never wrap Object.prototype.
    if (key === "__proto__" && !Object.hasOwn(target, key)) return value;
    return this.#wrap(value, target, "property", key);
  }

  #plainSet(target: Record<string | symbol, unknown>, key: string | symbol, value: unknown, receiver: unknown): boolean {
    // The proxy is the prototype of another object: the write lands on that object.
    if (receiver !== this.#proxyOf(target)) return Reflect.set(target, key, value, receiver);
    this.#writable();
    const tracked = this.#tracks(target, key);
    if (tracked && typeof key === "symbol") throw this.#refusal(target, key, "symbol keys cannot be persisted");
    const raw = this.#admit(value, this.#pathOf(target) + segment(key), tracked);
    if (Object.hasOwn(target, key) && Object.is(target[key], raw)) return true;
    // Assigning `__proto__` would change the prototype; store a key of that name, as JSON.parse does.
    const done = key === "__proto__" ? Reflect.defineProperty(target, key, dataProperty(raw)) : Reflect.set(target, key, raw);
    if (done) this.#touch(tracked);
    return done;
  }

  #plainDeleteProperty(target: Record<string | symbol, unknown>, key: string | symbol): boolean {
    this.#writable();
    if (!Object.hasOwn(target, key)) return true;
    const tracked = this.#tracks(target, key);
    const done = Reflect.deleteProperty(target, key);
    if (done) this.#touch(tracked);
    return done;
  }

  #plainDefineProperty(target: Record<string | symbol, unknown>, key: string | symbol, descriptor: PropertyDescriptor): boolean {
    this.#writable();
    const tracked = this.#tracks(target, key);
    if (tracked) {
      const current = Reflect.getOwnPropertyDescriptor(target, key);
      const flag = (name: "writable" | "enumerable" | "configurable") => descriptor[name] ?? current?.[name] ?? false;
      if (typeof key === "symbol") throw this.#refusal(target, key, "symbol keys cannot be persisted");
      if ("get" in descriptor || "set" in descriptor || (current !== undefined && !("value" in current))) {
        throw this.#refusal(target, key, "getters and setters cannot be persisted");
      }
      const isLength = Array.isArray(target) && key === "length";
      if (!isLength && !(flag("writable") && flag("enumerable") && flag("configurable"))) {
        throw this.#refusal(target, key, "non-enumerable or read-only properties cannot be persisted");
      }
    }
    if ("value" in descriptor) {
      const path = this.#pathOf(target) + segment(key);
      descriptor = { ...descriptor, value: this.#admit(descriptor.value, path, tracked) };
    }
    const done = Reflect.defineProperty(target, key, descriptor);
    if (done) this.#touch(tracked);
    return done;
  }

  // Map, Set, Date, typed arrays and DataView: their methods need the real object as `this`,
  // so they are called on the target, and the ones that write mark the cell dirty.

  #builtinGet(target: object, key: string | symbol): unknown {
    const value = Reflect.get(target, key);
    if (typeof value !== "function") return value;
    const cell = this;
    return function (this: unknown, ...args: unknown[]) {
      return cell.#call(target, key, value as (...args: unknown[]) => unknown, args);
    };
  }

  #builtinSet(target: object, key: string | symbol, value: unknown, receiver: unknown): boolean {
    if (receiver !== this.#proxyOf(target)) return Reflect.set(target, key, value, receiver);
    this.#writable();
    const tracked = this.#tracks(target, null);
    if (tracked && !isIndex(target, key)) {
      throw this.#refusal(target, key, `properties added to a ${nameOf(target)} are not persisted`);
    }
    const done = Reflect.set(target, key, value);
    if (done) this.#touch(tracked);
    return done;
  }

  #builtinDefineProperty(target: object, key: string | symbol, descriptor: PropertyDescriptor): boolean {
    this.#writable();
    const tracked = this.#tracks(target, null);
    if (tracked && !isIndex(target, key)) {
      throw this.#refusal(target, key, `properties added to a ${nameOf(target)} are not persisted`);
    }
    const done = Reflect.defineProperty(target, key, descriptor);
    if (done) this.#touch(tracked);
    return done;
  }

  static {
    // The handler classes are declared here, inside the class body, to reach the traps above.
    this.#PlainTraps = class implements ProxyHandler<Record<string | symbol, unknown>> {
      constructor(readonly cell: StateCell) {}
      get(target: Record<string | symbol, unknown>, key: string | symbol): unknown {
        return this.cell.#plainGet(target, key);
      }
      set(target: Record<string | symbol, unknown>, key: string | symbol, value: unknown, receiver: unknown): boolean {
        return this.cell.#plainSet(target, key, value, receiver);
      }
      deleteProperty(target: Record<string | symbol, unknown>, key: string | symbol): boolean {
        return this.cell.#plainDeleteProperty(target, key);
      }
      defineProperty(target: Record<string | symbol, unknown>, key: string | symbol, descriptor: PropertyDescriptor): boolean {
        return this.cell.#plainDefineProperty(target, key, descriptor);
      }
      setPrototypeOf(target: object, prototype: object | null): boolean {
        return this.cell.#setPrototypeOf(target, prototype);
      }
      preventExtensions(target: object): boolean {
        return this.cell.#preventExtensions(target);
      }
    };
    this.#BuiltinTraps = class implements ProxyHandler<object> {
      constructor(readonly cell: StateCell) {}
      get(target: object, key: string | symbol): unknown {
        return this.cell.#builtinGet(target, key);
      }
      set(target: object, key: string | symbol, value: unknown, receiver: unknown): boolean {
        return this.cell.#builtinSet(target, key, value, receiver);
      }
      defineProperty(target: object, key: string | symbol, descriptor: PropertyDescriptor): boolean {
        return this.cell.#builtinDefineProperty(target, key, descriptor);
      }
      setPrototypeOf(target: object, prototype: object | null): boolean {
        return this.cell.#setPrototypeOf(target, prototype);
      }
      preventExtensions(target: object): boolean {
        return this.cell.#preventExtensions(target);
      }
    };
  }

  #call(target: object, key: string | symbol, method: (...args: unknown[]) => unknown, args: unknown[]): unknown {
    const kind = kindOf(target);
    if (isMutator(kind!, key)) this.#writable();
    const proxy = this.#proxyOf(target);
    if (kind === "map" && key === "set") return this.#mapSet(target as Map<unknown, unknown>, args[0], args[1]);
    if (kind === "set" && key === "add") return this.#setAdd(target as Set<unknown>, args[0]);
    const collection = kind === "map" || kind === "set";
    // Stored values handed to user code come wrapped: a Map's keys and values, a Set's members.
    const [keyHow, valueHow]: [Step, Step] = kind === "map" ? ["keys", "get"] : ["values", "values"];
    if (collection && key === "forEach") {
      const [callback, thisArg] = args as [(...args: unknown[]) => unknown, unknown];
      (target as Map<unknown, unknown>).forEach((value, k) => {
        callback.call(thisArg, this.#wrap(value, target, valueHow, k), this.#wrap(k, target, keyHow, k), proxy);
      });
      return undefined;
    }
    // Lookups and sources (`has`, `get`, `delete`, `typedArray.set(other)`) get raw objects:
    // a proxy is never a key in the raw state.
    const raws = args.map((arg) => {
      const owner = typeof arg === "object" && arg !== null ? owners.get(arg) : undefined;
      return owner?.cell === this ? owner.target : arg;
    });
    const sizeBefore = collection ? (target as Map<unknown, unknown>).size : 0;
    const result = Reflect.apply(method, target, raws);
    if (isMutator(kind!, key)) {
      // `delete` of a missing entry and `clear` of an empty collection change nothing.
      const changed = !collection || (key === "clear" ? sizeBefore > 0 : result === true);
      this.#touch(changed && this.#tracks(target, null));
    }
    if (result === target) return proxy;
    if (kind === "map" && key === "get") return this.#wrap(result, target, "get", raws[0]);
    if (collection && ITERATORS.has(key)) {
      const pairs = key === "entries" || (kind === "map" && key === Symbol.iterator);
      return this.#iterate(target, result as Iterable<unknown>, pairs ? [keyHow, valueHow] : key === "keys" ? keyHow : valueHow);
    }
    return result;
  }

  /** Wraps what a Map or Set iterator yields: single values (`how`) or entries ([key, value]). */
  *#iterate(target: object, items: Iterable<unknown>, how: Step | [Step, Step]): Generator<unknown> {
    for (const item of items) {
      if (!Array.isArray(how)) {
        yield this.#wrap(item, target, how, undefined);
        continue;
      }
      const [key, value] = item as [unknown, unknown];
      yield [this.#wrap(key, target, how[0], key), this.#wrap(value, target, how[1], key)];
    }
  }

  #mapSet(map: Map<unknown, unknown>, key: unknown, value: unknown): unknown {
    const tracked = this.#tracks(map, null);
    const path = this.#pathOf(map);
    const k = this.#admit(key, `${path}.keys()`, tracked);
    const v = this.#admit(value, `${path}.get(${describeKey(key)})`, tracked);
    const changed = !map.has(k) || !Object.is(map.get(k), v);
    map.set(k, v);
    this.#touch(changed && tracked);
    return this.#proxyOf(map);
  }

  #setAdd(set: Set<unknown>, member: unknown): unknown {
    const tracked = this.#tracks(set, null);
    const m = this.#admit(member, `${this.#pathOf(set)}.values()`, tracked);
    const changed = !set.has(m);
    set.add(m);
    this.#touch(changed && tracked);
    return this.#proxyOf(set);
  }
}

function isIndex(target: object, key: string | symbol): boolean {
  return types.isTypedArray(target) && typeof key === "string" && INDEX.test(key);
}

/** Methods that write in place, by kind (typed-array index writes go through the `set` trap). */
function isMutator(kind: Kind, key: string | symbol): boolean {
  switch (kind) {
    case "map":
      return key === "set" || key === "delete" || key === "clear";
    case "set":
      return key === "add" || key === "delete" || key === "clear";
    case "typed":
      return TYPED_MUTATORS.has(key);
    case "date":
    case "dataview":
      return typeof key === "string" && key.startsWith("set");
    default:
      return false;
  }
}
