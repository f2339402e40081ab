// Type tests of an actor class's events: the fourth type argument of `Actor` types
// `this._broadcast` and the `on` of `actorClient<Counter>`; without it both take any name.
// Checked by `npm run test:types`; never run.
import { Actor, type Connection, type Rpc } from "warren";
import { actorClient } from "warren/client";

function expectType<T>(_value: T): void {}

interface Events {
  countUpdated: { count: number };
  reset: undefined;
}

export class Counter extends Actor<{ count: number }, unknown, unknown, Events> {
  protected override _onInitialize() {
    return { count: 0 };
  }
  increment(_rpc: Rpc<Counter>, by: number): number {
    this._state.count += by;
    this._broadcast("countUpdated", { count: this._state.count });
    // @ts-expect-error not an event of the class
    this._broadcast("countChanged", { count: 1 });
    // @ts-expect-error countUpdated carries a number
    this._broadcast("countUpdated", { count: "1" });
    return this._state.count;
  }
  protected override _onConnect(conn: Connection<Counter>): void {
    conn.send("countUpdated", { count: this._state.count });
    // @ts-expect-error conn.send takes the class's events too
    conn.send("hello", {});
  }
  clear(): void {
    this._state.count = 0;
    this._broadcast("reset");
  }
}

export class Loose extends Actor<{ n: number }> {
  protected override _onInitialize() {
    return { n: 0 };
  }
  bump(): void {
    this._broadcast("anything", { at: Date.now() });
  }
}

async function use(): Promise<void> {
  const counter = actorClient<Counter>("ws://127.0.0.1:8787/actors/counter/a");
  counter.on("countUpdated", ({ count }) => expectType<number>(count));
  counter.on("reset", () => {});
  counter.on("connected", ({ resumed }) => expectType<boolean>(resumed));
  const n: number = await counter.increment(1);
  await counter.clear();
  // @ts-expect-error not an event of Counter
  counter.on("countChanged", () => {});
  // @ts-expect-error the payload has `count`
  counter.on("countUpdated", (data) => data.total);
  // the phantom member is not a method on the handle
  // @ts-expect-error
  void counter["~events"];

  const loose = actorClient<Loose>("ws://127.0.0.1:8787/actors/loose/a");
  loose.on("anything", (data) => data.whatever);
  await loose.bump();
  void n;
}
void use;
