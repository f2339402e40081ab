/**
 * Keeps an actor's lifecycle in order. A gating step (`onInit`, `onConnect`) that returns a
 * promise holds every later step of the same actor until it settles; other steps (handlers)
 * run at once and may overlap at their own awaits, as calls do in Rivet.
 */

type Step = () => unknown;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

export class Gate {
  /** Steps waiting for a gating step; null while nothing is pending. */
  #waiting: Array<[Step, boolean]> | null = null;

  run(step: Step, gating: boolean): void {
    if (this.#waiting !== null) {
      this.#waiting.push([step, gating]);
      return;
    }
    this.#execute(step, gating);
  }

  #execute(step: Step, gating: boolean): void {
    const result = step();
    if (gating && isThenable(result)) {
      this.#waiting = [];
      result.then(this.#resume, this.#resume);
    }
  }

  #resume = (): void => {
    const waiting = this.#waiting ?? [];
    this.#waiting = null;
    while (waiting.length > 0) {
      const [step, gating] = waiting.shift()!;
      this.#execute(step, gating);
      if (this.#waiting !== null) {
        (this.#waiting as Array<[Step, boolean]>).push(...waiting);
        return;
      }
    }
  };
}
