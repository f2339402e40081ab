/**
 * `onBeforeConnect` and `extractMeta` for an upgrade request the native core holds: the request
 * is read once (`request.ts`), the hooks run, and the decision (meta, or a status, message and
 * code) goes back before any socket opens.
 */

import { randomUUID } from "node:crypto";
import { validatorsOf } from "../definitions/connection";
import { messageOf } from "../errors";
import type { Logger } from "../log";
import type { ConnectionDefinition, ConnectionMeta } from "../types";
import type { NativeServer } from "./bridge";
import { isThenable, logError } from "./guard";
import { readRequest } from "./request";
import { check } from "./validate";

/** Errors JavaScript itself throws for a mistake in the code, rather than ones thrown on purpose. */
function isProgrammingError(error: unknown): boolean {
  return error instanceof TypeError || error instanceof ReferenceError || error instanceof RangeError || error instanceof SyntaxError;
}

export function authenticate(
  native: NativeServer,
  definition: ConnectionDefinition<any, any>,
  request: number,
  url: string,
  remoteAddress: string,
  headers: Record<string, string>,
  exposeErrors: boolean,
  log: Logger,
  hookLog: Logger,
): void {
  const req = readRequest(url, remoteAddress, headers, definition.keyFromPath ? definition.websocketPath : null);
  if ("status" in req) {
    native.rejectUpgrade(request, req.status, req.message, req.code);
    return;
  }
  if (log.enabled) log.debug(`${definition.name}: upgrade ${req.path} from ${remoteAddress}`);
  const pathKey = req.key;
  const refuse = (error: unknown) => {
    const status = (error as { status?: unknown } | null)?.status;
    const code = (error as { code?: unknown } | null)?.code;
    const httpStatus = typeof status === "number" && status >= 400 && status < 600 ? status : 401;
    if (log.enabled) log.debug(`${definition.name}: refused ${req.path} with ${httpStatus}: ${messageOf(error)}`);
    // A refusal's message is for the client; a bug's (a TypeError from reading what is not
    // there, say) is not: the client gets "unauthorized" and onError the error, as for calls.
    const bug = isProgrammingError(error);
    if (bug) logError(hookLog, definition, error);
    const message = bug && !exposeErrors ? "unauthorized" : messageOf(error);
    native.rejectUpgrade(request, httpStatus, message, typeof code === "string" ? code : undefined);
  };
  const admit = (value: unknown) => {
    const meta = pathKey === undefined || value === null || typeof value !== "object" ? value : { ...value, userId: pathKey };
    const userId = (meta as ConnectionMeta | null)?.userId;
    if (meta === null || typeof meta !== "object" || typeof userId !== "string" || userId.length === 0) {
      logError(hookLog, definition, new TypeError("extractMeta must return an object with a non-empty string userId"));
      native.rejectUpgrade(request, 500, "invalid session meta");
      return;
    }
    let json: string;
    try {
      json = JSON.stringify(meta);
    } catch (error) {
      logError(hookLog, definition, new TypeError(`extractMeta returned meta that is not JSON: ${messageOf(error)}`));
      native.rejectUpgrade(request, 500, "invalid session meta");
      return;
    }
    native.acceptUpgrade(request, userId, json);
  };
  const extract = () => {
    let meta: unknown;
    try {
      meta = definition.extractMeta ? definition.extractMeta(req) : defaultMeta(pathKey);
    } catch (error) {
      refuse(error);
      return;
    }
    if (isThenable(meta)) meta.then(admit, refuse);
    else admit(meta);
  };
  const hooks = () => {
    if (!definition.onBeforeConnect) {
      extract();
      return;
    }
    let checked: unknown;
    try {
      checked = definition.onBeforeConnect(req);
    } catch (error) {
      refuse(error);
      return;
    }
    if (isThenable(checked)) checked.then(extract, refuse);
    else extract();
  };
  // The contract's `params` schema, if any, runs first: bad params answer 400 `bad_params`.
  const paramsSchema = validatorsOf(definition)?.params;
  if (paramsSchema === undefined) {
    hooks();
    return;
  }
  const validated = (value: unknown) => {
    Object.defineProperty(req, "params", { value, enumerable: true });
    hooks();
  };
  const invalid = (error: Error) => native.rejectUpgrade(request, 400, error.message, "bad_params");
  void check(paramsSchema, "params", req.params, validated, invalid);
}

/** Meta when there is no `extractMeta`: a fresh id as client, and as user unless the path names the actor. */
function defaultMeta(pathKey: string | undefined): ConnectionMeta {
  const id = randomUUID();
  return { userId: pathKey ?? id, clientId: id, channels: ["default"] };
}
