/**
 * `defineConnection`: a connection actor definition — one actor per user (`meta.userId`),
 * holding every session of that user — and its table of event handlers.
 */

import { WarrenError } from "../errors";
import type { ConnectionDefinition, ConnectionMeta, ConnectionOptions, Handler } from "../types";
import { brand, isBranded, validateCommon } from "./validation";

const DEFINITION = Symbol.for("warren.connection");

/** The options that must be functions when given. */
const HOOKS = [
  "extractMeta",
  "onInit",
  "onConnect",
  "onDisconnect",
  "onMessage",
  "onDestroy",
  "onError",
  "onHibernationRestore",
  "onStateChange",
  "onBeforeConnect",
] as const;

/**
 * Defines a connection actor.
 * @example
 * const UserConnection = defineConnection({
 *   name: "UserConnection",
 *   extractMeta(req) {
 *     const token = req.query.get("token");
 *     if (!token) throw new Error("token required");
 *     return { userId: token };
 *   },
 *   onConnect(ctx) { ctx.emit("welcome", { userId: ctx.meta.userId }); },
 * });
 */
export function defineConnection<Meta extends ConnectionMeta = ConnectionMeta, State extends object = {}>(
  options: ConnectionOptions<Meta, State>,
): ConnectionDefinition<Meta, State> {
  const where = validateCommon("defineConnection", options, HOOKS);
  const websocketPath = options.websocketPath ?? "/ws";
  if (typeof websocketPath !== "string" || !websocketPath.startsWith("/")) {
    throw new WarrenError("invalid_option", `${where}: websocketPath must start with "/"`);
  }
  if (options.keyFromPath === true && !websocketPath.endsWith("/")) {
    throw new WarrenError("invalid_option", `${where}: with keyFromPath, websocketPath must end with "/"`);
  }
  if (options.rooms !== undefined) {
    const valid =
      options.rooms !== null &&
      typeof options.rooms === "object" &&
      Object.entries(options.rooms).every(([key, value]) => key.length > 0 && typeof value === "string" && value.length > 0);
    if (!valid) {
      throw new WarrenError("invalid_option", `${where}: rooms must map room names to room handler names`);
    }
  }
  const handlers = new Map<string, Handler<Meta, State>>();
  const definition = {
    ...options,
    websocketPath,
    handlers,
    on(event: string, handler: Handler<Meta, State>) {
      if (typeof event !== "string" || event.length === 0) {
        throw new WarrenError("invalid_option", `${options.name}.on: event must be a non-empty string`);
      }
      if (event === "ping" || event === "call") {
        throw new WarrenError("invalid_option", `${options.name}.on: "${event}" is reserved by the protocol`);
      }
      if (typeof handler !== "function") {
        throw new WarrenError("invalid_option", `${options.name}.on("${event}"): handler must be a function`);
      }
      handlers.set(event, handler);
      return definition;
    },
    off(event: string) {
      handlers.delete(event);
      return definition;
    },
  } as ConnectionDefinition<Meta, State>;
  return brand(definition, DEFINITION);
}

export function isConnectionDefinition(value: unknown): value is ConnectionDefinition<any, any> {
  return isBranded(value, DEFINITION);
}
