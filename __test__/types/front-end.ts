// Type tests of a front end that imports nothing of the server at run time: only types
// (`import type`) of the server's definition or of a contract module, and `warren/client`.
// Checked by `npm run test:types`; never run.
import type { ChatConnection, chat } from "./contract.ts";
import { WarrenClient } from "warren/client";

async function frontEnd(): Promise<void> {
  const fromServer = new WarrenClient<typeof ChatConnection>("/ws", { params: { token: "t" } });
  const fromContract = new WarrenClient<typeof chat>("/ws", { params: { token: "t" } });
  for (const client of [fromServer, fromContract]) {
    client.on("welcome", ({ count }) => console.log(count.toFixed(0)));
    client.emit("chat.send", { room: "lobby", text: "hi" });
    const count: number = await client.call("count.get");
    // @ts-expect-error unknown server event
    client.on("welcom", () => {});
    // @ts-expect-error wrong result type
    const wrong: string = await client.call("add", { a: 1, b: 2 });
    void [count, wrong];
  }
}
void frontEnd;
