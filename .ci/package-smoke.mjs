// Runs inside a project that installed warren (and ws) from tarballs, with no Rust on the PATH:
// loads the package both ways, starts a server, answers a call over a real socket, closes.
// Usage: node package-smoke.mjs (from the project's directory). Prints one line per step and
// a count at the end; exits non-zero on the first failure.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.cwd(), "package.json"));
let passed = 0;
async function step(name, fn) {
  const started = Date.now();
  await fn();
  passed++;
  console.log(`ok ${passed} - ${name} (${Date.now() - started} ms)`);
}

let cjs;
let esm;
await step("require('warren') loads the native core", () => {
  cjs = require("warren");
  assert.equal(typeof cjs.createServer, "function");
  assert.equal(typeof cjs.defineConnection, "function");
});
await step("import('warren') gives the same module", async () => {
  esm = await import("warren");
  assert.equal(esm.createServer, cjs.createServer);
});
await step("the binary came from the platform package, not from a build", async () => {
  const { readdirSync } = await import("node:fs");
  const { dirname } = await import("node:path");
  const warrenDir = dirname(require.resolve("warren/package.json"));
  assert.deepEqual(readdirSync(warrenDir).filter((f) => f.endsWith(".node")), []);
  const expected = `warren-${platformName()}`;
  const fromWarren = createRequire(join(warrenDir, "index.js"));
  const platformDir = dirname(fromWarren.resolve(`${expected}/package.json`));
  const binary = readdirSync(platformDir).filter((f) => f.endsWith(".node"));
  assert.deepEqual(binary, [`warren.${platformName()}.node`]);
  // The addon the loader required is that file.
  const loaded = Object.keys(require.cache).filter((f) => f.endsWith(".node"));
  assert.deepEqual(loaded, [join(platformDir, binary[0])]);
  console.log(`# ${expected}: ${join(platformDir, binary[0])}`);
});

let clientModule;
await step("warren/client by import and require", async () => {
  clientModule = await import("warren/client");
  assert.equal(typeof clientModule.WarrenClient, "function");
  assert.equal(typeof require("warren/client").WarrenClient, "function");
});

await step("a server answers a call from a client over a real socket, then closes", async () => {
  const { WebSocket } = await import("ws");
  const Echo = esm.defineConnection({ name: "SmokeEcho", state: { calls: 0 } });
  Echo.on("add", (ctx, data) => {
    ctx.state.calls++;
    return { sum: data.a + data.b, calls: ctx.state.calls };
  });
  const server = esm.createServer({ connections: [Echo], storage: ":memory:" });
  const { port } = await server.listen({ port: 0, host: "127.0.0.1" });
  const client = new clientModule.WarrenClient(`ws://127.0.0.1:${port}/ws`, { WebSocket });
  try {
    const reply = await client.call("add", { a: 40, b: 2 }, { timeout: 10_000 });
    assert.deepEqual(reply, { sum: 42, calls: 1 });
  } finally {
    client.close();
    await server.close();
  }
});

console.log(`package smoke: all ${passed} steps passed`);

function platformName() {
  const { platform, arch } = process;
  if (platform === "linux") {
    const glibc = process.report.getReport().header.glibcVersionRuntime;
    return `linux-${arch}-${glibc ? "gnu" : "musl"}`;
  }
  return platform === "win32" ? `win32-${arch}-msvc` : `${platform}-${arch}`;
}
