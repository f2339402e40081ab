/**
 * The native boundary taken head on: `NativeServer` methods called directly with arguments the
 * JS layer never sends. Each must answer (an error with a stable code, or a harmless false),
 * never abort the process, and leave the server working.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import native from "../native.js";

// native.js loads the addon at run time: its exports are only known once loaded.
const { NativeServer } = native;
type NativeServer = InstanceType<typeof NativeServer>;

function server(): NativeServer {
  return new NativeServer(
    {
      endpoints: [{ name: "C", path: "/ws", authenticates: true }],
      roomHandlers: ["Room"],
      storage: ":memory:",
    },
    () => {},
  );
}

/** Runs `call`; returns "threw <code>" or "returned <value>". */
function outcome(call: () => unknown): string {
  try {
    return `returned ${JSON.stringify(call())}`;
  } catch (error) {
    return `threw ${(error as { code?: string }).code ?? "?"}`;
  }
}

describe("the native boundary", () => {
  test("bad arguments get errors or false, never a crash, and the server keeps working", () => {
    const native = server();
    const huge = Number.MAX_VALUE;
    const cases: Array<[string, () => unknown, string]> = [
      ["emit to a negative session", () => native.emit(-1, "x", "{}"), "returned false"],
      ["emit a payload that is not an object", () => native.emit(1, "x", "[1,2]"), "threw invalid_argument"],
      ["emit to a huge session id", () => native.emit(huge, "x", "{}"), "returned false"],
      ["emit to an unknown endpoint", () => native.emitToUser(99, "k", "x", "{}", -7), "returned 0"],
      ["a frame batch that is not one", () => native.sendFrames("garbage"), "threw invalid_argument"],
      ["a frame batch with a bad call id", () => native.sendFrames("r\t1\tnot-a-number\t{}"), "threw invalid_argument"],
      ["a frame batch with an unknown kind", () => native.sendFrames("z\t1\t2\t{}"), "threw invalid_argument"],
      ["a reply with negative ids", () => native.reply(-1, -1, "1"), "returned false"],
      ["an error reply with huge ids", () => native.replyError(huge, huge, "c", "m", "{"), "returned false"],
      ["a close code out of range", () => native.closeSession(1, 99_999, "x"), "threw invalid_argument"],
      ["a reserved close code", () => native.closeSession(1, 1006, "x"), "threw invalid_argument"],
      ["a close reason over 123 bytes", () => native.closeSession(1, 1000, "x".repeat(200)), "threw invalid_argument"],
      ["join with a negative actor", () => native.joinRoom(-1, "r", 0, "{}"), "threw actor_gone"],
      ["join with bad metadata JSON", () => native.joinRoom(1, "r", 0, "{bad"), "threw invalid_argument"],
      ["join with an unknown handler", () => native.joinRoom(1, "r", 99, "{}"), "threw invalid_argument"],
      ["leave with a huge actor", () => native.leaveRoom(huge, "r"), "threw actor_gone"],
      ["rooms of a missing actor", () => native.roomsOf(-5), "threw actor_gone"],
      ["open a room with an unknown handler", () => native.openRoom("r", 99), "threw invalid_argument"],
      ["member metadata that is not JSON", () => native.setMemberMetadata("r", "u", "{bad"), "threw invalid_argument"],
      ["load state of an unknown kind", () => native.loadState(7, "a", "b"), "threw invalid_argument"],
      ["commit state of an unknown kind", () => native.commitState([{ kind: 7, owner: "a", name: "b" }]), "threw invalid_argument"],
      ["hibernate on an unknown endpoint", () => native.hibernate(99, "k"), "returned false"],
      ["keep a negative actor awake", () => native.keepAwake(-1), "returned undefined"],
      ["destroy a huge actor", () => native.destroyActor(huge), "returned false"],
      ["destroy on an unknown endpoint", () => native.destroyActorByKey(99, "k"), "returned false"],
      ["schedule at NaN", () => native.scheduleAdd(0, "k", Number.NaN, "e", "{}"), "threw invalid_argument"],
      ["schedule at a negative time", () => native.scheduleAdd(0, "k", -1, "e", "{}"), "threw invalid_argument"],
      ["schedule data that is not JSON", () => native.scheduleAdd(0, "k", 0, "e", "not json"), "threw invalid_argument"],
      ["schedule on an unknown endpoint", () => native.scheduleAdd(99, "k", 0, "e", "{}"), "threw invalid_argument"],
      ["cancel an unknown schedule", () => native.scheduleCancel("nope"), "returned false"],
      ["accept an upgrade with meta that is not JSON", () => native.acceptUpgrade(1, "k", "{bad"), "threw invalid_argument"],
      ["accept an unknown upgrade", () => native.acceptUpgrade(-1, "k", "{}"), "returned false"],
      ["reject with an invalid status", () => native.rejectUpgrade(huge, 99_999, "m"), "returned false"],
      ["listen on a port out of range", () => native.listen("127.0.0.1", 70_000), "threw invalid_argument"],
      ["listen on a host that is not one", () => native.listen("not a host", 0), "threw listen_failed"],
    ];
    const wrong = cases
      .map(([what, call, expected]) => [what, outcome(call), expected])
      .filter(([, got, expected]) => got !== expected)
      .map(([what, got, expected]) => `${what}: ${got}, expected ${expected}`);
    assert.deepEqual(wrong, [], `${wrong.length} of ${cases.length} calls answered wrongly`);
    // Still alive and working.
    assert.equal(native.stats().sessions, 0);
    assert.equal(typeof native.scheduleAdd(0, "k", 1e300, "e", "{}"), "string");
    native.shutdown();
    native.release();
    assert.equal(outcome(() => native.loadState(0, "C", "k")), "threw server_closed");
  });
});
