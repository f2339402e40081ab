/**
 * Keeps an actor's (or a room's) lifecycle in order. A holding step (`onInit`, `onConnect`) that
 * returns a promise holds every later step of the same actor until it settles; other steps
 * (handlers) run at once and may overlap at their own awaits, as calls do in Rivet.
 *
 * Not to be confused with the native output gate, which holds frames until state is durable:
 * this orders JS hooks only.
 *
 * An actor record is an `Ordering` itself (one object less per actor), and an idle one holds one
 * null field here: the closure that resumes the waiting steps is made only when a step holds.
 */

import { isThenable } from "./guard";

type Step = () => unknown;

export class Ordering {
  /** Steps waiting for a holding step; null while nothing is pending. */
  #waiting: Array<[Step, boolean]> | null = null;

  /** Runs `step` now, or after the pending holding step; `holds`: a promise it returns holds later steps. */
  run(step: Step, holds: boolean): void {
    if (this.#waiting !== null) {
      this.#waiting.push([step, holds]);
      return;
    }
    this.#execute(step, holds);
  }

  #execute(step: Step, holds: boolean): void {
    const result = step();
    if (holds && isThenable(result)) {
      this.#waiting = [];
      const resume = () => this.#resume();
      result.then(resume, resume);
    }
  }

  #resume(): void {
    const waiting = this.#waiting ?? [];
    this.#waiting = null;
    while (waiting.length > 0) {
      const [step, holds] = waiting.shift()!;
      this.#execute(step, holds);
      if (this.#waiting !== null) {
        (this.#waiting as Array<[Step, boolean]>).push(...waiting);
        return;
      }
    }
  }
}
