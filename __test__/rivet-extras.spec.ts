// The rest of Rivet's class API that warren covers: `_saveState` and `_log`, over real sockets.
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { actorClient, actorUrl } from "../client/index.js";
import { Actor, createServer, type Rpc } from "../index.js";
import { listenForTest } from "./helpers.js";

class Tally extends Actor<{ n: number }> {
  protected override _onInitialize() {
    return { n: 0 };
  }

  async add(_rpc: Rpc<Tally>, by: number): Promise<{ n: number; logger: string }> {
    this._state.n += by;
    await this._saveState({ immediate: true });
    this._log.debug("added", by);
    return { n: this._state.n, logger: this._log.namespace };
  }
}

test("_saveState resolves once the change is handed to the store; _log is named after the kind", async (t) => {
  const server = createServer({ actors: { tally: Tally }, storage: ":memory:" });
  const { port } = await listenForTest(t, server);
  const tally = actorClient<Tally>(actorUrl(`ws://127.0.0.1:${port}`, "tally", "a"), { WebSocket: WebSocket as never });
  t.after(() => tally.close());
  assert.deepEqual(await tally.add(2), { n: 2, logger: "warren:actor:tally" });
  assert.deepEqual(await tally.add(3), { n: 5, logger: "warren:actor:tally" });
});
