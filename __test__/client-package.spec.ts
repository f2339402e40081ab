// `warren/client` as a package export: the ESM bundle (client/index.mjs) through `import` and the tsc
// output (client/index.js) through `require`, both resolved by the package name via the `exports` map,
// and each connected to a real warren server with `ws`'s WebSocket.
//
// Two ways of resolving the name are checked:
// - as an installed dependency: a temporary consumer directory whose node_modules/warren links to this
//   repository, which is what an app that installed warren resolves;
// - as a self-reference (a package importing its own name, which Node allows when package.json has
//   "name" and "exports"), from the repository root's package scope. Files in __test__/ cannot use the
//   self-reference themselves: __test__/package.json is a nearer package scope without a name.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { WebSocket } from "ws";

import { createServer, defineConnection, type WarrenServer } from "../index.js";
import { withTimeout } from "./helpers.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const rootPackageJson = join(root, "package.json");

type ClientModule = typeof import("../client/index.js");

describe("warren/client as a package export", () => {
  let consumer: string;
  let esm: ClientModule & { resolved: string };
  let cjs: ClientModule;

  before(async () => {
    // A consumer app with warren "installed" (linked) in its node_modules; its two entry files import
    // the client by the package name only.
    consumer = await mkdtemp(join(tmpdir(), "warren-consumer-"));
    await mkdir(join(consumer, "node_modules"));
    await symlink(root, join(consumer, "node_modules", "warren"), "dir");
    await writeFile(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true }));
    await writeFile(
      join(consumer, "esm.mjs"),
      'export * from "warren/client";\nexport const resolved = import.meta.resolve("warren/client");\n',
    );
    await writeFile(join(consumer, "cjs.cjs"), 'module.exports = require("warren/client");\n');
    esm = await import(pathToFileURL(join(consumer, "esm.mjs")).href);
    cjs = createRequire(join(consumer, "cjs.cjs"))("./cjs.cjs");
  });
  after(() => rm(consumer, { recursive: true, force: true }));

  test("import resolves to the ESM bundle and require to the CommonJS build", () => {
    const require = createRequire(join(consumer, "cjs.cjs"));
    assert.equal(require.resolve("warren/client"), join(root, "client", "index.js"));
    assert.equal(fileURLToPath(esm.resolved), join(root, "client", "index.mjs"));
    assert.equal(typeof esm.WarrenClient, "function");
    assert.equal(typeof cjs.WarrenClient, "function");
    assert.equal(esm.VeraniClient, esm.WarrenClient);
    assert.equal(cjs.VeraniClient, cjs.WarrenClient);
    // Two builds, two classes (the usual dual-package caveat): the ESM one is not the CJS one.
    assert.notEqual(esm.WarrenClient, cjs.WarrenClient);
    for (const name of ["WarrenClientError", "DEFAULT_OPTIONS", "DEFAULT_RECONNECTION", "DEFAULT_CALL_TIMEOUT"]) {
      assert.ok(name in esm, `ESM export ${name}`);
      assert.ok(name in cjs, `CJS export ${name}`);
    }
  });

  test("the package resolves its own name from the repository root (exports self-reference)", async () => {
    const require = createRequire(rootPackageJson);
    assert.equal(require.resolve("warren/client"), join(root, "client", "index.js"));
    assert.equal(typeof require("warren/client").WarrenClient, "function");
    // ESM: an import evaluated in the root's package scope (the working directory of --input-type).
    const script =
      'import * as c from "warren/client";' +
      'import { fileURLToPath } from "node:url";' +
      'console.log(JSON.stringify({ file: fileURLToPath(import.meta.resolve("warren/client")), ok: typeof c.WarrenClient === "function" && c.VeraniClient === c.WarrenClient }));';
    const { stdout } = await withTimeout(
      promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { cwd: root }),
      "the ESM self-reference check",
    );
    assert.deepEqual(JSON.parse(stdout), { file: join(root, "client", "index.mjs"), ok: true });
  });

  describe("against a real warren server", () => {
    let url: string;
    let server: WarrenServer | undefined;

    before(async () => {
      const Conn = defineConnection({
        name: "ClientPackageConnection",
        extractMeta(req) {
          const name = req.query.get("name");
          if (!name) throw new Error("name required");
          return { userId: name, clientId: name };
        },
        onConnect(ctx) {
          ctx.emit("welcome", { user: ctx.meta.userId });
        },
      });
      Conn.on("echo", (ctx, data) => ctx.emit("echo", data));
      Conn.on("add", (_ctx, data: { a: number; b: number }) => data.a + data.b);
      server = createServer({ connections: [Conn], storage: ":memory:" });
      const address = await server.listen({ port: 0, host: "127.0.0.1" });
      url = `ws://127.0.0.1:${address.port}/ws`;
    });
    after(() => server?.close());

    for (const kind of ["ESM", "CJS"] as const) {
      test(`the ${kind} client connects, echoes and calls`, async (t) => {
        const { WarrenClient } = kind === "ESM" ? esm : cjs;
        const client = new WarrenClient(`${url}?name=${kind}`, { WebSocket });
        t.after(() => client.close());
        const welcome = new Promise<any>((resolve) => client.once("welcome", resolve));
        await withTimeout(client.waitForConnection(), `the ${kind} client to connect`);
        assert.equal(client.getState(), "connected");
        assert.equal((await withTimeout(welcome, "the welcome event")).user, kind);
        const echoed = new Promise<any>((resolve) => client.once("echo", resolve));
        client.emit("echo", { text: `hi from ${kind}` });
        assert.equal((await withTimeout(echoed, "the echo")).text, `hi from ${kind}`);
        assert.equal(await withTimeout(client.call<number>("add", { a: 2, b: 3 }), "the add call"), 5);
      });
    }
  });
});
