/**
 * Persisted state, the folder's entry: what may be stored (`storable.ts`), its bytes
 * (`codec.ts`), the `ctx.state` proxy (`cell.ts`) and group commit (`persistence.ts`). Code
 * outside `state/` — and the state tests, which must see one instance of these modules, since
 * a proxy is recognised by the module that made it — imports from here.
 */

export { StateCell } from "./cell";
export { decodeState, encodeState } from "./codec";
export { Persistence, type StateOwner } from "./persistence";
export { assertStorable } from "./storable";
