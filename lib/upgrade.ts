/**
 * `extractMeta` for an upgrade request the native core holds: its decision (meta, or a status
 * and message) goes back before any socket opens.
 */

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
  const req = { url, path, query, headers, remoteAddress };
  const refuse = (error: unknown) => {
    const status = (error as { status?: unknown } | null)?.status;
    const code = typeof status === "number" && status >= 400 && status < 600 ? status : 401;
    native.rejectUpgrade(request, code, messageOf(error));
  };
  const admit = (meta: unknown) => {
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
  let meta: unknown;
  try {
    meta = definition.extractMeta!(req);
  } catch (error) {
    refuse(error);
    return;
  }
  if (isThenable(meta)) meta.then(admit, refuse);
  else admit(meta);
}
