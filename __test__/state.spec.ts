import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { types } from "node:util";
import { serialize } from "node:v8";
import { StateCell, assertStorable, decodeState, encodeState } from "../lib/state/index.ts";

/** A cell whose onDirty calls are counted. */
function open(defaults: object | undefined, persistedKeys?: readonly string[], stored: Uint8Array | null = null) {
  let fired = 0;
  const cell = new StateCell(defaults, persistedKeys, stored, () => fired++);
  return { cell, state: cell.state, fired: () => fired };
}

/** What a new cell loads from `cell`'s snapshot: the state after a restart. */
function reload(cell: StateCell, defaults: object | undefined, persistedKeys?: readonly string[]): any {
  return new StateCell(defaults, persistedKeys, cell.snapshot(), () => {}).state;
}

/** Every value reachable from `root`, through properties, Map keys and values, Set members. */
function reachable(root: unknown): unknown[] {
  const seen = new Set<unknown>();
  const pending = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value !== "object" || value === null || seen.has(value)) continue;
    seen.add(value);
    if (value instanceof Map) for (const [k, v] of value) pending.push(k, v);
    else if (value instanceof Set) pending.push(...value);
    else if (!ArrayBuffer.isView(value)) pending.push(...Object.values(value));
  }
  return [...seen];
}

interface Change {
  name: string;
  defaults: () => object;
  change: (state: any) => void;
  check: (restored: any) => void;
}

const changes: Change[] = [
  {
    name: "a property set three levels deep",
    defaults: () => ({ a: { b: { c: 1 } } }),
    change: (s) => (s.a.b.c = 2),
    check: (r) => assert.equal(r.a.b.c, 2),
  },
  {
    name: "a new nested property",
    defaults: () => ({ profile: {} }),
    change: (s) => (s.profile.name = "ada"),
    check: (r) => assert.equal(r.profile.name, "ada"),
  },
  {
    name: "a nested delete",
    defaults: () => ({ profile: { name: "ada", age: 36 } }),
    change: (s) => delete s.profile.age,
    check: (r) => assert.deepEqual(r.profile, { name: "ada" }),
  },
  {
    name: "Object.defineProperty on a nested object",
    defaults: () => ({ profile: {} }),
    change: (s) =>
      Object.defineProperty(s.profile, "name", { value: "ada", writable: true, enumerable: true, configurable: true }),
    check: (r) => assert.equal(r.profile.name, "ada"),
  },
  {
    name: "push, splice and sort on a nested array",
    defaults: () => ({ game: { scores: [3, 1] } }),
    change: (s) => {
      s.game.scores.push(2);
      s.game.scores.splice(0, 0, 9);
      s.game.scores.sort((a: number, b: number) => a - b);
    },
    check: (r) => assert.deepEqual(r.game.scores, [1, 2, 3, 9]),
  },
  {
    name: "truncating an array through length",
    defaults: () => ({ list: [1, 2, 3] }),
    change: (s) => (s.list.length = 1),
    check: (r) => assert.deepEqual(r.list, [1]),
  },
  {
    name: "an object inside an array changed",
    defaults: () => ({ list: [{ done: false }] }),
    change: (s) => (s.list[0].done = true),
    check: (r) => assert.equal(r.list[0].done, true),
  },
  {
    name: "Map#set",
    defaults: () => ({ m: new Map([["a", 1]]) }),
    change: (s) => s.m.set("b", 2).set("c", 3),
    check: (r) => assert.deepEqual([...r.m], [["a", 1], ["b", 2], ["c", 3]]),
  },
  {
    name: "Map#delete",
    defaults: () => ({ m: new Map([["a", 1], ["b", 2]]) }),
    change: (s) => s.m.delete("a"),
    check: (r) => assert.deepEqual([...r.m], [["b", 2]]),
  },
  {
    name: "Map#clear",
    defaults: () => ({ m: new Map([["a", 1]]) }),
    change: (s) => s.m.clear(),
    check: (r) => assert.equal(r.m.size, 0),
  },
  {
    name: "an object held as a Map value changed through get",
    defaults: () => ({ m: new Map([["a", { n: 1 }]]) }),
    change: (s) => s.m.get("a").n++,
    check: (r) => assert.equal(r.m.get("a").n, 2),
  },
  {
    name: "an object held as a Map value changed while iterating",
    defaults: () => ({ m: new Map([["a", { n: 1 }]]) }),
    change: (s) => {
      for (const [, value] of s.m) value.n = 5;
    },
    check: (r) => assert.equal(r.m.get("a").n, 5),
  },
  {
    name: "an object held as a Map value changed in forEach",
    defaults: () => ({ m: new Map([["a", { n: 1 }]]) }),
    change: (s) => s.m.forEach((value: any) => (value.n = 7)),
    check: (r) => assert.equal(r.m.get("a").n, 7),
  },
  {
    name: "Set#add",
    defaults: () => ({ tags: new Set(["a"]) }),
    change: (s) => s.tags.add("b"),
    check: (r) => assert.deepEqual([...r.tags], ["a", "b"]),
  },
  {
    name: "Set#delete",
    defaults: () => ({ tags: new Set(["a", "b"]) }),
    change: (s) => s.tags.delete("a"),
    check: (r) => assert.deepEqual([...r.tags], ["b"]),
  },
  {
    name: "Set#clear",
    defaults: () => ({ tags: new Set(["a"]) }),
    change: (s) => s.tags.clear(),
    check: (r) => assert.equal(r.tags.size, 0),
  },
  {
    name: "an object held in a Set changed while iterating",
    defaults: () => ({ items: new Set([{ n: 1 }]) }),
    change: (s) => {
      for (const item of s.items) item.n = 2;
    },
    check: (r) => assert.equal([...r.items][0].n, 2),
  },
  {
    name: "Date#setFullYear on a nested Date",
    defaults: () => ({ meta: { at: new Date(0) } }),
    change: (s) => s.meta.at.setUTCFullYear(2001),
    check: (r) => assert.equal(r.meta.at.getUTCFullYear(), 2001),
  },
  {
    name: "Date#setTime",
    defaults: () => ({ at: new Date(0) }),
    change: (s) => s.at.setTime(1234),
    check: (r) => assert.equal(r.at.getTime(), 1234),
  },
  {
    name: "a typed-array index write",
    defaults: () => ({ bytes: new Uint8Array(4) }),
    change: (s) => (s.bytes[2] = 7),
    check: (r) => assert.deepEqual([...r.bytes], [0, 0, 7, 0]),
  },
  {
    name: "TypedArray#set",
    defaults: () => ({ bytes: new Uint8Array(4) }),
    change: (s) => s.bytes.set([1, 2], 1),
    check: (r) => assert.deepEqual([...r.bytes], [0, 1, 2, 0]),
  },
  {
    name: "TypedArray#fill",
    defaults: () => ({ bytes: new Uint8Array(3) }),
    change: (s) => s.bytes.fill(5),
    check: (r) => assert.deepEqual([...r.bytes], [5, 5, 5]),
  },
  {
    name: "TypedArray#copyWithin",
    defaults: () => ({ bytes: new Uint8Array([1, 2, 3]) }),
    change: (s) => s.bytes.copyWithin(0, 1),
    check: (r) => assert.deepEqual([...r.bytes], [2, 3, 3]),
  },
  {
    name: "TypedArray#reverse",
    defaults: () => ({ bytes: new Uint8Array([1, 2, 3]) }),
    change: (s) => s.bytes.reverse(),
    check: (r) => assert.deepEqual([...r.bytes], [3, 2, 1]),
  },
  {
    name: "TypedArray#sort",
    defaults: () => ({ values: new Float64Array([3, 1, 2]) }),
    change: (s) => s.values.sort(),
    check: (r) => assert.deepEqual([...r.values], [1, 2, 3]),
  },
  {
    name: "DataView#setUint16",
    defaults: () => ({ view: new DataView(new ArrayBuffer(2)) }),
    change: (s) => s.view.setUint16(0, 513),
    check: (r) => assert.equal(r.view.getUint16(0), 513),
  },
  {
    name: "a new root key",
    defaults: () => ({}),
    change: (s) => (s.added = { x: 1 }),
    check: (r) => assert.deepEqual(r.added, { x: 1 }),
  },
];

describe("state: deep change detection", () => {
  for (const { name, defaults, change, check } of changes) {
    test(`${name} marks the cell dirty once and survives a reload`, () => {
      const { cell, state, fired } = open(defaults());
      change(state);
      assert.equal(fired(), 1);
      assert.equal(cell.dirty, true);
      check(reload(cell, defaults()));
      assert.equal(cell.dirty, false);
    });
  }

  test("reads of every kind never mark the cell dirty", () => {
    const { cell, state, fired } = open({
      a: { b: [1, { c: 2 }] },
      m: new Map([["k", { v: 1 }]]),
      s: new Set([1]),
      d: new Date(5),
      bytes: new Uint8Array([1, 2]),
      view: new DataView(new ArrayBuffer(2)),
    });
    JSON.stringify(state);
    void { ...state.a }, [...state.a.b], Object.keys(state), Object.entries(state.a);
    state.a.b.map((x: unknown) => x).find(() => false);
    state.m.get("k").v, state.m.has("k"), [...state.m.entries()], [...state.m.keys()], state.m.forEach(() => {});
    state.s.has(1), [...state.s];
    state.d.getTime(), state.d.toISOString(), `${state.d}`, +state.d;
    state.bytes[0], state.bytes.length, [...state.bytes], state.bytes.slice(0, 1), state.bytes.indexOf(2);
    state.view.getUint16(0);
    assert.equal(fired(), 0);
    assert.equal(cell.dirty, false);
  });

  test("writes that change nothing do not mark the cell dirty", () => {
    const { cell, state, fired } = open({ n: 1, o: { x: 1 }, m: new Map([["a", 1]]), s: new Set([1]), e: new Map() });
    state.n = 1;
    state.o = state.o;
    state.o.x = 1;
    delete state.missing;
    state.m.set("a", 1);
    state.m.delete("missing");
    state.s.add(1);
    state.s.delete(2);
    state.e.clear();
    assert.equal(fired(), 0);
    assert.equal(cell.dirty, false);
  });

  test("a snapshot marks the cell clean and the next change fires onDirty again", () => {
    const { cell, state, fired } = open({ n: 0 });
    state.n++;
    state.n++;
    assert.equal(fired(), 1);
    cell.snapshot();
    assert.equal(cell.dirty, false);
    state.n++;
    assert.equal(fired(), 2);
    assert.equal(cell.dirty, true);
  });
});

describe("state: persistedKeys", () => {
  test("changes under keys that are not persisted work in memory, never mark dirty, and are not stored", () => {
    const defaults = { kept: { n: 0 }, scratch: { n: 0, list: [] as number[] } };
    const { cell, state, fired } = open(defaults, ["kept"]);
    state.scratch.n = 5;
    state.scratch.list.push(1);
    state.other = 1;
    assert.equal(state.scratch.n, 5);
    assert.equal(fired(), 0);
    assert.equal(cell.dirty, false);
    state.kept.n = 1;
    assert.equal(fired(), 1);
    const restored = reload(cell, defaults, ["kept"]);
    assert.equal(restored.kept.n, 1);
    assert.deepEqual(restored.scratch, { n: 0, list: [] });
    assert.equal(restored.other, undefined);
  });

  test("keys that are not persisted may hold anything, in memory", () => {
    const { cell, state } = open({ kept: 0 }, ["kept"]);
    class Timer {
      #id = 3;
      id() {
        return this.#id;
      }
    }
    state.timer = new Timer();
    state.callbacks = { onTick: () => 1 };
    assert.equal(state.timer.id(), 3);
    assert.equal(state.callbacks.onTick(), 1);
    assert.equal(cell.dirty, false);
  });

  test("an object under both a persisted and an unpersisted key marks dirty when changed through either", () => {
    const { cell, state, fired } = open({ kept: {}, scratch: {} }, ["kept"]);
    state.scratch.shared = { n: 0 };
    state.kept.shared = state.scratch.shared;
    cell.snapshot();
    state.scratch.shared.n = 1;
    assert.equal(fired(), 2);
    assert.equal(reload(cell, {}, ["kept"]).kept.shared.n, 1);
    assert.throws(() => (state.scratch.shared.f = () => 1), /cannot store state\.scratch\.shared\.f: functions/);
  });

  test("an empty persistedKeys persists nothing, never marks dirty, and snapshots an empty object", () => {
    const { cell, state, fired } = open({ n: 0, o: { m: new Map() } }, []);
    state.n = 5;
    state.o.m.set("a", 1);
    state.fn = () => 1;
    cell.replace({ n: 7 });
    assert.equal(fired(), 0);
    assert.equal(cell.dirty, false);
    assert.deepEqual(decodeState(cell.snapshot()), {});
    assert.equal(reload(cell, { n: 0 }, []).n, 0);
  });

  test("undefined persistedKeys persists every key, including keys added later", () => {
    const { cell, state } = open({ a: 1 });
    state.b = 2;
    assert.deepEqual(decodeState(cell.snapshot()), { a: 1, b: 2 });
  });

  test("stored keys override the defaults, keys the store lacks keep their default, dropped keys are ignored", () => {
    const old = open({ a: 1, gone: 1 }, ["a", "gone"]);
    old.state.a = 2;
    old.state.gone = 2;
    const restored = new StateCell({ a: 0, added: "x" }, ["a"], old.cell.snapshot(), () => {}).state;
    assert.deepEqual({ ...restored }, { a: 2, added: "x" });
  });

  test("deleting a persisted key gives it back its default on the next load", () => {
    const { cell, state } = open({ n: 5 });
    delete state.n;
    assert.equal(state.n, undefined);
    assert.equal(reload(cell, { n: 5 }).n, 5);
  });
});

describe("state: proxies", () => {
  test("the same object always yields the same proxy", () => {
    const { cell, state } = open({ a: { b: {} }, m: new Map([["k", { v: 1 }]]), list: [{}] });
    assert.equal(cell.state, cell.state);
    assert.equal(state.a, state.a);
    assert.equal(state.a.b, state.a.b);
    assert.equal(state.m, state.m);
    assert.equal(state.m.get("k"), state.m.get("k"));
    assert.equal([...state.m.values()][0], state.m.get("k"));
    assert.equal(state.list[0], state.list.at(0));
    cell.replace({ a: 1 });
    assert.equal(cell.state, state);
  });

  test("an object used as a Map key or Set member is found again through its proxy", () => {
    const { cell, state } = open({ key: { id: 1 }, m: new Map(), s: new Set() });
    state.m.set(state.key, "value");
    state.s.add(state.key);
    assert.equal(state.m.get(state.key), "value");
    assert.ok(state.s.has(state.key));
    assert.equal([...state.m.keys()][0], state.key);
    const restored = reload(cell, {});
    assert.equal(restored.m.get(restored.key), "value");
    assert.ok(restored.s.has(restored.key));
  });

  test("replace keeps the proxy, takes the new keys and refuses anything but a plain object", () => {
    const { cell, state, fired } = open({ a: 1, b: 2 });
    cell.replace({ c: 3 });
    assert.deepEqual({ ...state }, { c: 3 });
    assert.equal(fired(), 1);
    assert.deepEqual(reload(cell, { a: 1, b: 2 }), { a: 1, b: 2, c: 3 });
    for (const value of [5, null, [1], new Map(), new Date()]) {
      assert.throws(() => cell.replace(value as object), /cannot store state: the state must be a plain object/);
    }
  });

  test("proxies behave like the plain values for instanceof, isArray, JSON, spreading and iteration", () => {
    const { state } = open({
      list: [1, 2],
      m: new Map([["a", 1]]),
      s: new Set([1]),
      d: new Date(0),
      bytes: new Uint8Array([1]),
      o: { x: 1 },
    });
    assert.ok(Array.isArray(state.list));
    assert.ok(state.m instanceof Map);
    assert.ok(state.s instanceof Set);
    assert.ok(state.d instanceof Date);
    assert.ok(state.bytes instanceof Uint8Array);
    assert.equal(state.m.size, 1);
    assert.equal(state.bytes.length, 1);
    assert.deepEqual([...state.list], [1, 2]);
    assert.deepEqual({ ...state.o }, { x: 1 });
    assert.deepEqual([...state.m], [["a", 1]]);
    assert.deepEqual(new Map(state.m), new Map([["a", 1]]));
    assert.deepEqual([...state.s], [1]);
    assert.equal(
      JSON.stringify(state),
      JSON.stringify({ list: [1, 2], m: {}, s: {}, d: new Date(0), bytes: { 0: 1 }, o: { x: 1 } }),
    );
    assert.equal(state.d.toISOString(), "1970-01-01T00:00:00.000Z");
    assert.equal(+state.d, 0);
  });

  test("assigning state.a = state.b thirty times stores no proxy and nests none", () => {
    const { cell, state } = open({ a: { n: 1 }, b: { n: 2, inner: { deep: [1] } } });
    for (let i = 0; i < 30; i++) {
      state.a = state.b;
      state.b = state.a;
      state.c = { a: state.a, list: [state.b, state.b.inner], m: new Map([[state.a, state.b]]), s: new Set([state.a]) };
      state.list = [state.a].map((x) => x);
    }
    // The same proxy for both: a proxy of a proxy would be a different object.
    assert.equal(state.a, state.b);
    assert.ok(types.isProxy(state.a));
    state.a.inner.deep.push(2);
    assert.deepEqual([...state.b.inner.deep], [1, 2]);
    // v8 serialization throws on any proxy, so a snapshot at all proves the raw state holds none.
    const decoded = decodeState(cell.snapshot());
    for (const value of reachable(decoded)) assert.equal(types.isProxy(value), false);
    assert.equal(decoded.a, decoded.b);
    assert.equal((decoded.c as any).m.get(decoded.a), decoded.a);
  });

  test("replacing the state with a spread of itself stores no proxy", () => {
    const { cell, state, fired } = open({ a: { n: 1 }, m: new Map() });
    cell.replace({ ...state, b: state.a });
    assert.equal(fired(), 1);
    assert.equal(state.b, state.a);
    const decoded = decodeState(cell.snapshot());
    for (const value of reachable(decoded)) assert.equal(types.isProxy(value), false);
  });

  test("a value read from another cell is copied when assigned", () => {
    const room = open({ last: null as unknown });
    const actor = open({ profile: { name: "ada" } });
    room.state.last = actor.state.profile;
    actor.cell.snapshot();
    actor.state.profile.name = "grace";
    assert.equal(room.state.last.name, "ada");
    assert.equal(actor.fired(), 1);
    assert.equal(room.fired(), 1);
    assert.equal(reload(room.cell, {}).last.name, "ada");
  });

  test("a key named __proto__ is stored as a key and does not change the prototype", () => {
    const { cell, state } = open({ byName: {} });
    state.byName["__proto__"] = { polluted: true };
    assert.equal(Object.getPrototypeOf(state.byName), Object.prototype);
    assert.equal(({} as any).polluted, undefined);
    const restored = reload(cell, {});
    assert.ok(Object.hasOwn(restored.byName, "__proto__"));
  });
});

describe("state: round trip", () => {
  test("JSON values, Date, Map, Set, BigInt, RegExp, typed arrays, ArrayBuffer and undefined round-trip", () => {
    const { cell, state } = open({});
    state.value = {
      json: { s: "x", n: 1.5, b: true, z: null, list: [1, "two", [3]] },
      date: new Date(86_400_000),
      map: new Map<unknown, unknown>([["a", new Set([1n])], [2, { d: new Date(1) }]]),
      set: new Set(["x", { y: 1 }]),
      big: 2n ** 70n,
      re: /a+b/gi,
      bytes: new Uint8Array([1, 2, 3]),
      floats: new Float32Array([0.5]),
      buffer: Buffer.from("hi"),
      raw: new Uint16Array([7, 8]).buffer,
      missing: undefined,
      sparse: [1, , 3],
    };
    const restored = decodeState(cell.snapshot()).value as any;
    assert.deepStrictEqual(restored, {
      json: { s: "x", n: 1.5, b: true, z: null, list: [1, "two", [3]] },
      date: new Date(86_400_000),
      map: new Map<unknown, unknown>([["a", new Set([1n])], [2, { d: new Date(1) }]]),
      set: new Set(["x", { y: 1 }]),
      big: 2n ** 70n,
      re: /a+b/gi,
      bytes: new Uint8Array([1, 2, 3]),
      floats: new Float32Array([0.5]),
      buffer: Buffer.from("hi"),
      raw: new Uint16Array([7, 8]).buffer,
      missing: undefined,
      sparse: [1, , 3],
    });
    assert.ok(Object.hasOwn(restored, "missing"));
  });

  test("a restored typed array has an ArrayBuffer of its own", () => {
    const { cell, state } = open({ bytes: new Uint8Array([1, 2]), buf: Buffer.from([3]), other: "x".repeat(100) });
    state.other += "y";
    const restored = reload(cell, {});
    assert.equal(restored.bytes.buffer.byteLength, 2);
    assert.equal(restored.buf.buffer.byteLength, 1);
  });

  test("cycles round-trip, including a cycle through the root", () => {
    const { cell, state } = open({});
    const node: any = { name: "a" };
    node.self = node;
    state.node = node;
    state.map = new Map();
    state.map.set("me", state.map);
    state.root = state;
    const restored = reload(cell, {});
    assert.equal(restored.node.self, restored.node);
    assert.equal(restored.map.get("me"), restored.map);
    assert.equal(restored.root, restored);
  });

  test("the defaults are never mutated", () => {
    const defaults = { a: { list: [1] }, m: new Map([["k", { n: 1 }]]), d: new Date(0) };
    const { state } = open(defaults);
    state.a.list.push(2);
    state.m.get("k").n = 2;
    state.d.setTime(5);
    state.a = {};
    assert.deepStrictEqual(defaults, { a: { list: [1] }, m: new Map([["k", { n: 1 }]]), d: new Date(0) });
  });

  test("bytes that cannot be decoded throw an error with code corrupt_state", () => {
    const good = open({ n: 1 }).cell.snapshot();
    for (const bytes of [Buffer.from("not state"), good.subarray(0, good.length - 2), serialize(5), new Uint8Array(0)]) {
      assert.throws(() => new StateCell({ n: 0 }, undefined, bytes, () => {}), (error: any) => {
        assert.equal(error.code, "corrupt_state");
        assert.match(error.message, /stored state cannot be decoded/);
        return true;
      });
    }
  });
});

describe("state: values that cannot be stored", () => {
  class User {
    name = "ada";
  }
  const refused: Array<[string, () => unknown, RegExp]> = [
    ["a function", () => function greet() {}, /functions cannot be persisted/],
    ["a symbol", () => Symbol("x"), /symbols cannot be persisted/],
    ["a WeakMap", () => new WeakMap(), /WeakMap, WeakSet and WeakRef cannot be persisted/],
    ["a WeakSet", () => new WeakSet(), /WeakMap, WeakSet and WeakRef cannot be persisted/],
    ["a WeakRef", () => new WeakRef({}), /WeakMap, WeakSet and WeakRef cannot be persisted/],
    ["a Promise", () => Promise.resolve(), /promises cannot be persisted/],
    ["a class instance", () => new User(), /instances of User cannot be persisted/],
    ["a Map subclass", () => new (class Registry extends Map {})(), /instances of Registry cannot be persisted/],
    ["a getter", () => ({ get now() { return 1; } }), /getters and setters cannot be persisted/],
    ["a symbol key", () => ({ [Symbol("k")]: 1 }), /symbol keys cannot be persisted/],
    ["a frozen object", () => Object.freeze({ a: 1 }), /frozen, sealed or non-extensible/],
  ];

  const ways: Array<[string, string, (state: any, value: unknown) => void]> = [
    ["a nested assignment", "state.user.greet", (s, v) => (s.user.greet = v)],
    ["a value deep inside an assigned object", "state.user.extra.list[1]", (s, v) => (s.user.extra = { list: [1, v] })],
    ["Map#set", 'state.m.get("k")', (s, v) => s.m.set("k", v)],
    ["Set#add", "state.s.values()", (s, v) => s.s.add(v)],
    ["replace", "state.user", (s, v) => s.replace({ user: v })],
  ];

  for (const [what, make, reason] of refused) {
    for (const [how, path, write] of ways) {
      test(`${what} stored by ${how} throws a TypeError naming ${path} and leaves the state unchanged`, () => {
        const { cell, state, fired } = open({ user: { name: "ada" }, m: new Map(), s: new Set() });
        const before = decodeState(encodeState(state));
        const target = how === "replace" ? cell : state;
        assert.throws(
          () => write(target, make()),
          (error: any) => {
            assert.ok(error instanceof TypeError);
            assert.ok(error.message.startsWith(`cannot store ${path}`), error.message);
            assert.match(error.message, reason);
            return true;
          },
        );
        assert.equal(fired(), 0);
        assert.equal(cell.dirty, false);
        assert.deepStrictEqual(decodeState(cell.snapshot()), before);
      });
    }
  }

  test("a property added to a Map or a Date under a persisted key is refused", () => {
    const { state } = open({ m: new Map(), d: new Date(0) });
    assert.throws(() => (state.m.extra = 1), /cannot store state\.m\.extra: properties added to a Map are not persisted/);
    assert.throws(() => (state.d.extra = 1), /properties added to a Date are not persisted/);
  });

  test("freezing a persisted object is refused and leaves it writable", () => {
    const { state } = open({ o: { a: 1 } });
    assert.throws(() => Object.freeze(state.o), /cannot store state\.o: frozen/);
    state.o.a = 2;
    assert.equal(state.o.a, 2);
  });

  test("defaults that cannot be stored are refused when the cell is made, and frozen defaults are fine", () => {
    assert.throws(() => open({ profile: { onClick() {} } }), /cannot store state\.profile\.onClick: functions/);
    assert.equal(open(Object.freeze({ a: Object.freeze([1]) })).state.a[0], 1);
  });

  test("assertStorable accepts what round-trips, cycles included, and names the path of what does not", () => {
    const cyclic: any = { m: new Map(), d: new Date(), bytes: new Uint8Array(1), re: /x/, n: 1n, u: undefined };
    cyclic.m.set(cyclic, cyclic);
    assertStorable(cyclic, "state");
    assertStorable(open({ a: { b: 1 } }).state, "state");
    assert.throws(() => assertStorable({ a: [{ b: Symbol() }] }, "state.x"), /^TypeError: cannot store state\.x\.a\[0\]\.b: symbols/);
    assert.throws(() => assertStorable({ "odd key": () => 1 }, "state"), /cannot store state\["odd key"\]: functions/);
  });
});
