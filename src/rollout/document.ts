import { SluiceError } from '../core/errors.js';

/**
 * The rollout document (`POST /v1/rollouts`): what changes, the steps it goes through, the
 * guardrails that judge it, and whether the controller advances it on its own.
 *
 * ```json
 * {"change": {"schema": {"type": "checkout", "version": 4}} | {"pipeline_version": 7},
 *  "steps": [{"shadow": {"sample": 1.0, "duration": "30m"}}, {"compare": {"duration": "30m"}},
 *            {"cohort": {"percent": 1, "duration": "15m"}},
 *            {"ramp": {"percents": [5, 25, 50, 100], "step_duration": "10m"}}],
 *  "guardrails": {"dead_letter_rate": 0.001, "drop_rate": 0.01, "diff_rate": 0.001, "min_events": 1000},
 *  "auto": true}
 * ```
 *
 * Durations are written as in the query API's relative times, without the sign: a count and
 * a unit among s, m, h, d, w ("30m").
 *
 * An operator-wide rollout (`sluice rollout create FILE --global`, kept under the operator's
 * scope, src/core/operator.ts) changes what every tenant goes through: `{"operator_pipeline_version": N}`.
 * Its routing unit is the tenant, not the key: a cohort step may name tenants
 * (`{"cohort": {"tenants": ["acme"], "duration": "15m"}}`), which stay in the cohort from then
 * on, and every percent is a share of the tenants, chosen by a hash of the tenant's name.
 */
export type Change = { pipeline_version: number } | { schema: { type: string; version: number } } | { operator_pipeline_version: number } | { enrich: EnrichChange };

/**
 * The operator-level enrichment document (config `enrich.*`, the built-in enrichers of the
 * workers): the fields given replace the live ones. The document of the last promoted
 * enrichment rollout is the live one, and overrides the configuration file's.
 */
export interface EnrichChange {
  anonymizeIp?: boolean;
  userAgent?: boolean;
}

/** The change kinds: one active rollout per tenant (or the operator's scope) and kind. */
export type ChangeKind = 'pipeline_version' | 'schema' | 'operator_pipeline_version' | 'enrich';

/** Change kinds rolled out operator-wide (over tenants) rather than in one tenant (over keys). */
export const GLOBAL_KINDS: ReadonlySet<ChangeKind> = new Set(['operator_pipeline_version', 'enrich']);

export type StepSpec =
  | { shadow: { sample: number; duration: string } }
  | { compare: { duration: string } }
  /** `percent`: of the tenant's keys (of the tenants, operator-wide); `tenants`: named tenants first (operator-wide only). At least one of them. */
  | { cohort: { percent?: number; tenants?: string[]; duration: string } }
  | { ramp: { percents: number[]; step_duration: string } };

/**
 * Each guardrail is the largest allowed excess of the cohort's rate over the baseline's rate
 * in the same minutes (a fraction: 0.001 = 0.1 percentage points). `cost_per_event_ms` is the
 * largest allowed excess of the mean processing time per event, in milliseconds.
 * `min_events`: fewer events than this in the cohort (or the baseline) is a hold, never a
 * verdict. Default 1000.
 */
export interface Guardrails {
  dead_letter_rate?: number;
  drop_rate?: number;
  diff_rate?: number;
  cost_per_event_ms?: number;
  min_events: number;
}

export interface RolloutSpec {
  change: Change;
  steps: StepSpec[];
  guardrails: Guardrails;
  auto: boolean;
}

export const DEFAULT_MIN_EVENTS = 1000;

/** The default steps: shadow 30m, compare 30m, cohort 1% 15m, ramp 5/25/50/100 by 10m (the example). */
export const DEFAULT_STEPS: StepSpec[] = [
  { shadow: { sample: 1, duration: '30m' } },
  { compare: { duration: '30m' } },
  { cohort: { percent: 1, duration: '15m' } },
  { ramp: { percents: [5, 25, 50, 100], step_duration: '10m' } },
];

const DURATION = /^(\d{1,9})(s|m|h|d|w)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** A duration ("30m") in ms, or null when it is not one. */
export function parseDuration(s: unknown): number | null {
  if (typeof s !== 'string') return null;
  const m = DURATION.exec(s);
  return m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : null;
}

export function changeKind(c: Change): ChangeKind {
  return 'pipeline_version' in c ? 'pipeline_version' : 'operator_pipeline_version' in c ? 'operator_pipeline_version' : 'enrich' in c ? 'enrich' : 'schema';
}

function invalid(field: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_INVALID_BODY', `${field}: ${message}`, { field });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function only(o: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw invalid(`${where}.${k}`, `unknown field; expected one of ${keys.join(', ')}`);
}

function duration(v: unknown, field: string): string {
  if (parseDuration(v) === null || parseDuration(v)! <= 0) throw invalid(field, `expected a duration such as "30m" (a count and one of s, m, h, d, w), got ${JSON.stringify(v)}`);
  return v as string;
}

function percent(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 100) throw invalid(field, `expected a percent in (0, 100], got ${JSON.stringify(v)}`);
  return v;
}

function positiveInt(v: unknown, field: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw invalid(field, `expected a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

function parseChange(v: unknown, global: boolean): Change {
  if (global) {
    if (!isObject(v) || Object.keys(v).length !== 1 || !('operator_pipeline_version' in v || 'enrich' in v)) {
      throw invalid('change', 'an operator-wide rollout changes {"operator_pipeline_version": N} (sluice pipeline push FILE --global --no-activate stores one) or {"enrich": {"anonymizeIp": …, "userAgent": …}}');
    }
    if ('enrich' in v) {
      const e = v.enrich;
      if (!isObject(e) || Object.keys(e).length === 0) throw invalid('change.enrich', 'expected the enrichment settings to change, e.g. {"userAgent": false}');
      only(e, ['anonymizeIp', 'userAgent'], 'change.enrich');
      for (const [k, b] of Object.entries(e)) if (typeof b !== 'boolean') throw invalid(`change.enrich.${k}`, `expected true or false, got ${JSON.stringify(b)}`);
      return { enrich: e as EnrichChange };
    }
    return { operator_pipeline_version: positiveInt(v.operator_pipeline_version, 'change.operator_pipeline_version') };
  }
  if (!isObject(v)) throw invalid('change', 'expected {"pipeline_version": N} or {"schema": {"type": "…", "version": N}}');
  const keys = Object.keys(v);
  if (keys.length !== 1) throw invalid('change', 'expected exactly one of pipeline_version, schema');
  if ('operator_pipeline_version' in v) throw invalid('change.operator_pipeline_version', 'the operator pipeline is rolled out operator-wide: sluice rollout create FILE --global');
  if ('pipeline_version' in v) return { pipeline_version: positiveInt(v.pipeline_version, 'change.pipeline_version') };
  if ('schema' in v) {
    const s = v.schema;
    if (!isObject(s)) throw invalid('change.schema', 'expected {"type": "…", "version": N}');
    only(s, ['type', 'version'], 'change.schema');
    if (typeof s.type !== 'string' || s.type === '') throw invalid('change.schema.type', 'expected the event type whose schema version is rolled out');
    return { schema: { type: s.type, version: positiveInt(s.version, 'change.schema.version') } };
  }
  throw invalid(`change.${keys[0]}`, 'unknown change; expected pipeline_version or schema');
}

/** Named tenants of a cohort step: known to the catalog is checked when the rollout is created. */
function tenantList(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.some((t) => typeof t !== 'string' || t === '')) throw invalid(field, 'expected a non-empty list of tenant names, e.g. ["acme"]');
  return [...new Set(v as string[])];
}

function parseStep(v: unknown, i: number, global: boolean): StepSpec {
  const at = `steps[${i}]`;
  if (!isObject(v) || Object.keys(v).length !== 1) throw invalid(at, 'expected one of {"shadow": …}, {"compare": …}, {"cohort": …}, {"ramp": …}');
  const [kind] = Object.keys(v) as [string];
  const body = v[kind];
  if (!isObject(body)) throw invalid(`${at}.${kind}`, 'expected an object');
  switch (kind) {
    case 'shadow': {
      only(body, ['sample', 'duration'], `${at}.shadow`);
      const sample = body.sample === undefined ? 1 : body.sample;
      if (typeof sample !== 'number' || !(sample > 0 && sample <= 1)) throw invalid(`${at}.shadow.sample`, `expected a fraction in (0, 1], got ${JSON.stringify(sample)}`);
      return { shadow: { sample, duration: duration(body.duration, `${at}.shadow.duration`) } };
    }
    case 'compare':
      only(body, ['duration'], `${at}.compare`);
      return { compare: { duration: duration(body.duration, `${at}.compare.duration`) } };
    case 'cohort': {
      only(body, global ? ['percent', 'tenants', 'duration'] : ['percent', 'duration'], `${at}.cohort`);
      const d = duration(body.duration, `${at}.cohort.duration`);
      if (!global || body.tenants === undefined) return { cohort: { percent: percent(body.percent, `${at}.cohort.percent`), duration: d } };
      const tenants = tenantList(body.tenants, `${at}.cohort.tenants`);
      return { cohort: { ...(body.percent === undefined ? {} : { percent: percent(body.percent, `${at}.cohort.percent`) }), tenants, duration: d } };
    }
    case 'ramp': {
      only(body, ['percents', 'step_duration'], `${at}.ramp`);
      if (!Array.isArray(body.percents) || body.percents.length === 0) throw invalid(`${at}.ramp.percents`, 'expected a non-empty list of percents, e.g. [5, 25, 50, 100]');
      const percents = body.percents.map((p, j) => percent(p, `${at}.ramp.percents[${j}]`));
      return { ramp: { percents, step_duration: duration(body.step_duration, `${at}.ramp.step_duration`) } };
    }
    default:
      throw invalid(`${at}.${kind}`, 'unknown step; expected shadow, compare, cohort or ramp');
  }
}

function parseGuardrails(v: unknown): Guardrails {
  if (v === undefined) return { min_events: DEFAULT_MIN_EVENTS };
  if (!isObject(v)) throw invalid('guardrails', 'expected an object');
  only(v, ['dead_letter_rate', 'drop_rate', 'diff_rate', 'cost_per_event_ms', 'min_events'], 'guardrails');
  const g: Guardrails = { min_events: v.min_events === undefined ? DEFAULT_MIN_EVENTS : positiveInt(v.min_events, 'guardrails.min_events') };
  for (const k of ['dead_letter_rate', 'drop_rate', 'diff_rate'] as const) {
    const t = v[k];
    if (t === undefined) continue;
    if (typeof t !== 'number' || !(t >= 0 && t <= 1)) throw invalid(`guardrails.${k}`, `expected a tolerance in [0, 1] (the largest allowed excess of the cohort's rate over the baseline's), got ${JSON.stringify(t)}`);
    g[k] = t;
  }
  if (v.cost_per_event_ms !== undefined) {
    const t = v.cost_per_event_ms;
    if (typeof t !== 'number' || !(t >= 0) || !Number.isFinite(t)) throw invalid('guardrails.cost_per_event_ms', `expected a non-negative number of milliseconds, got ${JSON.stringify(t)}`);
    g.cost_per_event_ms = t;
  }
  return g;
}

/**
 * Validates a rollout document. Steps must go in order (shadow, compare, cohort, ramp; each
 * at most once, any may be left out) and shares must not go down (a cohort is monotonic).
 * Throws SLUICE_ERR_INVALID_BODY (400) naming the field. `global`: an operator-wide rollout
 * (its change is the operator's; a cohort step may name tenants).
 */
export function parseRolloutSpec(body: unknown, opts: { global?: boolean } = {}): RolloutSpec {
  const global = opts.global === true;
  if (!isObject(body)) throw invalid('body', 'expected a rollout document: {"change": …, "steps": […], "guardrails": {…}, "auto": true}');
  only(body, ['change', 'steps', 'guardrails', 'auto'], 'body');
  const change = parseChange(body.change, global);
  let steps: StepSpec[];
  if (body.steps === undefined) steps = DEFAULT_STEPS;
  else {
    if (!Array.isArray(body.steps) || body.steps.length === 0) throw invalid('steps', 'expected a non-empty list of steps');
    steps = body.steps.map((s, i) => parseStep(s, i, global));
  }
  const ORDER = ['shadow', 'compare', 'cohort', 'ramp'];
  let last = -1;
  let share = 0;
  steps.forEach((s, i) => {
    const k = ORDER.indexOf(Object.keys(s)[0]!);
    if (k <= last) throw invalid(`steps[${i}]`, `steps go in the order ${ORDER.join(', ')}, each at most once`);
    last = k;
    const shares = 'cohort' in s ? (s.cohort.percent === undefined ? [] : [s.cohort.percent]) : 'ramp' in s ? s.ramp.percents : [];
    for (const p of shares) {
      if (p < share) throw invalid(`steps[${i}]`, `shares only go up (a key in the cohort stays in): ${p} after ${share}`);
      share = p;
    }
  });
  const auto = body.auto === undefined ? true : body.auto;
  if (typeof auto !== 'boolean') throw invalid('auto', 'expected true (the controller advances each step when it passes) or false (each step waits for POST …/advance)');
  return { change, steps, guardrails: parseGuardrails(body.guardrails), auto };
}
