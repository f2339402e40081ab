// Type tests of `warren/client`: `WarrenClient` and its lifecycle events. Checked by
// `npm run test:types`; never run.
import {
  VeraniClient,
  WarrenClient,
  WarrenClientError,
  type ClientState,
  type CloseInfo,
  type ConnectedInfo,
  type ConnectionSnapshot,
} from "warren/client";

function expectType<T>(_value: T): void {}

const client = new WarrenClient("ws://127.0.0.1:8787/ws?token=alice", {
  params: { token: "alice" },
  reconnection: { maxAttempts: 5 },
  maxQueueSize: 100,
});

client.on("welcome", (data) => console.log(data.count));
client.on("connected", (info) => expectType<ConnectedInfo>(info));
client.on("close", (info) => expectType<CloseInfo>(info));
client.on("error", (error) => expectType<WarrenClientError>(error));
client.on("reconnecting", ({ attempt, delay }) => void (attempt + delay));
client.onStateChange((state, previous) => {
  expectType<ClientState>(state);
  expectType<ClientState>(previous);
});
client.emit("dm", { to: "bob", text: "hi" });

async function use(): Promise<void> {
  const count = await client.call<number>("count.get", {}, { timeout: 5000 });
  expectType<number>(count);
  await client.waitForConnection(1000);
  const snapshot: ConnectionSnapshot = client.getConnectionState();
  void snapshot;
  try {
    await client.call("x");
  } catch (error) {
    if (error instanceof WarrenClientError) expectType<string>(error.code);
  }
  // @ts-expect-error a close event carries CloseInfo, which has no `resumed`
  client.on("close", (info) => info.resumed);
  // @ts-expect-error the call timeout is a number
  await client.call("x", {}, { timeout: "5s" });
  // @ts-expect-error states are a closed set
  const state: ClientState = "paused";
  void state;
  client.close();
}
void use;

const verani: WarrenClient = new VeraniClient("ws://127.0.0.1:8787/ws");
void verani;
