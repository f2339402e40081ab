// Type tests of the Rivet-style class API and its typed client handle: `actorClient<Counter>`
// types each public method of the class, returning a promise of its result. Checked by
// `npm run test:types`; never run.
import {
  Actor,
  createServer,
  UserError,
  type ActorConnection,
  type BeforeConnectOptions,
  type Connection,
  type OnBeforeConnectOptions,
  type Rpc,
} from "warren";
import { actorClient, actorUrl, type ActorClient, type WarrenClient } from "warren/client";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertTrue<T extends true>(): void {}

interface State {
  count: number;
}

export class Counter extends Actor<State, { name?: string }, { name: string }> {
  protected override _onInitialize(): State {
    return { count: 0 };
  }
  protected override _onStart(): void {}
  protected override _onStateChange(state: State): void {
    this._broadcast("countUpdated", { count: state.count });
  }
  protected override _onBeforeConnect({ parameters }: BeforeConnectOptions<{ name?: string }>): { name: string } {
    if (!parameters?.name) throw new UserError("name required", { code: "no_name" });
    return { name: parameters.name };
  }
  protected override _onConnect(conn: ActorConnection<{ name: string }>): void {
    conn.send("hello", { name: conn.state.name });
  }
  increment(rpc: Rpc<Counter>, by: number): number {
    const caller: string = rpc.connection.state.name;
    void caller;
    this._state.count += by;
    return this._state.count;
  }
  async slowIncrement(rpc: Rpc<Counter>, by: number): Promise<number> {
    return this.increment(rpc, by);
  }
  getCount(): number {
    return this._state.count;
  }
  reset(): void {
    void this._shutdown();
  }
}

createServer({ actors: { counter: Counter } });

const counter = actorClient<Counter>(actorUrl("ws://127.0.0.1:8787", "counter", "abc"), { params: { name: "ann" } });

async function use(): Promise<void> {
  const count: number = await counter.increment(5);
  assertTrue<Equal<ReturnType<typeof counter.increment>, Promise<number>>>();
  assertTrue<Equal<ReturnType<typeof counter.slowIncrement>, Promise<number>>>();
  assertTrue<Equal<ReturnType<typeof counter.reset>, Promise<void>>>();
  const again: number = await counter.getCount();
  const raw = await counter.call<number>("increment", 1);
  counter.on("countUpdated", ({ count }) => console.log(count));
  const client: WarrenClient = counter.client;
  void [count, again, raw, client];

  // @ts-expect-error Counter has no method `decrement`
  await counter.decrement(1);
  // @ts-expect-error increment takes a number
  await counter.increment("5");
  // @ts-expect-error increment needs its argument
  await counter.increment();
  // @ts-expect-error hooks and Actor's own members are not on the handle
  await counter._onStart();
  // @ts-expect-error the result is a number, not a string
  const wrong: string = await counter.increment(1);
  void wrong;
  counter.close();
}
void use;

// Untyped handles accept any method.
const untyped: ActorClient<Record<string, (...args: any[]) => any>> = actorClient("ws://127.0.0.1:8787/actors/x/y");
void untyped.anything(1, 2, 3);

// @ts-expect-error `_state` is protected: only the class reaches it
new Counter()._state;

// @ts-expect-error actors map kinds to Actor classes
createServer({ actors: { counter: class NotAnActor {} } });

// ---- Rivet's names, parameterised by the actor class ----

interface ConnParams {
  authToken: string;
}
interface ConnState {
  userId: string;
}

class Typed extends Actor<State, ConnParams, ConnState> {
  async _onInitialize(): Promise<State> {
    return { count: 0 };
  }
  async _onBeforeConnect(opts: OnBeforeConnectOptions<Typed>): Promise<ConnState> {
    const token: string = opts.parameters.authToken;
    // @ts-expect-error parameters are the class's ConnParams
    void opts.parameters.password;
    return { userId: token };
  }
  async _onConnect(connection: Connection<Typed>): Promise<void> {
    const userId: string = connection.state.userId;
    void userId;
  }
  whoami(rpc: Rpc<Typed>): string {
    // @ts-expect-error conn.state is the class's ConnState
    void rpc.connection.state.name;
    return rpc.connection.state.userId;
  }
}

assertTrue<Equal<Connection<Typed>, ActorConnection<ConnState>>>();
assertTrue<Equal<OnBeforeConnectOptions<Typed>, BeforeConnectOptions<ConnParams>>>();
const typed = actorClient<Typed>("ws://127.0.0.1:8787/actors/typed/k");
assertTrue<Equal<ReturnType<typeof typed.whoami>, Promise<string>>>();
assertTrue<Equal<Parameters<typeof typed.whoami>, []>>();
