import { formatDuration } from './rule-fields.js';
import { burnSlo, severitiesOf, type BuiltinRule, type ConditionOp, type Rule, type Severity, type SloRule, type ThresholdRule } from './rules.js';

/**
 * Evaluating a rule at one instant (pure): the windows end at `end`, a whole minute at or
 * before the tenant's watermark, so every window holds complete data only. The inputs are
 * exact per-minute numbers (from the store's per-minute data), keyed by the minute's start
 * (epoch ms); a minute that is absent counted nothing.
 *
 * A window of length w ending at `end` is the minutes [end − w, end).
 */

const MINUTE = 60_000;

/** Per minute of event time: how many events a side of an SLO counted. */
export type MinuteSeries = Map<number, number>;

/** Reads a per-minute number by the minute's start; undefined (or absent) counts as 0. */
export interface MinuteLookup<T = number> {
  get(minute: number): T | undefined;
  /**
   * Optional: the sum of `get` over the whole minutes [from, to) (both minute starts), exactly
   * what adding them one by one gives (the series kept between passes answer it from prefix
   * sums: a 3-day window is one subtraction instead of 4,320 reads).
   */
  sum?(from: number, to: number): number;
}

/** What an SLO is evaluated on: the per-minute counts of its total and of its bad (or good) side. */
export interface SloSeries {
  total: MinuteSeries;
  /** Bad events per minute; for a rule written with `good`, total − good (computed by the caller). */
  bad: MinuteSeries;
}

/** SloSeries as the evaluation reads it: the maps of a query, or the series kept between passes. */
export interface SloData {
  total: MinuteLookup;
  bad: MinuteLookup;
}

/**
 * A threshold rule's measure per minute, as partial aggregates that merge over a window:
 * count, sum, min and max. Measures that do not merge (avg, quantiles, distinct counts) are
 * evaluated by a query over the whole window instead (see WindowMeasure).
 */
export interface MinutePartial {
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
}

/** The measure of a threshold rule over one whole window, and the events it saw. */
export interface WindowMeasure {
  value: number | null;
  events: number;
}

/** The numbers behind a verdict, one per window looked at. */
export interface WindowFigure {
  /** `"1h"`, `"5m"`… */
  window: string;
  bad: number;
  total: number;
  /** bad / total; null for an empty window. */
  ratio: number | null;
  /** ratio / (1 − objective); null for an empty window. */
  burn_rate: number | null;
  /** The factor the burn rate is compared with. */
  threshold: number;
}

export type Condition = 'firing' | 'ok' | 'insufficient';

export interface Verdict {
  severity: Severity;
  condition: Condition;
  /** SLO: the figures of every window of this severity. */
  windows: WindowFigure[];
  /**
   * Threshold: the measure over the window, the events it saw and what it was compared with.
   * A built-in rule's signal gives its window (`now` for a reading with no window) and, for a
   * ratio, `bad` of `events`; a signal that counts no events (the conservation gap) has no `events`.
   */
  value?: { measure: string; window: string; value: number | null; events?: number; bad?: number; op: ConditionOp; threshold: number };
  /** Why the alert changed state other than by an evaluation (`"rule deleted"`). */
  reason?: string;
}

/**
 * A built-in rule's signal as read now: the value (null: unknown, or too few events to judge),
 * the window it covers (`now` for a point reading such as freshness; `1h` for the conservation
 * gap, summed over the settled minutes of the conservation check's window) and, for a ratio,
 * the events it counted and how many of them were bad. `events` is absent for a signal that
 * counts no events (the conservation gap).
 */
export interface SignalReading {
  value: number | null;
  window: string;
  events?: number;
  bad?: number;
}

function sum(series: MinuteLookup, from: number, to: number): number {
  if (series.sum && from % MINUTE === 0 && to % MINUTE === 0) return series.sum(from, to);
  let n = 0;
  for (let m = from; m < to; m += MINUTE) n += series.get(m) ?? 0;
  return n;
}

/**
 * A derived figure (a burn rate, an allowed number of bad events) to 12 significant digits:
 * `1 − objective` is not exact in binary (1 − 0.999 = 0.0010000000000000009), and the noise it
 * leaves (a burn rate of 9.999999999999991 for exactly 10) is neither shown nor compared.
 */
export function figure(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(12)) : x;
}

/** The burn rate of a bad ratio: ratio / (1 − objective), to 12 significant digits. */
export function burnRate(ratio: number, objective: number): number {
  return figure(ratio / (1 - objective));
}

/** The figure of one window of an SLO ending at `end`, from window sums. */
export function windowFigure(rule: SloRule, length: number, bad: number, total: number, factor: number): WindowFigure {
  const ratio = total > 0 ? bad / total : null;
  return { window: formatDuration(length), bad, total, ratio, burn_rate: ratio === null ? null : burnRate(ratio, rule.objective), threshold: factor };
}

/**
 * The SLO's verdicts at `end`, one per severity, from per-window sums. `windowSums(length)`
 * gives the bad and total counts of [end − length, end). A condition fires when both of its
 * windows burn faster than its factor (strictly, as the workbook's `>`; the burn rates are
 * compared as shown, to 12 significant digits, live and in a backtest alike), each window with at
 * least `min_events` events; a severity is firing when any of its conditions fires, else
 * insufficient when any of its conditions lacks events, else ok.
 */
export function sloVerdicts(rule: SloRule, windowSums: (length: number) => { bad: number; total: number }): Verdict[] {
  return severitiesOf(rule).map((severity) => {
    const windows: WindowFigure[] = [];
    let firing = false;
    let insufficient = false;
    for (const w of rule.windows.filter((x) => x.severity === severity)) {
      const long = windowSums(w.long);
      const short = windowSums(w.short);
      const fl = windowFigure(rule, w.long, long.bad, long.total, w.factor);
      const fs = windowFigure(rule, w.short, short.bad, short.total, w.factor);
      windows.push(fl, fs);
      if (long.total < rule.minEvents || short.total < rule.minEvents || long.total === 0 || short.total === 0) insufficient = true;
      else if (fl.burn_rate! > w.factor && fs.burn_rate! > w.factor) firing = true;
    }
    return { severity, condition: firing ? 'firing' : insufficient ? 'insufficient' : 'ok', windows };
  });
}

/** The SLO's verdicts at `end`, summing the per-minute series directly (the live path). */
export function evaluateSlo(rule: SloRule, series: SloData, end: number): Verdict[] {
  return sloVerdicts(rule, (length) => ({ bad: sum(series.bad, end - length, end), total: sum(series.total, end - length, end) }));
}

export function compare(op: ConditionOp, a: number, b: number): boolean {
  switch (op) {
    case 'gt':
      return a > b;
    case 'gte':
      return a >= b;
    case 'lt':
      return a < b;
    case 'lte':
      return a <= b;
    case 'eq':
      return a === b;
    case 'neq':
      return a !== b;
  }
}

/**
 * A threshold rule's verdict from its measure over the window. A window with fewer than
 * `min_events` events is insufficient; a measure with no value (an average of no events) is
 * insufficient too, except a count, which is 0.
 */
export function thresholdVerdict(rule: ThresholdRule, m: WindowMeasure): Verdict {
  const value = rule.query.measure.kind === 'count' ? m.events : m.value;
  const insufficient = m.events < rule.minEvents || value === null;
  return {
    severity: rule.severity,
    condition: insufficient ? 'insufficient' : compare(rule.condition.op, value, rule.condition.value) ? 'firing' : 'ok',
    windows: [],
    value: { measure: rule.query.measure.name, window: formatDuration(rule.window), value, events: m.events, op: rule.condition.op, threshold: rule.condition.value },
  };
}

/**
 * Whether a threshold rule's measure merges from per-minute partials: count, sum, min, max.
 * An average does not (the events without the field would count in the denominator), nor do
 * quantiles and distinct counts: those are queried over the whole window.
 */
export function mergeable(rule: ThresholdRule): boolean {
  return ['count', 'sum', 'min', 'max'].includes(rule.query.measure.kind);
}

/** Merges per-minute partials over [from, to) into the rule's measure. */
export function mergeWindow(rule: ThresholdRule, partials: MinuteLookup<MinutePartial>, from: number, to: number): WindowMeasure {
  let count = 0;
  let total = 0;
  let min: number | null = null;
  let max: number | null = null;
  for (let m = from; m < to; m += MINUTE) {
    const p = partials.get(m);
    if (!p) continue;
    count += p.count;
    total += p.sum;
    if (p.min !== null) min = min === null ? p.min : Math.min(min, p.min);
    if (p.max !== null) max = max === null ? p.max : Math.max(max, p.max);
  }
  switch (rule.query.measure.kind) {
    case 'count':
      return { value: count, events: count };
    case 'sum':
      return { value: total, events: count };
    case 'min':
      return { value: min, events: count };
    case 'max':
      return { value: max, events: count };
    default:
      throw new Error(`measure ${rule.query.measure.kind} does not merge per minute`);
  }
}

/** A built-in rule's verdict from its signal as read now (a null value: unknown, insufficient). */
export function builtinVerdict(rule: BuiltinRule, reading: SignalReading | null): Verdict {
  const r = reading ?? { value: null, window: 'now', events: 0 };
  const value = r.value;
  return {
    severity: rule.severity,
    condition: value === null ? 'insufficient' : compare(rule.condition.op, value, rule.condition.value) ? 'firing' : 'ok',
    windows: [],
    value: { measure: rule.signal, window: r.window, value, ...(r.events === undefined ? {} : { events: r.events }), ...(r.bad === undefined ? {} : { bad: r.bad }), op: rule.condition.op, threshold: rule.condition.value },
  };
}

/** The verdicts of any rule at `end` from its data (live path). */
export function evaluate(rule: Rule, data: RuleData, end: number): Verdict[] {
  if (rule.kind === 'slo') return evaluateSlo(rule, data.slo!, end);
  if (rule.kind === 'builtin' && rule.burn) return evaluateSlo(burnSlo(rule), data.slo!, end);
  if (rule.kind === 'builtin') return [builtinVerdict(rule, data.signal ?? null)];
  const m = data.partials ? mergeWindow(rule, data.partials, end - rule.window, end) : data.window!(end);
  return [thresholdVerdict(rule, m)];
}

/** A rule's data over a span of minutes: SLO series, threshold partials, or (for measures that do not merge) a window measure per end. */
export interface RuleData {
  slo?: SloData;
  partials?: MinuteLookup<MinutePartial>;
  window?: (end: number) => WindowMeasure;
  /** A built-in rule's signal now. */
  signal?: SignalReading | null;
  /** Fetches the window measures of these ends before `window` is called for them; stops (throwing the reason) once `signal` aborts. */
  prefetch?: (ends: number[], signal?: AbortSignal) => Promise<void>;
}
