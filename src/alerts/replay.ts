import { evaluate, mergeWindow, sloVerdicts, thresholdVerdict, type MinuteLookup, type RuleData, type Verdict } from './evaluate.js';
import { forOf, initialState, step, type AlertState, type Transition } from './state.js';
import { lookback, severitiesOf, type Rule, type Severity } from './rules.js';

const MINUTE = 60_000;

/**
 * Stepping a rule's alerts through a run of window ends (pure). The live evaluation calls
 * `advance` with every whole minute the watermark passed since the last evaluation; a
 * backtest calls `backtest` over a span of history. Both step the same state machine, one
 * minute at a time, so a backtest shows what the live evaluation would have done.
 */

export type AlertStates = Map<Severity, AlertState>;

/** The whole minutes m with after < m ≤ until. */
export function minuteEnds(after: number, until: number): number[] {
  const out: number[] = [];
  for (let m = Math.floor(after / MINUTE) * MINUTE + MINUTE; m <= until; m += MINUTE) out.push(m);
  return out;
}

/** Steps every alert of `rule` through `ends` (ascending), evaluating each end with `verdicts`. */
export function stepThrough(
  tenant: string,
  rule: Rule,
  prev: AlertStates | null,
  ends: number[],
  verdicts: (end: number) => Verdict[],
): { states: AlertStates; transitions: Transition[] } {
  const states: AlertStates = new Map();
  for (const s of severitiesOf(rule)) {
    const p = prev?.get(s);
    const fresh = initialState(tenant, rule, s, ends[0] ?? 0);
    // A changed rule keeps its alerts' states, with its current labels and annotations.
    states.set(s, p ? { ...p, labels: fresh.labels, annotations: fresh.annotations, fingerprint: fresh.fingerprint } : fresh);
  }
  const transitions: Transition[] = [];
  for (const end of ends) {
    for (const v of verdicts(end)) {
      const { next, transition } = step(states.get(v.severity)!, v, end, forOf(rule));
      states.set(v.severity, next);
      if (transition) transitions.push(transition);
    }
  }
  return { states, transitions };
}

/** The live path: the rule's data covers [ends[0] − lookback, last end). */
export function advance(tenant: string, rule: Rule, prev: AlertStates | null, data: RuleData, ends: number[]) {
  return stepThrough(tenant, rule, prev, ends, (end) => evaluate(rule, data, end));
}

/** Prefix sums of a per-minute series over [from, to): sum over [a, b) in O(1). */
function prefix(series: MinuteLookup, from: number, to: number): (a: number, b: number) => number {
  const n = Math.max(0, (to - from) / MINUTE);
  const acc = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) acc[i + 1] = acc[i]! + (series.get(from + i * MINUTE) ?? 0);
  const idx = (t: number): number => Math.min(n, Math.max(0, (t - from) / MINUTE));
  return (a, b) => acc[idx(b)]! - acc[idx(a)]!;
}

/**
 * What the rule's alerts would have done over the window ends in (from, to], from data that
 * covers [from − lookback, to). SLOs and counts use prefix sums (a week of minutes is cheap);
 * other measures merge per-minute partials or call the window measure per end.
 */
export function backtest(tenant: string, rule: Rule, data: RuleData, from: number, to: number): { states: AlertStates; transitions: Transition[] } {
  const ends = minuteEnds(from, to);
  const start = (ends[0] ?? to) - lookback(rule) - MINUTE;
  if (rule.kind === 'slo') {
    const bad = prefix(data.slo!.bad, start, to);
    const total = prefix(data.slo!.total, start, to);
    return stepThrough(tenant, rule, null, ends, (end) => sloVerdicts(rule, (length) => ({ bad: bad(end - length, end), total: total(end - length, end) })));
  }
  if (rule.kind === 'builtin') throw new Error('built-in rules watch the pipeline now: they have no history to backtest');
  if (data.partials && rule.query.measure.kind === 'count') {
    const partials = data.partials;
    const c = prefix({ get: (m) => partials.get(m)?.count }, start, to);
    return stepThrough(tenant, rule, null, ends, (end) => {
      const n = c(end - rule.window, end);
      return [thresholdVerdict(rule, { value: n, events: n })];
    });
  }
  if (data.partials) return stepThrough(tenant, rule, null, ends, (end) => [thresholdVerdict(rule, mergeWindow(rule, data.partials!, end - rule.window, end))]);
  return stepThrough(tenant, rule, null, ends, (end) => [thresholdVerdict(rule, data.window!(end))]);
}
