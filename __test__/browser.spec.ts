// The chat demo (examples/chat) in a real browser: headless Chromium from Debian's `chromium` package,
// driven by playwright-core. The demo server runs in a child process exactly as `npm run demo` starts
// it (port 0, a temporary WARREN_STORAGE); pages load the demo's own HTML and its browser build of
// warren/client. Covers presence, messages, the typing indicator, history for a late joiner, one
// page's network cut and restored (it reconnects and shows the message it missed), and the pages
// reconnecting by themselves after the server restarts on the same port and storage (a graceful
// SIGTERM, then a SIGKILL), then chatting again.
//
// Chromium is required, not optional: without /usr/bin/chromium the test fails and names the install
// command (.ci/run installs it). Every wait is for something the page shows, with a generous safety
// timeout so a broken page fails instead of hanging; nothing asserts on timing.
//
// A screenshot of one page is written to __test__/artifacts/ (ignored by git) for a human to look at.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import type { BrowserContext, Page } from "playwright-core";
import { withTimeout } from "./helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium";
/** Chromium's flags for this machine's closed network (without the background-networking ones it
 *  keeps trying to reach Google's hosts). Playwright adds --headless, --no-sandbox and its own set too. */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** Safety bound for one wait in a page (a reconnect after a restart takes a few backoff delays). */
const WAIT_MS = 30_000;
const DEMO = fileURLToPath(new URL("../examples/chat/server.mjs", import.meta.url));
const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

interface Demo {
  child: ChildProcess;
  base: string;
  port: number;
  exited: Promise<void>;
}

/** Starts the demo server as `npm run demo` would, and waits for the URL it prints. */
async function startDemo(port: number, storage: string): Promise<Demo> {
  const child = spawn(process.execPath, [DEMO], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", WARREN_STORAGE: storage },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let output = "";
  const base = await withTimeout(
    new Promise<string>((resolve, reject) => {
      child.stdout!.on("data", (chunk: Buffer) => {
        output += chunk;
        const url = /http:\/\/[^/\s]+\//.exec(output)?.[0];
        if (url) resolve(url);
      });
      child.once("exit", (code, signal) => reject(new Error(`the demo exited (${code ?? signal}) before listening: ${output}`)));
    }),
    "the demo server to print its URL",
    WAIT_MS,
  ).catch((error) => {
    child.kill("SIGKILL");
    throw error;
  });
  return { child, base, port: Number(new URL(base).port), exited };
}

async function stopDemo(demo: Demo, signal: NodeJS.Signals): Promise<void> {
  if (demo.child.exitCode === null && demo.child.signalCode === null) demo.child.kill(signal);
  await withTimeout(demo.exited, `the demo server to exit on ${signal}`, WAIT_MS);
}

/** Fails (not skips) when the browser is missing, naming the command that installs it. */
async function loadPlaywright(): Promise<typeof import("playwright-core")> {
  assert.ok(
    existsSync(CHROMIUM),
    `Chromium is not installed (${CHROMIUM} is missing). Install it as root with: ${INSTALL}`,
  );
  try {
    return await import("playwright-core");
  } catch (error) {
    throw new Error(`playwright-core is not installed (run npm install): ${(error as Error).message}`);
  }
}

/** Waits until an element matching `selector` shows `text` (a substring, or a regex on its whole text). */
async function shows(page: Page, selector: string, text: string | RegExp, what: string): Promise<void> {
  try {
    await page.locator(selector, { hasText: text }).first().waitFor({ state: "visible", timeout: WAIT_MS });
  } catch (error) {
    const seen = await page.locator(selector).allInnerTexts().catch(() => []);
    throw new Error(`${what}: no ${selector} showing ${text} within ${WAIT_MS} ms (seen: ${JSON.stringify(seen)})`, {
      cause: error,
    });
  }
}

const connected = (page: Page, who: string) => shows(page, "#state", /^connected$/, `${who}'s page to be connected`);

async function notConnected(page: Page, who: string): Promise<void> {
  await page
    .locator("#state", { hasNotText: /^connected$/ })
    .waitFor({ state: "visible", timeout: WAIT_MS })
    .catch((error) => {
      throw new Error(`${who}'s page to notice that the server went away`, { cause: error });
    });
}

/** The chat log's message lines (not notices) as "from: text". */
async function messages(page: Page): Promise<string[]> {
  return page.locator("#log li:not(.notice)").evaluateAll((items) =>
    items.map((li) => `${li.querySelector(".from")?.textContent}: ${li.lastChild?.textContent}`),
  );
}

async function online(page: Page): Promise<string[]> {
  return page.locator("#online li").allInnerTexts();
}

/** Types a message key by key (so the page emits typing), then sends it with the form's button. */
async function say(page: Page, text: string): Promise<void> {
  await page.locator("#text").pressSequentially(text);
  await page.locator("#form button").click();
}

describe("the chat demo in a real browser", () => {
  test("two pages chat, a late page gets history, pages reconnect after a network cut and server restarts", { timeout: 240_000 }, async (t) => {
    const { chromium } = await loadPlaywright();
    const storage = await mkdtemp(join(tmpdir(), "warren-browser-demo-"));
    const profile = await mkdtemp(join(tmpdir(), "warren-chromium-profile-"));
    t.after(() => Promise.all([storage, profile].map((dir) => rm(dir, { recursive: true, force: true }))));

    let demo = await startDemo(0, storage);
    t.after(() => stopDemo(demo, "SIGKILL"));

    const context: BrowserContext = await withTimeout(
      chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS }),
      "Chromium to start",
      WAIT_MS,
    );
    // Bounded: a browser that does not close must not keep the test run alive.
    t.after(() => withTimeout(context.close(), "Chromium to close", WAIT_MS).catch(() => undefined));
    context.setDefaultTimeout(WAIT_MS);

    const pageErrors: string[] = [];
    const open = async (name: string): Promise<Page> => {
      const page = await context.newPage();
      page.on("pageerror", (error) => {
        pageErrors.push(`${name}: ${error.message}`);
        // At once too, so that the log shows it even if the run never gets to its assertion.
        console.error(`[page ${name}] uncaught: ${error.stack ?? error.message}`);
      });
      const response = await page.goto(`${demo.base}?name=${name}`);
      assert.equal(response?.status(), 200, `the demo page for ${name}`);
      await connected(page, name);
      return page;
    };

    // Two users see each other online.
    const ann = await open("ann");
    const ben = await open("ben");
    assert.equal(await ann.locator("#me").innerText(), "ann");
    await shows(ann, "#online li", /^ben$/, "ben in ann's online list");
    await shows(ben, "#online li", /^ann$/, "ann in ben's online list");
    await shows(ann, "#log li.notice", "ben joined", "ben's join notice on ann's page");

    // Typing shows on the other page; the message sent appears on both.
    // The indicator shows for 1.5 s after the last typing event; a MutationObserver set up before
    // typing catches it however late this test gets to look.
    await ben.evaluate(() => {
      const element = document.getElementById("typing")!;
      (window as { typingShown?: Promise<string> }).typingShown = new Promise<string>((resolve) => {
        new MutationObserver(() => {
          if (element.textContent) resolve(element.textContent);
        }).observe(element, { childList: true, characterData: true, subtree: true });
      });
    });
    await ann.locator("#text").pressSequentially("hello ben");
    const typing = ben.evaluate(() => (window as { typingShown?: Promise<string> }).typingShown);
    assert.equal(await withTimeout(typing, "ann's typing indicator on ben's page", WAIT_MS), "ann is typing…");
    await ben.waitForFunction(() => !document.getElementById("typing")!.textContent, null, { timeout: WAIT_MS });
    await ann.locator("#form button").click();
    await shows(ben, "#log li", "hello ben", "ann's message on ben's page");
    await shows(ann, "#log li", "hello ben", "ann's own message on her page");
    assert.equal(await ann.locator("#text").inputValue(), "", "the input is cleared after sending");
    await say(ben, "hi ann");
    await shows(ann, "#log li", "hi ann", "ben's reply on ann's page");
    await shows(ben, "#log li", "hi ann", "ben's own reply on his page");
    assert.deepEqual(await messages(ben), ["ann: hello ben", "ben: hi ann"]);

    // A page that joins later is shown the history and who is online.
    const cat = await open("cat");
    await shows(cat, "#log li", "hi ann", "the history on cat's page");
    assert.deepEqual(await messages(cat), ["ann: hello ben", "ben: hi ann"]);
    await shows(cat, "#online li", /^ben$/, "ben in cat's online list");
    assert.deepEqual(await online(cat), ["ann", "ben", "cat"]);
    await shows(ann, "#online li", /^cat$/, "cat in ann's online list");

    await mkdir(ARTIFACTS, { recursive: true });
    const screenshot = join(ARTIFACTS, "chat-ann.png");
    await ann.screenshot({ path: screenshot });
    t.diagnostic(`screenshot: ${screenshot}`);

    await cat.close();
    await shows(ann, "#log li.notice", "cat left", "cat's leave notice on ann's page");
    const transcript = ["ann: hello ben", "ben: hi ann"];

    // Cut ben's network (DevTools offline emulation, this page only): his socket stalls, the client's
    // pong timeout drops it and it retries. ann chats meanwhile; once the network is back, ben's page
    // reconnects by itself and resumes its session: the server replays what he missed. A marker line
    // added to his log before the cut stays, which shows the log was not rebuilt from the history
    // (the server runs no onConnect for a resumed session, so it sends none).
    await ben.evaluate(() => {
      const marker = Object.assign(document.createElement("li"), { className: "notice resume-marker" });
      document.getElementById("log")!.append(marker);
    });
    const benNetwork = await context.newCDPSession(ben);
    const offline = (value: boolean) =>
      benNetwork.send("Network.emulateNetworkConditions", {
        offline: value,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: -1,
      });
    await benNetwork.send("Network.enable");
    await offline(true);
    await notConnected(ben, "ben (network cut)");
    await say(ann, "while you were away");
    await shows(ann, "#log li", "while you were away", "ann's message on her page while ben is offline");
    transcript.push("ann: while you were away");
    await offline(false);
    await connected(ben, "ben (network restored)");
    await shows(ben, "#log li", "while you were away", "the message ben missed, on his page");
    assert.deepEqual(await messages(ben), transcript, "ben's log after the network cut");
    assert.equal(await ben.locator("#state").getAttribute("data-resumed"), "true", "ben's session was resumed");
    assert.equal(await ben.locator("#log li.resume-marker").count(), 1, "ben's log was not rebuilt");
    await ben.evaluate(() => document.querySelector("#log li.resume-marker")?.remove());
    await shows(ann, "#online li", /^ben$/, "ben in ann's online list after his network came back");
    await benNetwork.detach();

    // Restart the server on the same port and storage: the pages notice, reconnect by themselves,
    // re-sync from the room's persisted history (a marker line added to the log before the restart
    // goes away when the page rebuilds it), and chat again.
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      const port = demo.port;
      for (const page of [ann, ben]) {
        await page.evaluate(() => {
          const marker = Object.assign(document.createElement("li"), { className: "notice test-marker" });
          document.getElementById("log")!.append(marker);
        });
      }
      await stopDemo(demo, signal);
      await Promise.all([notConnected(ann, "ann"), notConnected(ben, "ben")]);
      demo = await startDemo(port, storage);
      assert.equal(demo.port, port);
      await Promise.all([connected(ann, "ann"), connected(ben, "ben")]);
      for (const [page, who] of [[ann, "ann"], [ben, "ben"]] as const) {
        await page
          .locator("#log li.test-marker")
          .waitFor({ state: "detached", timeout: WAIT_MS })
          .catch((error) => {
            throw new Error(`${who}'s page to rebuild its log from the history after the ${signal} restart`, {
              cause: error,
            });
          });
      }
      await shows(ann, "#online li", /^ben$/, `ben in ann's online list after the ${signal} restart`);
      await shows(ben, "#online li", /^ann$/, `ann in ben's online list after the ${signal} restart`);

      const text = `back after ${signal}`;
      await say(ben, text);
      await shows(ann, "#log li", text, `ben's message on ann's page after the ${signal} restart`);
      await shows(ben, "#log li", text, `ben's own message on his page after the ${signal} restart`);
      transcript.push(`ben: ${text}`);
      // The log was rebuilt from the history the server kept across the restart, then the new line.
      assert.deepEqual(await messages(ann), transcript, `ann's log after the ${signal} restart`);
      assert.deepEqual(await messages(ben), transcript, `ben's log after the ${signal} restart`);
    }
    await ann.screenshot({ path: join(ARTIFACTS, "chat-ann-after-restarts.png") });

    assert.deepEqual(pageErrors, [], "uncaught errors in the pages");
  });
});
