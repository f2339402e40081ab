/**
 * `onBeforeConnect` and `extractMeta` for an upgrade request the native core holds: the request
 * is read once (path, query, params, the actor key from the path), the hooks run, and the
 * decision (meta, or a status, message and code) goes back before any socket opens.
 */

import { randomUUID } from "node:crypto";
import { messageOf } from "../errors";
import { logger } from "../log";
import type { ConnectionDefinition, ConnectionMeta, UpgradeRequest } from "../types";
import type { NativeServer } from "./bridge";
import { isThenable, logError } from "./guard";

const log = logger("upgrade");

/** Largest `params` query value accepted (Rivet's limit for connection params). */
const MAX_PARAMS_LENGTH = 4096;

/** Why a request is refused before any hook runs. */
interface Refusal {
  status: number;
  message: string;
  code: string;
}

export function authenticate(
  native: NativeServer,
  definition: ConnectionDefinition<any, any>,
  request: number,
  url: string,
  remoteAddress: string,
  headers: Record<string, string>,
): void {
  const req = readRequest(definition, url, remoteAddress, headers);
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
    native.rejectUpgrade(request, httpStatus, messageOf(error), typeof code === "string" ? code : undefined);
  };
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

/**
 * The request as the hooks see it, or why it is refused before they run: an actor key in the
 * path that is not valid percent-encoding, or `params` that are too long or not JSON.
 */
function readRequest(
  definition: ConnectionDefinition<any, any>,
  url: string,
  remoteAddress: string,
  headers: Record<string, string>,
): UpgradeRequest | Refusal {
  const queryStart = url.indexOf("?");
  const path = queryStart < 0 ? url : url.slice(0, queryStart);
  const query = new URLSearchParams(queryStart < 0 ? "" : url.slice(queryStart + 1));
  let key: string | undefined;
  if (definition.keyFromPath) {
    try {
      key = decodeURIComponent(path.slice(definition.websocketPath.length));
    } catch {
      return { status: 400, message: "the actor key in the path is not valid percent-encoding", code: "bad_key" };
    }
  }
  const rawParams = query.get("params");
  let params: unknown;
  if (rawParams !== null) {
    if (rawParams.length > MAX_PARAMS_LENGTH) {
      return { status: 400, message: `params must be at most ${MAX_PARAMS_LENGTH} bytes`, code: "params_too_large" };
    }
    try {
      params = JSON.parse(rawParams);
    } catch {
      return { status: 400, message: "params must be JSON", code: "bad_params" };
    }
  }
  return { url, path, query, headers, remoteAddress, params, key };
}

/** Meta when there is no `extractMeta`: a fresh id as client, and as user unless the path names the actor. */
function defaultMeta(pathKey: string | undefined): ConnectionMeta {
  const id = randomUUID();
  return { userId: pathKey ?? id, clientId: id, channels: ["default"] };
}
