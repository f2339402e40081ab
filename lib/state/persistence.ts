/**
 * Persisted state, as the runtime sees it: loading an owner's state from the native store,
 * and committing every changed state once per tick (group commit).
 *
 * When a state first becomes dirty in a tick we tell the native core at once (`stateChanged`),
 * so that under strict durability every frame sent from then on waits behind the output gate;
 * a microtask then commits every dirty state in one native call. Nothing here waits for the
 * disk: the gate does.
 *
 * A commit the store refuses (a full disk) is reported, never thrown into the event loop: the
 * native core keeps the frames that followed those changes from leaving (a call's caller gets
 * `storage_unavailable`), and the owners' states are written again with the next commit, so
 * they are stored as soon as the disk has room.
 */

import type { Logger } from "../log";
import { StateKind, type NativeServer } from "../runtime/bridge";
import { inspectable } from "./inspectable";
import { StateCell } from "./cell";

/** Whatever owns persisted state (an actor or a room): where its state is stored. */
export interface StateOwner {
  readonly kind: StateKind;
  /** Definition name (actors) or room handler name (rooms). */
  readonly owner: string;
  /** userId (actors) or full room name (rooms). */
  readonly name: string;
  readonly cell: StateCell;
  /** Set once destroyed: its state is gone and must never be written again. */
  destroyed: boolean;
  /** Runs the definition's `onStateChange`, once per tick in which the state changed. */
  stateChanged?: () => void;
}

export class Persistence {
  readonly #native: NativeServer;
  readonly #dirty = new Set<StateOwner>();
  /** Owners whose last commit the store refused: written again with the next one. */
  readonly #unstored = new Set<StateOwner>();
  #scheduled = false;
  readonly #log: Logger;
  /** Whether the inspector is on: it is shown each actor's state as JSON when committed. */
  readonly #inspects: boolean;

  constructor(native: NativeServer, log: Logger) {
    this.#native = native;
    this.#log = log;
    this.#inspects = native.inspects();
  }

  /** Whether the inspector is on (it is shown each actor's state when loaded and committed). */
  get inspects(): boolean {
    return this.#inspects;
  }

  /** A state cell for an owner, loaded from storage (defaults for whatever is not stored). */
  cell(
    kind: StateKind,
    owner: string,
    name: string,
    defaults: object | undefined,
    persistedKeys: readonly string[] | undefined,
    self: () => StateOwner,
  ): StateCell {
    const stored = this.#native.loadState(kind, owner, name);
    const onDirty = () => this.#changed(self());
    try {
      const cell = new StateCell(defaults, persistedKeys, stored ?? null, onDirty);
      if (this.#inspects && kind === StateKind.Actor) this.#show(owner, name, cell);
      return cell;
    } catch (error) {
      // Unreadable stored state (damaged, or written by a newer Node): serve the defaults rather
      // than refuse the actor forever, and say so loudly. The bytes stay until the state changes.
      this.#log.error(`the stored state of ${owner} "${name}" cannot be read; starting from the defaults:`, error);
      return new StateCell(defaults, persistedKeys, null, onDirty);
    }
  }

  /** Shows the inspector an actor's state. */
  #show(owner: string, name: string, cell: StateCell): void {
    try {
      this.#native.showState(owner, name, inspectable(cell.state));
    } catch (error) {
      this.#log.error(`the inspector cannot show the state of ${owner} "${name}":`, error);
    }
  }

  #changed(owner: StateOwner): void {
    if (owner.destroyed) return;
    this.#native.stateChanged();
    this.#dirty.add(owner);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.commit());
    }
  }

  /** Runs `onStateChange` of every dirty owner, then writes every dirty state in one batch
   * (call it before an owner leaves the heap, too). */
  commit(): void {
    this.#scheduled = false;
    if (this.#dirty.size === 0) return;
    for (const owner of this.#dirty) if (!owner.destroyed) owner.stateChanged?.();
    const retried = new Set(this.#unstored);
    const owners = new Set([...this.#dirty, ...retried]);
    this.#dirty.clear();
    this.#unstored.clear();
    const writes = [];
    const included: StateOwner[] = [];
    for (const owner of owners) {
      if (owner.destroyed || (!owner.cell.dirty && !retried.has(owner))) continue;
      let bytes: Uint8Array;
      try {
        bytes = owner.cell.snapshot();
      } catch (error) {
        // Only a write that bypassed the state proxy can make a snapshot fail; the others commit.
        this.#log.error(`cannot store the state of ${owner.owner} "${owner.name}":`, error);
        continue;
      }
      writes.push({ kind: owner.kind, owner: owner.owner, name: owner.name, value: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes) });
      included.push(owner);
    }
    if (this.#log.enabled) this.#log.debug(`commit: ${writes.length} state(s)`);
    if (this.#inspects) {
      for (const owner of included) if (owner.kind === StateKind.Actor) this.#show(owner.owner, owner.name, owner.cell);
    }
    try {
      this.#native.commitState(writes);
    } catch (error) {
      for (const owner of included) this.#unstored.add(owner);
      this.#log.error(`${writes.length} state(s) could not be stored; they are written again with the next commit:`, error);
    }
  }
}
