import type { ManualClock } from '../../src/core/clock.js';
import { EMPTY_TALLY, type Tally } from '../../src/rollout/guardrails.js';
import { evaluate, type Rollout } from '../../src/rollout/machine.js';

/** A minute in ms: the controller's period in these tests. */
export const MIN = 60_000;

/** Healthy traffic: `n` events on each side, nothing lost. */
export const healthy = (n: number): Tally => ({ ...EMPTY_TALLY, events: n, compared: n });

/**
 * Runs the controller every minute of `clock` for `minutes`, feeding it what `observe` answers
 * (the cohort's tally, then the baseline's; the baseline is not passed at a share of 100).
 */
export async function drive(clock: ManualClock, r: Rollout, minutes: number, observe: (r: Rollout) => [Tally, Tally | null]): Promise<Rollout> {
  for (let i = 0; i < minutes; i++) {
    await clock.advance(MIN);
    const [c, b] = observe(r);
    r = evaluate(r, clock.now(), c, r.share >= 100 ? null : b);
  }
  return r;
}
