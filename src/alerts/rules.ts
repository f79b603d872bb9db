import { bad, checkKeys, DAY, formatDuration, HOUR, MINUTE, object, parseDuration, stringMap } from './rule-fields.js';
import { parseFilters, parseMeasures, type Filter, type Measure } from '../core/query.js';

/**
 * Alert rules, parsed and validated (pure). Two kinds:
 *
 * - `slo`: an objective over a ratio of events (bad / total), alerted by multi-window,
 *   multi-burn-rate conditions. Defaults from the Google SRE workbook, "Alerting on SLOs",
 *   table 5-8 (https://sre.google/workbook/alerting-on-slos/): page at 14.4× over 1 h and
 *   5 m, or 6× over 6 h and 30 m; ticket at 3× over 1 d and 2 h, or 1× over 3 d and 6 h.
 *   A burn rate is (bad / total) / (1 − objective): 1× spends the budget in exactly the period.
 * - `threshold`: one measure of a query over a sliding window compared with a value, for
 *   `for` before it fires ("checkout count below 10 in 15 m", "p95 above 800 ms", "no events
 *   of this type for 15 m" = count lt 1).
 *
 * Low traffic: a window with fewer than `min_events` events cannot decide; the alert is then
 * `insufficient_data` (shown and counted, never green, never paging). The SLO default of 100
 * keeps a single bad event from paging: at a 99.9 % objective the page threshold is a bad ratio
 * of 1.44 %, which one bad event reaches only in a window of fewer than 70 events.
 */

export type Severity = 'page' | 'ticket';
export const SEVERITIES: readonly Severity[] = ['page', 'ticket'];

/** Which events a side of an SLO counts: an event type and filters, as in `POST /v1/query`. */
export interface Selector {
  event: string | null;
  filters: Filter[];
}

/** One multi-window condition: fires when both windows burn faster than `factor`. Durations in ms. */
export interface BurnWindow {
  severity: Severity;
  long: number;
  short: number;
  factor: number;
}

export interface SloRule {
  kind: 'slo';
  name: string;
  /** The fraction of good events promised, 0 < objective < 1. */
  objective: number;
  /** The budget period, ms (default 30 d). */
  period: number;
  total: Selector;
  /** Exactly one of bad and good. */
  bad: Selector | null;
  good: Selector | null;
  minEvents: number;
  windows: BurnWindow[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export type ConditionOp = 'gt' | 'gte' | 'lt' | 'lte' | 'eq' | 'neq';
export const CONDITION_OPS: readonly ConditionOp[] = ['gt', 'gte', 'lt', 'lte', 'eq', 'neq'];

export interface ThresholdRule {
  kind: 'threshold';
  name: string;
  query: { event: string | null; filters: Filter[]; measure: Measure };
  /** The sliding window the measure is computed over, ms. */
  window: number;
  condition: { op: ConditionOp; value: number };
  /** How long the condition must hold before the alert fires, ms (0: at once). */
  for: number;
  severity: Severity;
  /** Events in the window below which the rule cannot decide (default 0: a count of 0 is an answer). */
  minEvents: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/**
 * A rule sluice keeps for every tenant, on pipeline signals rather than on its events:
 * - `freshness`: seconds the tenant's watermark is behind the wall clock;
 * - `conservation_gap`: events received but not accounted for (stored, dead-lettered,
 *   rejected or duplicate) in the settled minutes of the conservation check;
 * - `dead_letter_ratio`: over the last hour, events dead-lettered for a pipeline fault
 *   (`poison`, `invalid_row`, `enrich_failed`: not the producer's doing), by when they were
 *   dead-lettered, over those plus the events stored with an event time in that hour; unknown
 *   (insufficient data) below 100 events.
 * - `ingest_availability`: an SLO on the share of ingest requests not answered 5xx (the
 *   server's fault: an error, or refused as saturated), per minute of receipt, with burn-rate
 *   windows (`burn`); by default 99.9 % and the SRE workbook's two page conditions (14.4× over
 *   1 h and 5 m, 6× over 6 h and 30 m), at least 100 requests per window. 429s (the tenant's
 *   quota) and 4xx (the producer's request) are not failures.
 * The first three are evaluated on the wall clock at each pass (not at window ends: a stalled
 * watermark is what freshness watches); ingest availability steps through every minute of
 * receipt that every ingest process has written (INGEST_SETTLE_MS after its end). On by
 * default (BUILTIN_RULES); a PUT with the same name changes one, `"enabled": false` turns it off.
 */
export interface BuiltinRule {
  kind: 'builtin';
  name: string;
  signal: BuiltinSignal;
  condition: { op: ConditionOp; value: number };
  for: number;
  severity: Severity;
  enabled: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** For `ingest_availability`: the objective and burn-rate conditions (`condition` is unused). */
  burn: { objective: number; windows: BurnWindow[]; minEvents: number } | null;
}

export type BuiltinSignal = 'freshness' | 'conservation_gap' | 'dead_letter_ratio' | 'ingest_availability';

export type Rule = SloRule | ThresholdRule | BuiltinRule;

/** The built-in rules of every tenant, as their defaults (the issue's: freshness 5 min behind for 10 min pages; pipeline dead letters above 1 % ticket; any conservation gap pages). */
export const BUILTIN_RULES: Readonly<Record<string, Record<string, unknown>>> = {
  sluice_freshness: {
    kind: 'builtin',
    signal: 'freshness',
    condition: { op: 'gt', value: 300 },
    for: '10m',
    severity: 'page',
    annotations: { summary: 'the watermark is more than 5 minutes behind: queries and alerts see old data' },
  },
  sluice_dead_letter_ratio: {
    kind: 'builtin',
    signal: 'dead_letter_ratio',
    condition: { op: 'gt', value: 0.01 },
    for: '0s',
    severity: 'ticket',
    annotations: { summary: 'more than 1 % of events fail in the pipeline (poison, invalid rows, enrichers): see GET /v1/dlq/groups' },
  },
  sluice_ingest_availability: {
    kind: 'builtin',
    signal: 'ingest_availability',
    objective: 0.999,
    windows: [
      { severity: 'page', long: '1h', short: '5m', factor: 14.4 },
      { severity: 'page', long: '6h', short: '30m', factor: 6 },
    ],
    min_events: 100,
    annotations: { summary: 'ingest requests are failing (5xx or refused as saturated) fast enough to spend the 99.9 % budget: producers are losing events or retrying' },
  },
  sluice_conservation_gap: {
    kind: 'builtin',
    signal: 'conservation_gap',
    condition: { op: 'neq', value: 0 },
    for: '0s',
    severity: 'page',
    annotations: { summary: 'events were received but are neither stored, dead-lettered, rejected nor duplicates' },
  },
};


/** The SRE workbook's multi-window, multi-burn-rate conditions (table 5-8). */
export const DEFAULT_WINDOWS: readonly BurnWindow[] = [
  { severity: 'page', long: HOUR, short: 5 * MINUTE, factor: 14.4 },
  { severity: 'page', long: 6 * HOUR, short: 30 * MINUTE, factor: 6 },
  { severity: 'ticket', long: DAY, short: 2 * HOUR, factor: 3 },
  { severity: 'ticket', long: 3 * DAY, short: 6 * HOUR, factor: 1 },
];

export const SLO_DEFAULTS = { period: 30 * DAY, minEvents: 100 } as const;

/** Rule names: 1-63 of letters, digits, "_", "-", ".", starting with a letter (they become the `alertname` label). */
export const RULE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/;

/** The longest window a rule looks at, ms. */
export function lookback(rule: Rule): number {
  const windows = rule.kind === 'slo' ? rule.windows : rule.kind === 'builtin' ? rule.burn?.windows : undefined;
  return windows ? Math.max(...windows.map((w) => w.long)) : rule.kind === 'threshold' ? rule.window : 0;
}

/** A built-in burn-rate rule as the SLO it evaluates (its total and bad sides come from the ingest minutes, not from queries). */
export function burnSlo(rule: BuiltinRule): SloRule {
  const b = rule.burn!;
  const none: Selector = { event: null, filters: [] };
  return { kind: 'slo', name: rule.name, objective: b.objective, period: SLO_DEFAULTS.period, total: none, bad: none, good: null, minEvents: b.minEvents, windows: b.windows, labels: rule.labels, annotations: rule.annotations };
}

function minEvents(v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 1e9) throw bad('min_events', '"min_events" must be an integer from 0 to 1000000000');
  return v;
}

function selector(v: unknown, field: string): Selector {
  const o = object(v, field);
  checkKeys(o, ['event', 'filters'], field);
  if (o.event !== undefined && o.event !== null && (typeof o.event !== 'string' || o.event.length === 0 || o.event.length > 200)) {
    throw bad(`${field}.event`, `"${field}.event" must be an event type (a non-empty string of at most 200 characters)`);
  }
  return { event: (o.event as string | undefined) ?? null, filters: parseFilters(o.filters, `${field}.filters`) };
}

function severity(v: unknown, field: string, fallback?: Severity): Severity {
  if (v === undefined && fallback) return fallback;
  if (v !== 'page' && v !== 'ticket') throw bad(field, `"${field}" must be "page" or "ticket"`);
  return v;
}

/** A condition fires only when its burn rate is above its factor; float noise within this much of the limit counts as at it. */
const EPSILON = 1e-9;

/**
 * An SLO's conditions (`v`, or the SRE workbook's when absent). `defaulted`: the user sent no
 * `windows` (a built-in rule's defaults are passed as `v`): a refusal then says so.
 */
function burnWindows(v: unknown, objective: number, strict: boolean, defaulted = v === undefined || v === null): BurnWindow[] {
  const list = v === undefined || v === null ? DEFAULT_WINDOWS.map((w) => ({ ...w })) : null;
  const out: BurnWindow[] = list ?? [];
  if (!list) {
    if (!Array.isArray(v) || v.length === 0 || v.length > 8) throw bad('windows', '"windows" must be a list of 1 to 8 {severity, long, short, factor}');
    v.forEach((w: unknown, i) => {
      const at = `windows[${i}]`;
      const o = object(w, at);
      checkKeys(o, ['severity', 'long', 'short', 'factor'], at);
      const long = parseDuration(o.long, `${at}.long`, { min: MINUTE, wholeMinutes: true });
      const short = parseDuration(o.short, `${at}.short`, { min: MINUTE, wholeMinutes: true });
      if (short > long) throw bad(`${at}.short`, `the short window (${formatDuration(short)}) must not be longer than the long one (${formatDuration(long)})`);
      if (long > 7 * DAY) throw bad(`${at}.long`, 'a window is at most 7d');
      if (typeof o.factor !== 'number' || !(o.factor > 0)) throw bad(`${at}.factor`, `"${at}.factor" must be a number above 0`);
      out.push({ severity: severity(o.severity, `${at}.severity`), long, short, factor: o.factor });
    });
  }
  out.forEach((w, i) => {
    // A condition fires when the burn rate is above its factor (strictly): a factor at or above
    // 1 / (1 − objective) needs a bad ratio above 1, and the condition can never hold. (A rule
    // stored before the limit itself was refused is still read.)
    const needed = w.factor * (1 - objective);
    if (strict ? needed >= 1 - EPSILON : needed > 1) {
      const why = `the ${w.severity} condition at ${w.factor}× over ${formatDuration(w.long)} and ${formatDuration(w.short)} can never fire: with objective ${objective} it fires only on a bad ratio above ${round(needed)}, and a ratio is at most 1 (every event bad)`;
      // Every condition can fire above 1 − 1/(the largest factor).
      const least = 1 - 1 / Math.max(...out.map((x) => x.factor));
      const works = `an objective above ${round(least)} (e.g. ${objectiveAbove(least)})`;
      if (defaulted) {
        const list = out.map((x) => `${x.severity} ${x.factor}× over ${formatDuration(x.long)}/${formatDuration(x.short)}`).join(', ');
        throw bad(
          'objective',
          `${why}. You sent no "windows", so these are the default windows (the SRE workbook's multiwindow, multi-burn-rate alerts: ${list}); "windows" overrides them. Use ${works}, or send "windows" whose factors are below ${round(1 / (1 - objective))}`,
        );
      }
      throw bad(`windows[${i}].factor`, `${why}; use a factor below ${round(1 / (1 - objective))} or ${works}`);
    }
  });
  return out;
}

/** The shortest objective (fewest decimals) above `least` and below 1. */
function objectiveAbove(least: number): number {
  for (let d = 2; d <= 9; d++) {
    const x = Math.ceil(least * 10 ** d) / 10 ** d;
    const y = x > least + EPSILON ? x : x + 10 ** -d;
    if (y < 1) return Number(y.toFixed(d));
  }
  return round(least + 1e-6);
}

function thresholdWindow(v: unknown, strict: boolean): number {
  const ms = parseDuration(v, 'window', { min: MINUTE, wholeMinutes: true });
  if (strict && ms > MAX_WINDOW) throw bad('window', `"window" is at most 7d (as the windows of an SLO's conditions)`);
  return ms;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

const SLO_KEYS = ['kind', 'objective', 'period', 'total', 'bad', 'good', 'min_events', 'windows', 'labels', 'annotations'] as const;
const THRESHOLD_KEYS = ['kind', 'query', 'window', 'condition', 'for', 'severity', 'min_events', 'labels', 'annotations'] as const;

/** The longest window of a threshold rule, as of an SLO's conditions. */
const MAX_WINDOW = 7 * DAY;

/**
 * The longest SLO period: a quarter (90 days), the longest compliance period the SRE workbook
 * uses. A budget is counted hour by hour over its period, so the period bounds the work and
 * memory of every budget and backtest.
 */
export const MAX_PERIOD = 90 * DAY;

function sloPeriod(v: unknown, strict: boolean): number {
  const ms = parseDuration(v, 'period', { min: DAY, wholeMinutes: true });
  if (strict && ms > MAX_PERIOD) throw bad('period', `"period" is at most 90d (a quarter), got "${String(v)}"`);
  return ms;
}

/** The longest `for`: a condition that must hold longer than a day is a budget, not an alert (an SLO). */
const MAX_FOR = DAY;

/** Names starting with this (in any case) are the built-in rules'. */
const RESERVED_PREFIX = 'sluice_';

/** Refuses a user rule under a built-in's name (with another kind) or under the reserved prefix. */
function checkReservedName(name: string, kind: unknown): void {
  const builtin = BUILTIN_RULES[name];
  if (builtin) {
    if (kind === 'builtin') return;
    throw bad(
      'kind',
      `"${name}" is a built-in rule: its name takes only {"kind": "builtin", "signal": "${String(builtin.signal)}", …} (to change its settings or turn it off with "enabled": false), not "kind": ${JSON.stringify(kind)}; give your own rule another name (names starting with "${RESERVED_PREFIX}" are reserved for built-in rules)`,
    );
  }
  if (name.toLowerCase().startsWith(RESERVED_PREFIX)) {
    const same = Object.keys(BUILTIN_RULES).find((n) => n.toLowerCase() === name.toLowerCase());
    throw bad(
      'name',
      `rule names starting with "${RESERVED_PREFIX}" (in any case) are reserved for sluice's built-in rules (${Object.keys(BUILTIN_RULES).join(', ')})${same ? `: did you mean "${same}"? Otherwise choose another name for your rule` : '; choose another name for your rule'}`,
    );
  }
}

/** `for`: whole minutes (or 0s), at most MAX_FOR. */
function parseFor(v: unknown, strict: boolean): number {
  const ms = parseDuration(v, 'for', { wholeMinutes: strict });
  if (strict && ms > MAX_FOR) throw bad('for', `"for" is at most ${formatDuration(MAX_FOR)} (a condition held longer is an error budget: write an SLO)`);
  return ms;
}

export interface ParseRuleOptions {
  /**
   * A rule read back from the catalog: the checks added since it may have been stored (reserved
   * names, the limits of `window` and `for`, a factor exactly at the objective's limit) are not
   * applied, so that a stored rule keeps being evaluated and listed. Default false: a rule
   * declared now gets every check.
   */
  stored?: boolean;
}

/** A rule as `PUT /v1/alerts/rules/:name` declares it. Throws SLUICE_ERR_INVALID_BODY naming the field and the fix. */
export function parseRule(name: string, body: unknown, opts: ParseRuleOptions = {}): Rule {
  const strict = !opts.stored;
  if (!RULE_NAME.test(name)) throw bad('name', `rule name ${JSON.stringify(name)} is not valid: 1-63 letters, digits, "_", "-" or ".", starting with a letter`);
  const o = object(body, 'rule');
  if (strict) checkReservedName(name, o.kind);
  if (o.kind === 'slo') {
    checkKeys(o, SLO_KEYS, '');
    const objective = o.objective;
    if (typeof objective !== 'number' || !(objective > 0 && objective < 1)) throw bad('objective', '"objective" must be a number between 0 and 1 (exclusive), e.g. 0.999');
    if ((o.bad === undefined) === (o.good === undefined)) throw bad('bad', 'give exactly one of "bad" and "good" (the events that spend the budget, or those that do not)');
    return {
      kind: 'slo',
      name,
      objective,
      period: o.period === undefined ? SLO_DEFAULTS.period : sloPeriod(o.period, strict),
      total: selector(o.total, 'total'),
      bad: o.bad === undefined ? null : selector(o.bad, 'bad'),
      good: o.good === undefined ? null : selector(o.good, 'good'),
      minEvents: minEvents(o.min_events, SLO_DEFAULTS.minEvents),
      windows: burnWindows(o.windows, objective, strict),
      labels: stringMap(o.labels, 'labels', true),
      annotations: stringMap(o.annotations, 'annotations', false),
    };
  }
  if (o.kind === 'threshold') {
    checkKeys(o, THRESHOLD_KEYS, '');
    const q = object(o.query, 'query');
    for (const k of ['from', 'to']) if (k in q) throw bad(`query.${k}`, `a rule's query has no "${k}": it is evaluated over "window" ending at the watermark`);
    for (const k of ['group_by', 'interval', 'order_by', 'limit']) if (k in q) throw bad(`query.${k}`, `a rule's query is one number per window: "${k}" is not supported`);
    checkKeys(q, ['event', 'filters', 'measures', 'source'], 'query');
    const measures = parseMeasures(q.measures, ['count']);
    if (measures.length !== 1) throw bad('query.measures', 'a rule\'s query has exactly one measure (the number the condition compares)');
    const sel = selector({ event: q.event, filters: q.filters }, 'query');
    const c = object(o.condition, 'condition');
    checkKeys(c, ['op', 'value'], 'condition');
    if (typeof c.op !== 'string' || !CONDITION_OPS.includes(c.op as ConditionOp)) throw bad('condition.op', `"condition.op" must be one of ${CONDITION_OPS.join(', ')}`);
    if (typeof c.value !== 'number' || !Number.isFinite(c.value)) throw bad('condition.value', '"condition.value" must be a number');
    return {
      kind: 'threshold',
      name,
      query: { ...sel, measure: measures[0]! },
      window: thresholdWindow(o.window, strict),
      condition: { op: c.op as ConditionOp, value: c.value },
      for: o.for === undefined ? 0 : parseFor(o.for, strict),
      severity: severity(o.severity, 'severity', 'page'),
      minEvents: minEvents(o.min_events, 0),
      labels: stringMap(o.labels, 'labels', true),
      annotations: stringMap(o.annotations, 'annotations', false),
    };
  }
  if (o.kind === 'builtin') {
    const defaults = BUILTIN_RULES[name];
    if (!defaults || defaults.signal !== o.signal) {
      throw bad('signal', `built-in rules are ${Object.entries(BUILTIN_RULES).map(([n, r]) => `"${n}" (signal "${String(r.signal)}")`).join(', ')}; "${name}" with signal ${JSON.stringify(o.signal)} is not one`);
    }
    if (o.enabled !== undefined && typeof o.enabled !== 'boolean') throw bad('enabled', '"enabled" must be true or false');
    const common = {
      kind: 'builtin' as const,
      name,
      signal: o.signal as BuiltinSignal,
      enabled: (o.enabled as boolean | undefined) ?? true,
      labels: stringMap(o.labels, 'labels', true),
      annotations: stringMap(o.annotations ?? defaults.annotations, 'annotations', false),
    };
    if (o.signal === 'ingest_availability') {
      checkKeys(o, ['kind', 'signal', 'objective', 'windows', 'min_events', 'enabled', 'labels', 'annotations'], '');
      const objective = o.objective ?? defaults.objective;
      if (typeof objective !== 'number' || !(objective > 0 && objective < 1)) throw bad('objective', '"objective" must be a number between 0 and 1 (exclusive), e.g. 0.999');
      const windows = burnWindows(o.windows ?? defaults.windows, objective, strict, o.windows === undefined || o.windows === null);
      return { ...common, condition: { op: 'gt', value: 0 }, for: 0, severity: windows.some((w) => w.severity === 'page') ? 'page' : 'ticket', burn: { objective, windows, minEvents: minEvents(o.min_events ?? defaults.min_events, SLO_DEFAULTS.minEvents) } };
    }
    checkKeys(o, ['kind', 'signal', 'condition', 'for', 'severity', 'enabled', 'labels', 'annotations'], '');
    const c = object(o.condition ?? defaults.condition, 'condition');
    if (typeof c.op !== 'string' || !CONDITION_OPS.includes(c.op as ConditionOp)) throw bad('condition.op', `"condition.op" must be one of ${CONDITION_OPS.join(', ')}`);
    if (typeof c.value !== 'number' || !Number.isFinite(c.value)) throw bad('condition.value', '"condition.value" must be a number');
    return {
      ...common,
      condition: { op: c.op as ConditionOp, value: c.value },
      for: parseFor(o.for ?? defaults.for, strict),
      severity: severity(o.severity ?? defaults.severity, 'severity'),
      burn: null,
    };
  }
  throw bad('kind', '"kind" must be "slo", "threshold" or "builtin"');
}

function selectorJson(s: Selector): Record<string, unknown> {
  return { event: s.event, filters: s.filters.map((f) => ({ field: f.field.name, op: f.op, value: f.value })) };
}

/** The JSON form of a rule with every default filled in; `parseRule(name, ruleJson(r))` gives `r` back. */
export function ruleJson(r: Rule): Record<string, unknown> {
  if (r.kind === 'slo') {
    return {
      kind: 'slo',
      objective: r.objective,
      period: formatDuration(r.period),
      total: selectorJson(r.total),
      ...(r.bad ? { bad: selectorJson(r.bad) } : { good: selectorJson(r.good!) }),
      min_events: r.minEvents,
      windows: r.windows.map((w) => ({ severity: w.severity, long: formatDuration(w.long), short: formatDuration(w.short), factor: w.factor })),
      labels: r.labels,
      annotations: r.annotations,
    };
  }
  if (r.kind === 'builtin' && r.burn) {
    const b = r.burn;
    return { kind: 'builtin', signal: r.signal, objective: b.objective, windows: b.windows.map((w) => ({ severity: w.severity, long: formatDuration(w.long), short: formatDuration(w.short), factor: w.factor })), min_events: b.minEvents, enabled: r.enabled, labels: r.labels, annotations: r.annotations };
  }
  if (r.kind === 'builtin') {
    return { kind: 'builtin', signal: r.signal, condition: r.condition, for: formatDuration(r.for), severity: r.severity, enabled: r.enabled, labels: r.labels, annotations: r.annotations };
  }
  return {
    kind: 'threshold',
    query: { ...selectorJson(r.query), measures: [r.query.measure.name] },
    window: formatDuration(r.window),
    condition: r.condition,
    for: formatDuration(r.for),
    severity: r.severity,
    min_events: r.minEvents,
    labels: r.labels,
    annotations: r.annotations,
  };
}

/** The severities a rule can raise, in order. */
export function severitiesOf(r: Rule): Severity[] {
  const windows = r.kind === 'slo' ? r.windows : r.kind === 'builtin' ? r.burn?.windows : undefined;
  return !windows ? [(r as ThresholdRule | BuiltinRule).severity] : SEVERITIES.filter((s) => windows.some((w) => w.severity === s));
}
