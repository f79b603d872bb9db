import { burnRate, figure, type MinuteLookup } from './evaluate.js';
import type { SloRule } from './rules.js';

/**
 * An SLO's error budget over its period ending at `end` (pure). The budget is the bad events
 * the objective allows: (1 − objective) × total; `remaining` is the fraction of it not spent,
 * 1 − bad / budget (negative once overspent; null with no events). Per bucket, the burn rate is
 * (bad / total) / (1 − objective), as in the alert windows. Derived figures are rounded to 12
 * significant digits (see `figure`).
 */
export interface Budget {
  from: number;
  to: number;
  objective: number;
  total: number;
  bad: number;
  /** Bad events allowed over the period at this traffic. */
  allowed: number;
  remaining: number | null;
  buckets: { start: number; total: number; bad: number; burn_rate: number | null }[];
}

/** `total` and `bad` are keyed by the start of a minute or of any step that divides the buckets (`stepMs`). */
export function budgetOf(rule: SloRule, total: MinuteLookup, bad: MinuteLookup, end: number, bucketMs: number, stepMs = 60_000): Budget {
  const from = end - rule.period;
  const buckets: Budget['buckets'] = [];
  let t = 0;
  let b = 0;
  for (let start = from; start < end; start += bucketMs) {
    let bt = 0;
    let bb = 0;
    for (let m = start; m < Math.min(end, start + bucketMs); m += stepMs) {
      bt += total.get(m) ?? 0;
      bb += bad.get(m) ?? 0;
    }
    t += bt;
    b += bb;
    buckets.push({ start, total: bt, bad: bb, burn_rate: bt > 0 ? burnRate(bb / bt, rule.objective) : null });
  }
  // To 12 significant digits: (1 − 0.999) × 3 is 0.0030000000000000027 in binary.
  const allowed = figure((1 - rule.objective) * t);
  return { from, to: end, objective: rule.objective, total: t, bad: b, allowed, remaining: t > 0 ? figure(1 - b / allowed) : null, buckets };
}
