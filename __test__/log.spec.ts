/**
 * The logging facade: `DEBUG` patterns decide which `warren:<module>` namespaces print debug
 * lines; errors always print.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { enabledBy, logger } from "../lib/log.ts";

describe("log", () => {
  test("DEBUG patterns enable namespaces as the debug package does", () => {
    assert.equal(enabledBy(undefined, "warren:upgrade"), false);
    assert.equal(enabledBy("", "warren:upgrade"), false);
    assert.equal(enabledBy("warren:*", "warren:upgrade"), true);
    assert.equal(enabledBy("*", "warren:upgrade"), true);
    assert.equal(enabledBy("warren:state,warren:rooms", "warren:rooms"), true);
    assert.equal(enabledBy("warren:state warren:rooms", "warren:upgrade"), false);
    assert.equal(enabledBy("warren:*,-warren:upgrade", "warren:upgrade"), false);
    assert.equal(enabledBy("-warren:upgrade,warren:*", "warren:upgrade"), false, "an exclusion wins wherever it stands");
    assert.equal(enabledBy("warren:*,-warren:upgrade", "warren:rooms"), true);
    assert.equal(enabledBy("warren.x", "warrenzx"), false, "dots are literal");
  });

  test("errors always print to stderr with the [warren] prefix; debug lines only when enabled", () => {
    const printed: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void printed.push(args);
    const log = logger("probe");
    try {
      log.debug("detail");
      log.error("shown:", 42);
    } finally {
      console.error = original;
    }
    const debugLines = log.enabled ? [["warren:probe detail"]] : [];
    assert.deepEqual(printed, [...debugLines, ["[warren] shown:", 42]]);
  });
});
