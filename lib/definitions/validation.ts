/**
 * The checks `defineConnection` and `createRoomHandler` share: options are validated once, when
 * a definition is made, with messages naming the function, the definition and the rule
 * (`defineConnection(Chat): onJoin must be a function`), so a mistake fails at startup rather
 * than at the first event that reaches it.
 */

import { messageOf, WarrenError } from "../errors";
import { StateCell } from "../state";

/** What both kinds of definition have: a name, hooks, and state with its persisted keys. */
interface Common {
  name?: unknown;
  state?: unknown;
  persistedKeys?: unknown;
}

/**
 * Checks the common part of `options` for the definition function `api`: an options object, a
 * non-empty `name`, each of `hooks` a function when given, and a `state` that can be persisted
 * (the defaults pass the same policy as every later write).
 * @returns the prefix for further messages, e.g. `createRoomHandler(ChatRoom)`.
 */
export function validateCommon<Options extends Common>(
  api: string,
  options: Options,
  hooks: ReadonlyArray<keyof Options & string>,
): string {
  if (options === null || typeof options !== "object") {
    throw new WarrenError("invalid_option", `${api} needs an options object`);
  }
  if (typeof options.name !== "string" || options.name.length === 0) {
    throw new WarrenError("invalid_option", `${api}: name must be a non-empty string`);
  }
  const where = `${api}(${options.name})`;
  for (const hook of hooks) {
    if (options[hook] !== undefined && typeof options[hook] !== "function") {
      throw new WarrenError("invalid_option", `${where}: ${hook} must be a function`);
    }
  }
  const { state, persistedKeys } = options;
  if (state !== undefined && (state === null || typeof state !== "object")) {
    throw new WarrenError("invalid_option", `${where}: state must be an object`);
  }
  if (persistedKeys !== undefined && (!Array.isArray(persistedKeys) || !persistedKeys.every((key) => typeof key === "string"))) {
    throw new WarrenError("invalid_option", `${where}: persistedKeys must be an array of key names`);
  }
  if (state !== undefined) {
    try {
      new StateCell(state as object, persistedKeys as string[] | undefined, null, () => {});
    } catch (error) {
      throw new WarrenError("invalid_option", `${where}: state cannot be persisted: ${messageOf(error)}`);
    }
  }
  return where;
}

/** Marks `definition` as made by the definition function owning `brand` (checked by `isBranded`). */
export function brand<T extends object>(definition: T, mark: symbol): T {
  Object.defineProperty(definition, mark, { value: true });
  return definition;
}

/** Whether `value` was made by the definition function owning `mark`. */
export function isBranded(value: unknown, mark: symbol): boolean {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[mark] === true;
}
