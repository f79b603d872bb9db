import type { Guardrails } from './document.js';

/**
 * What the workers observed over a window, for one side (the cohort or the baseline): events
 * in, dead-lettered, dropped (in but neither stored nor dead-lettered), differing from the
 * active version's output (compare only), and processing time in ms.
 */
export interface Tally {
  events: number;
  dead: number;
  dropped: number;
  /** Events compared with the active version, and how many differed (diff rate = diffs / compared). */
  compared: number;
  diffs: number;
  costMs: number;
}

export const EMPTY_TALLY: Tally = { events: 0, dead: 0, dropped: 0, compared: 0, diffs: 0, costMs: 0 };

export function addTally(a: Tally, b: Tally): Tally {
  return { events: a.events + b.events, dead: a.dead + b.dead, dropped: a.dropped + b.dropped, compared: a.compared + b.compared, diffs: a.diffs + b.diffs, costMs: a.costMs + b.costMs };
}

export type GuardrailName = 'dead_letter_rate' | 'drop_rate' | 'diff_rate' | 'cost_per_event_ms';

/** One guardrail's numbers: both sides' values, the excess, the tolerance, the sample sizes. */
export interface Check {
  guardrail: GuardrailName;
  cohort: number;
  baseline: number;
  /** cohort − baseline. */
  excess: number;
  tolerance: number;
  cohort_events: number;
  baseline_events: number;
  /** The cohort's excess is over the tolerance, whether or not there were enough events to judge. */
  over_tolerance: boolean;
  /** Over the tolerance on enough events (min_events): the rollout rolls back. False in a hold for too few events. */
  breached: boolean;
}

/**
 * pass: every guardrail within tolerance on enough events; hold: too few events to judge
 * (the reason says how many there are and how many are needed); breach: some guardrail over
 * its tolerance on enough events.
 */
export interface Judgement {
  verdict: 'pass' | 'hold' | 'breach';
  reason: string;
  checks: Check[];
}

const rate = (n: number, d: number): number => (d === 0 ? 0 : n / d);

/**
 * Compares the cohort with the baseline in the same minutes. A guardrail is breached when
 * the cohort's value exceeds the baseline's by more than its tolerance (not a static
 * threshold: a baseline that dead-letters 2% lets a cohort at 2.05% pass a 0.001 tolerance).
 * The diff rate's baseline is 0 (the active version compared with itself).
 *
 * Too few events in the cohort or in the baseline (`min_events`) is a hold, even when
 * the numbers so far look bad: a verdict on a handful of events is noise. Exception: a
 * cohort without a baseline (share 100 leaves none) is judged against its own tolerance alone.
 */
export function judge(g: Guardrails, cohort: Tally, baseline: Tally | null): Judgement {
  const base = baseline ?? EMPTY_TALLY;
  const checks: Check[] = [];
  const add = (guardrail: GuardrailName, tolerance: number | undefined, c: number, b: number, cn: number, bn: number) => {
    if (tolerance === undefined) return;
    const excess = c - b;
    const over = excess > tolerance + 1e-12;
    checks.push({ guardrail, cohort: c, baseline: b, excess, tolerance, cohort_events: cn, baseline_events: bn, over_tolerance: over, breached: over });
  };
  add('dead_letter_rate', g.dead_letter_rate, rate(cohort.dead, cohort.events), rate(base.dead, base.events), cohort.events, base.events);
  add('drop_rate', g.drop_rate, rate(cohort.dropped, cohort.events), rate(base.dropped, base.events), cohort.events, base.events);
  add('diff_rate', g.diff_rate, rate(cohort.diffs, cohort.compared), 0, cohort.compared, cohort.compared);
  add('cost_per_event_ms', g.cost_per_event_ms, rate(cohort.costMs, cohort.events), rate(base.costMs, base.events), cohort.events, base.events);
  const short: string[] = [];
  if (cohort.events < g.min_events) short.push(`the cohort has ${cohort.events} events`);
  if (baseline !== null && base.events < g.min_events) short.push(`the baseline has ${base.events} events`);
  if (g.diff_rate !== undefined && cohort.events >= g.min_events && cohort.compared < g.min_events) short.push(`${cohort.compared} events were compared`);
  if (short.length > 0) {
    // A baseline that stays empty while the cohort has enough will stay empty: say why and what to do.
    const why =
      baseline !== null && base.events === 0 && cohort.events >= g.min_events
        ? ': every event of the window went to the cohort (an operator rollout whose cohort step names every tenant that sends, say), so there is nothing to compare it with; name fewer tenants in the cohort step, or advance by hand (sluice rollout advance ID)'
        : '';
    // Nothing is breached on too few events (a check over its tolerance says so in over_tolerance).
    return { verdict: 'hold', reason: `too few events to judge: ${short.join(', ')}; min_events is ${g.min_events}${why}`, checks: checks.map((c) => ({ ...c, breached: false })) };
  }
  const breached = checks.filter((c) => c.breached);
  if (breached.length > 0) {
    const what = breached.map((c) => `${c.guardrail} ${fmt(c.cohort)} vs baseline ${fmt(c.baseline)} (excess ${fmt(c.excess)} > tolerance ${fmt(c.tolerance)})`);
    return { verdict: 'breach', reason: `guardrail breached: ${what.join('; ')}`, checks };
  }
  return { verdict: 'pass', reason: checks.length === 0 ? 'no guardrails set' : 'every guardrail within its tolerance', checks };
}

function fmt(x: number): string {
  return Number(x.toPrecision(4)).toString();
}
