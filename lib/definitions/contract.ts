/**
 * A connection's contract as the runtime sees it: `defineConnection` checks the contract's shape
 * once and keeps only its schemas (entries with a `~standard` member), by event name for events
 * and calls. Type markers (`payload<T>()`) are left out, so a contract without schemas costs
 * nothing per message: the definition then holds no validators at all.
 */

import type { ContractSpec, StandardSchemaV1 } from "../../client/contract";
import { WarrenError } from "../errors";

/** The schemas of a contract that the runtime runs on what clients send. */
export interface Validators {
  /** Client events by name. */
  readonly events: ReadonlyMap<string, StandardSchemaV1>;
  /** Call arguments by call name. */
  readonly calls: ReadonlyMap<string, StandardSchemaV1>;
  /** The connection params, checked at the upgrade. */
  readonly params: StandardSchemaV1 | undefined;
}

/** Whether `value` is a Standard Schema (zod ≥ 3.24, valibot ≥ 1, arktype...). */
export function isSchema(value: unknown): value is StandardSchemaV1 {
  const props = (value as { "~standard"?: { validate?: unknown } } | null)?.["~standard"];
  return typeof props === "object" && props !== null && typeof props.validate === "function";
}

/**
 * Checks `contract` (the `contract` option of the definition `where`) and collects its schemas.
 * @returns null when there is no contract or it holds no schema.
 */
export function compileContract(where: string, contract: ContractSpec | undefined): Validators | null {
  if (contract === undefined) return null;
  const fail = (rule: string): never => {
    throw new WarrenError("invalid_option", `${where}: contract ${rule}`);
  };
  if (contract === null || typeof contract !== "object") fail("must be an object (defineContract)");
  const section = (name: "clientEvents" | "serverEvents" | "calls"): Array<[string, unknown]> => {
    const value = contract[name];
    if (value === undefined) return [];
    if (value === null || typeof value !== "object") fail(`${name} must map event names to payload() or schemas`);
    for (const [key, entry] of Object.entries(value)) {
      if (entry === null || typeof entry !== "object") fail(`${name}["${key}"] must be payload() or a schema`);
    }
    return Object.entries(value);
  };
  const events = new Map<string, StandardSchemaV1>();
  for (const [name, spec] of section("clientEvents")) if (isSchema(spec)) events.set(name, spec);
  section("serverEvents");
  const calls = new Map<string, StandardSchemaV1>();
  for (const [name, spec] of section("calls")) {
    const args = (spec as { args?: unknown }).args;
    if (isSchema(spec)) fail(`calls["${name}"] must be { args?, result? }`);
    if (isSchema(args)) calls.set(name, args);
  }
  const params = isSchema(contract.params) ? contract.params : undefined;
  return events.size === 0 && calls.size === 0 && params === undefined ? null : { events, calls, params };
}
