/**
 * `defineConnection`: a connection actor definition — one actor per user (`meta.userId`),
 * holding every session of that user — and its table of event handlers.
 */

import type { ContractSpec } from "../../client/contract";
import { WarrenError } from "../errors";
import type {
  ConnectionDefinition,
  ConnectionMeta,
  ConnectionOptions,
  Handler,
  RawConnectionDefinition,
  RawConnectionOptions,
} from "../types";
import { compileContract, type Validators } from "./contract";
import { brand, isBranded, validateCommon } from "./validation";

const DEFINITION = Symbol.for("warren.connection");

/** Where a definition keeps the schemas of its contract (absent without schemas). */
export const VALIDATORS = Symbol("warren.validators");

/** The path of a definition that names none (Verani's). */
const DEFAULT_PATH = "/ws";

/**
 * The name of a definition that gives none: Verani's `VeraniConnectionDO` on its default path,
 * and one per path elsewhere, so that unnamed definitions clash only when their paths do (the
 * name keys their stored state).
 */
function defaultName(websocketPath: string | undefined): string {
  const path = websocketPath ?? DEFAULT_PATH;
  return path === DEFAULT_PATH ? "VeraniConnectionDO" : `VeraniConnectionDO:${path}`;
}

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
 * Defines a connection actor. Every option may be left out, as in Verani: `name` defaults to
 * `"VeraniConnectionDO"` (`"VeraniConnectionDO:<path>"` off `/ws`), `websocketPath` to `"/ws"`,
 * and without `extractMeta` each session is its own user (a fresh id).
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
export function defineConnection<
  Meta extends ConnectionMeta = ConnectionMeta,
  State extends object = {},
  C extends ContractSpec = any,
>(options: ConnectionOptions<Meta, State, C>): ConnectionDefinition<Meta, State, C> {
  const { name, where } = validateCommon("defineConnection", options, HOOKS, (o) => defaultName(o.websocketPath));
  const websocketPath = options.websocketPath ?? DEFAULT_PATH;
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
  if (options.messages !== undefined && options.messages !== "json" && options.messages !== "raw") {
    throw new WarrenError("invalid_option", `${where}: messages must be "json" or "raw"`);
  }
  if (options.messages === "raw" && options.contract !== undefined) {
    throw new WarrenError("invalid_option", `${where}: a raw endpoint has no contract (its messages are not JSON)`);
  }
  const handlers = new Map<string, Handler<Meta, State>>();
  const validators = compileContract(where, options.contract);
  const definition = {
    ...options,
    name,
    websocketPath,
    handlers,
    on(event: string, handler: Handler<Meta, State>) {
      if (options.messages === "raw") {
        throw new WarrenError("invalid_option", `${name}.on: a raw endpoint has no events; onMessage gets every message`);
      }
      if (typeof event !== "string" || event.length === 0) {
        throw new WarrenError("invalid_option", `${name}.on: event must be a non-empty string`);
      }
      if (event === "ping" || event === "call") {
        throw new WarrenError("invalid_option", `${name}.on: "${event}" is reserved by the protocol`);
      }
      if (typeof handler !== "function") {
        throw new WarrenError("invalid_option", `${name}.on("${event}"): handler must be a function`);
      }
      handlers.set(event, handler);
      return definition;
    },
    off(event: string) {
      handlers.delete(event);
      return definition;
    },
  } as unknown as ConnectionDefinition<Meta, State, C>;
  if (validators !== null) Object.defineProperty(definition, VALIDATORS, { value: validators });
  return brand(definition, DEFINITION);
}

/**
 * Defines a raw endpoint: a connection whose messages are not JSON events but text or binary
 * frames handed to `onMessage` as they arrived (a string or a `Uint8Array`), answered with
 * `ctx.send(data)`. The same as `defineConnection({ ..., messages: "raw" })`, typed for it.
 * @example
 * const Echo = defineRawConnection({
 *   websocketPath: "/echo",
 *   onMessage(ctx, data) { ctx.send(data); },
 * });
 */
export function defineRawConnection<Meta extends ConnectionMeta = ConnectionMeta, State extends object = {}>(
  options: RawConnectionOptions<Meta, State>,
): RawConnectionDefinition<Meta, State> {
  const definition = defineConnection({ ...(options as ConnectionOptions<Meta, State>), messages: "raw" });
  return definition as unknown as RawConnectionDefinition<Meta, State>;
}

/** The schemas of a definition's contract; undefined when it has none (no check per message). */
export function validatorsOf(definition: ConnectionDefinition<any, any>): Validators | undefined {
  return (definition as { [VALIDATORS]?: Validators })[VALIDATORS];
}

export function isConnectionDefinition(value: unknown): value is ConnectionDefinition<any, any> {
  return isBranded(value, DEFINITION);
}
