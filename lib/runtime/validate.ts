/**
 * Validation at the edge: a client's payload goes through its contract's schema before the
 * handler sees it. Synchronous schemas (the common case) answer in the same turn, so the handler
 * still runs in the order the frames came; an async schema's handler runs when it settles. A
 * schema that throws counts as a failed check with the thrown message as its issue.
 */

import type { StandardIssue, StandardResult, StandardSchemaV1 } from "../../client/contract";
import { messageOf, PayloadError, type PayloadIssue } from "../errors";
import { isThenable } from "./guard";

/**
 * Runs `schema` on `value`, then `pass` with the validated value or `fail` with a `PayloadError`.
 * @returns what `pass` returns, or a promise when the schema is async.
 */
export function check(
  schema: StandardSchemaV1,
  event: string,
  value: unknown,
  pass: (value: unknown) => unknown,
  fail: (error: PayloadError) => void,
): unknown {
  let result: StandardResult<unknown> | Promise<StandardResult<unknown>>;
  try {
    result = schema["~standard"].validate(value);
  } catch (error) {
    fail(new PayloadError(event, [{ message: messageOf(error), path: [] }]));
    return undefined;
  }
  if (!isThenable(result)) return settle(result, event, pass, fail);
  return result.then(
    (settled) => settle(settled, event, pass, fail),
    (error) => fail(new PayloadError(event, [{ message: messageOf(error), path: [] }])),
  );
}

function settle(
  result: StandardResult<unknown>,
  event: string,
  pass: (value: unknown) => unknown,
  fail: (error: PayloadError) => void,
): unknown {
  if (result.issues === undefined) return pass(result.value);
  fail(new PayloadError(event, result.issues.map(plainIssue)));
  return undefined;
}

/** An issue as JSON can carry it: its message and its path as keys (symbols as their description). */
function plainIssue(issue: StandardIssue): PayloadIssue {
  const path = (issue.path ?? []).map((segment) => {
    const key = typeof segment === "object" && segment !== null ? segment.key : segment;
    return typeof key === "symbol" ? String(key.description) : key;
  });
  return { message: String(issue.message), path };
}
