/**
 * `onBeforeConnect` and `extractMeta` for an upgrade request the native core holds: the
 * decision (meta, or a status, message and code) goes back before any socket opens.
 */

import { randomUUID } from "node:crypto";
import type { NativeServer } from "../native";
import type { ConnectionDefinition, ConnectionMeta } from "./connection";
import { messageOf } from "./errors";
import { isThenable, logError } from "./hooks";

export function authenticate(
  native: NativeServer,
  definition: ConnectionDefinition<any, any>,
  request: number,
  url: string,
  remoteAddress: string,
  headers: Record<string, string>,
): void {
  const queryStart = url.indexOf("?");
  const path = queryStart < 0 ? url : url.slice(0, queryStart);
  const query = new URLSearchParams(queryStart < 0 ? "" : url.slice(queryStart + 1));
  const pathKey = definition.keyFromPath ? decodeKey(path.slice(definition.websocketPath.length)) : undefined;
  if (pathKey === null) {
    native.rejectUpgrade(request, 400, "the actor key in the path is not valid percent-encoding", "bad_key");
    return;
  }
  const refuse = (error: unknown) => {
    const status = (error as { status?: unknown } | null)?.status;
    const code = (error as { code?: unknown } | null)?.code;
    const httpStatus = typeof status === "number" && status >= 400 && status < 600 ? status : 401;
    native.rejectUpgrade(request, httpStatus, messageOf(error), typeof code === "string" ? code : undefined);
  };
  const rawParams = query.get("params");
  let params: unknown;
  if (rawParams !== null) {
    if (rawParams.length > MAX_PARAMS_LENGTH) {
      native.rejectUpgrade(request, 400, `params must be at most ${MAX_PARAMS_LENGTH} bytes`, "params_too_large");
      return;
    }
    try {
      params = JSON.parse(rawParams);
    } catch {
      native.rejectUpgrade(request, 400, "params must be JSON", "bad_params");
      return;
    }
  }
  const req = { url, path, query, headers, remoteAddress, params, key: pathKey };
  const admit = (value: unknown) => {
    const meta = pathKey === undefined || value === null || typeof value !== "object" ? value : { ...value, userId: pathKey };
    const userId = (meta as ConnectionMeta | null)?.userId;
    if (meta === null || typeof meta !== "object" || typeof userId !== "string" || userId.length === 0) {
      logError(definition, new TypeError("extractMeta must return an object with a non-empty string userId"));
      native.rejectUpgrade(request, 500, "invalid session meta");
      return;
    }
    let json: string;
    try {
      json = JSON.stringify(meta);
    } catch (error) {
      logError(definition, new TypeError(`extractMeta returned meta that is not JSON: ${messageOf(error)}`));
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
}

/** Largest `params` query value accepted (Rivet's limit for connection params). */
const MAX_PARAMS_LENGTH = 4096;

/** Meta when there is no `extractMeta`: a fresh id as client, and as user unless the path names the actor. */
function defaultMeta(pathKey: string | undefined): ConnectionMeta {
  const id = randomUUID();
  return { userId: pathKey ?? id, clientId: id, channels: ["default"] };
}

function decodeKey(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}
