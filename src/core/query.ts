import { SluiceError } from './errors.js';
import { isReservedName, reservedNameMessage } from './reserved.js';
import { bucketStart, INTERVAL_MS, INTERVALS, isInterval, parseQueryTime } from './time.js';
import type { Interval } from './types.js';

/**
 * The query language, parsed and validated (pure): fields, filters, measures, view
 * definitions and queries. Backends compile these values to SQL; nothing a user sends is
 * ever spliced into SQL text. Field names must match FIELD, and reach SQL only as
 * parameters (JSON paths) or as fixed column names chosen from a closed set.
 *
 * Semantics shared by every backend and by views (so that a view answers exactly what raw
 * events answer):
 * - A field's value is text: `type` and `key` as stored, `properties.<path>` and
 *   `context.<path>` as JSON text of the value at that path (a string without quotes; a
 *   number, boolean, object or array as JSON); a missing field or a JSON null is null.
 * - Numeric measures and comparisons with a number read the text as a number; text that is
 *   not a number counts as missing.
 * - Only finite numbers are numbers: "NaN", "inf" and "-Infinity" text counts as missing.
 * - A sum never fails: past the largest double it is that double (±1.7976931348623157e308) on
 *   every store (PostgreSQL raises on a double overflow, so it sums as numeric and clamps;
 *   DuckDB's sum goes to Infinity, clamped), so JSON and CSV answers read the same.
 */

/**
 * `type`, `key`, `pipeline_version` (the version of the tenant's transform pipeline that
 * produced the event, 0 for none), or a path of up to 8 names inside `properties` or `context`: each name is
 * `.name` (letters, digits, `_` and `-`) or, for any other name, a JSON string in brackets:
 * `properties["price.eur"]`, `context["a b"].c`. A dot always means nesting; a name that holds
 * a dot is quoted.
 */
export const FIELD = /^(?:type|key|pipeline_version|(?:properties|context)(?:\.[A-Za-z_][A-Za-z0-9_-]{0,63}|\["(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){1,200}"\]){1,8})$/;

const SEGMENT = /\.([A-Za-z_][A-Za-z0-9_-]{0,63})|\[("(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){1,200}")\]/y;

// Only `__proto__` can reach an object's prototype; `constructor` and `prototype` are ordinary names.
const RESERVED = new Set(['__proto__']);

/** A name as a field segment: `.name` when it can be written bare, else `["…"]`. */
export function fieldSegment(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

export type Column = 'type' | 'key' | 'pipeline_version' | 'properties' | 'context';

export interface FieldRef {
  /** Canonical: `properties.region`, names quoted only where they must be (`properties["price.eur"]`). */
  name: string;
  column: Column;
  /** JSON path inside the column (`$."region"`), null for `type` and `key`. */
  path: string | null;
  /** The names of the path inside the column, unquoted (`["price.eur"]`); empty for `type` and `key`. */
  names: string[];
}

export type FilterOp = 'eq' | 'neq' | 'in' | 'nin' | 'gt' | 'gte' | 'lt' | 'lte' | 'contains' | 'exists';
export const FILTER_OPS: readonly FilterOp[] = ['eq', 'neq', 'in', 'nin', 'gt', 'gte', 'lt', 'lte', 'contains', 'exists'];
export type Scalar = string | number | boolean;

export interface Filter {
  field: FieldRef;
  op: FilterOp;
  /** A scalar; a list for in/nin; a boolean for exists (true: present and not null). */
  value: Scalar | Scalar[];
}

export type MeasureKind = 'count' | 'sum' | 'min' | 'max' | 'avg' | 'uniq' | 'quantile';

export interface Measure {
  /** As written, and the answer's column name: `count`, `sum:amount`, `p95:latency_ms`. */
  name: string;
  kind: MeasureKind;
  field: FieldRef | null;
  /** For quantiles: 0 < q < 1. */
  q?: number;
}

export interface ViewDef {
  name: string;
  event: string | null;
  filters: Filter[];
  dimensions: FieldRef[];
  measures: Measure[];
  grain: Interval;
}

export interface QuerySpec {
  tenant: string;
  event: string | null;
  /** Whole buckets: `from` is floored and `to` ceiled to the interval (to the minute without one). */
  from: number;
  to: number;
  /** Bucket size; null: one row per group over the whole range. */
  interval: Interval | null;
  measures: Measure[];
  filters: Filter[];
  groupBy: FieldRef[];
  orderBy: { column: string; desc: boolean }[];
  /** Rows at most, as the user asked; null: all, up to the server's cap. */
  limit: number | null;
  /** `auto`: a covering view when one is built, else raw events; `raw`: raw events (to check a view). */
  source: 'auto' | 'raw';
  /**
   * Only events received (`received_at`, epoch ms) in [from, to); `from` null: no lower
   * bound. Not part of the public query language: alert evaluation reads what arrived since
   * its last pass with it. Views keep no receipt time: a query with it must be `source: 'raw'`.
   */
  received?: { from: number | null; to: number };
}

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:00Z. */
const MIN_TIME = -62_135_596_800_000;
const MAX_TIME = 253_402_300_740_000;

export const LIMITS = { filters: 20, inValues: 100, groupBy: 3, dimensions: 5, measures: 20, viewName: /^[a-z][a-z0-9_]{0,62}$/ };

function bad(field: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_INVALID_QUERY', message, { field });
}

export function parseField(v: unknown, where: string): FieldRef {
  if (typeof v !== 'string' || !FIELD.test(v)) {
    throw bad(
      where,
      `${JSON.stringify(v)} is not a field: use "type", "key", "pipeline_version", "properties.<name>" or "context.<name>" (names of letters, digits, "_" and "-", dotted for nesting; any other name quoted, as in properties["price.eur"]; a quoted name is 1 to 200 characters)`,
    );
  }
  const column = v.startsWith('properties') ? 'properties' : v.startsWith('context') ? 'context' : v;
  const names: string[] = [];
  SEGMENT.lastIndex = column.length;
  for (let m = SEGMENT.exec(v); m; m = SEGMENT.exec(v)) names.push(m[1] ?? (JSON.parse(m[2]!) as string));
  if (names.some((p) => RESERVED.has(p))) throw bad(where, `${JSON.stringify(v)} names __proto__, which sluice never stores`);
  const name = column + names.map(fieldSegment).join('');
  return { name, column: column as Column, path: names.length === 0 ? null : jsonPath(names), names };
}

/**
 * The path of `names` for DuckDB's JSON functions: JSONPath member names in double quotes, with
 * JSON's escapes (DuckDB and the SQL standard's syntax), except for a name JSONPath cannot
 * address there: `"*"` (every member to DuckDB, and an error in a list of paths) and a name
 * holding a control character (DuckDB does not unescape `\n` in a member name). Those paths are
 * JSON Pointers (RFC 6901: `~` as `~0`, `/` as `~1`), which DuckDB also reads, as one of a list
 * too. Pointers are not used for every name because a numeric segment of a pointer indexes an
 * array, where a quoted JSONPath member does not (and the query language reads no array element).
 */
export function jsonPath(names: readonly string[]): string {
  if (names.some((p) => p === '*' || /[\u0000-\u001f]/.test(p))) return names.map((p) => '/' + p.replaceAll('~', '~0').replaceAll('/', '~1')).join('');
  return '$' + names.map((p) => `.${JSON.stringify(p)}`).join('');
}

function isScalar(v: unknown): v is Scalar {
  return (typeof v === 'string' && v.length <= 1000) || (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean';
}

export function parseFilters(v: unknown, where = 'filters'): Filter[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(where, `"${where}" must be an array of {field, op, value}`);
  if (v.length > LIMITS.filters) throw bad(where, `at most ${LIMITS.filters} filters`);
  return v.map((f: unknown, i) => {
    const at = `${where}[${i}]`;
    if (f === null || typeof f !== 'object' || Array.isArray(f)) throw bad(at, `${at} must be an object {field, op, value}`);
    const o = f as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== 'field' && k !== 'op' && k !== 'value') throw bad(`${at}.${k}`, `unknown key "${k}" in ${at}; a filter has field, op and value`);
    const field = parseField(o.field, `${at}.field`);
    const op = o.op;
    if (typeof op !== 'string' || !FILTER_OPS.includes(op as FilterOp)) throw bad(`${at}.op`, `"op" must be one of ${FILTER_OPS.join(', ')}`);
    const value = o.value;
    switch (op as FilterOp) {
      case 'in':
      case 'nin':
        if (!Array.isArray(value) || value.length === 0 || value.length > LIMITS.inValues || !value.every(isScalar)) {
          throw bad(`${at}.value`, `"${op}" takes a list of 1 to ${LIMITS.inValues} strings, numbers or booleans`);
        }
        return { field, op: op as FilterOp, value: value as Scalar[] };
      case 'exists':
        if (value !== undefined && typeof value !== 'boolean') throw bad(`${at}.value`, '"exists" takes true (the default) or false');
        return { field, op: 'exists', value: value ?? true };
      case 'contains':
        if (typeof value !== 'string' || value.length === 0 || value.length > 1000) throw bad(`${at}.value`, '"contains" takes a non-empty string');
        return { field, op: 'contains', value };
      case 'gt':
      case 'gte':
      case 'lt':
      case 'lte':
        if (!((typeof value === 'number' && Number.isFinite(value)) || (typeof value === 'string' && value.length <= 1000))) {
          throw bad(`${at}.value`, `"${op}" takes a number (compared as numbers) or a string (compared as text)`);
        }
        return { field, op: op as FilterOp, value };
      default:
        if (!isScalar(value)) throw bad(`${at}.value`, `"${op}" takes a string, a number or a boolean`);
        return { field, op: op as FilterOp, value };
    }
  });
}

const MEASURE = /^(?:(count)|(sum|min|max|avg|uniq):(.+)|p(\d{1,2}(?:\.\d{1,3})?):(.+))$/;

/**
 * In a measure, a bare name is one property, taken whole: `sum:amount` is
 * `sum:properties.amount`, and `sum:price.eur` is `sum:properties["price.eur"]` (a nested
 * field is written out: `sum:properties.subscription.price`). A bare name is letters, digits,
 * `_`, `-` and dots; any other name is written as a field, `sum:properties["a b"]`.
 */
function measureField(name: string, where: string): FieldRef {
  if (FIELD.test(name) || /^(?:properties|context)[.[]/.test(name)) return parseField(name, where);
  // Bare names are identifiers, dots allowed; any other name is written quoted in full.
  if (/^[A-Za-z_][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_-]{0,63}){0,7}$/.test(name)) return parseField(`properties${fieldSegment(name)}`, where);
  return parseField(`properties.${name}`, where);
}

export function parseMeasure(v: unknown, where: string): Measure {
  const m = typeof v === 'string' ? MEASURE.exec(v) : null;
  if (!m) {
    throw bad(where, `${JSON.stringify(v)} is not a measure: use count, sum:F, min:F, max:F, avg:F, uniq:F or pNN:F (p50, p95, p99.9…), F a field or a property name`);
  }
  const name = v as string;
  if (m[1]) return { name, kind: 'count', field: null };
  if (m[2]) {
    const field = measureField(m[3]!, where);
    if (m[2] !== 'uniq' && field.path === null) throw bad(where, `"${m[2]}" needs a numeric field inside properties or context, not "${field.name}"`);
    return { name, kind: m[2] as MeasureKind, field };
  }
  const q = Number(m[4]) / 100;
  if (!(q > 0 && q < 1)) throw bad(where, `percentile ${m[4]} must be between 0 and 100`);
  const field = measureField(m[5]!, where);
  if (field.path === null) throw bad(where, `percentiles need a numeric field inside properties or context, not "${field.name}"`);
  return { name, kind: 'quantile', field, q };
}

export function parseMeasures(v: unknown, fallback: string[] | null): Measure[] {
  if (v === undefined || v === null) {
    if (fallback) return fallback.map((m) => parseMeasure(m, 'measures'));
    throw bad('measures', '"measures" is required');
  }
  if (!Array.isArray(v) || v.length === 0 || v.length > LIMITS.measures) throw bad('measures', `"measures" must be a list of 1 to ${LIMITS.measures} measures`);
  const out = v.map((m, i) => parseMeasure(m, `measures[${i}]`));
  const seen = new Set<string>();
  for (const m of out) {
    if (seen.has(m.name)) throw bad('measures', `measure "${m.name}" is listed twice`);
    seen.add(m.name);
  }
  return out;
}

function parseEvent(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length === 0 || v.length > 200) throw bad('event', '"event" must be an event type (a non-empty string of at most 200 characters)');
  return v;
}

function parseFieldList(v: unknown, where: string, max: number): FieldRef[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > max) throw bad(where, `"${where}" must be a list of at most ${max} fields`);
  const out = v.map((f, i) => parseField(f, `${where}[${i}]`));
  if (new Set(out.map((f) => f.name)).size !== out.length) throw bad(where, `"${where}" lists a field twice`);
  return out;
}

function checkKeys(o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(k, `unknown field "${k}"; ${what} has ${allowed.join(', ')}`);
}

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('body', `${what} must be a JSON object`);
  return body as Record<string, unknown>;
}

const VIEW_KEYS = ['event', 'filters', 'dimensions', 'measures', 'grain'] as const;

/**
 * A view definition as a tenant or the configuration declares it: its name must also not be
 * one of sluice's own (core/reserved.ts). 400 naming `name` otherwise.
 */
export function declareView(name: string, body: unknown): ViewDef {
  if (isReservedName(name)) throw bad('name', reservedNameMessage('view', name));
  return parseView(name, body);
}

/** A view definition, as `PUT /v1/views/:name` or the configuration declares it. */
export function parseView(name: string, body: unknown): ViewDef {
  if (!LIMITS.viewName.test(name)) throw bad('name', `view name ${JSON.stringify(name)} is not valid: 1-63 lowercase letters, digits or "_", starting with a letter`);
  const o = asObject(body, 'a view');
  checkKeys(o, VIEW_KEYS, 'a view');
  const grain = o.grain ?? '1m';
  if (!isInterval(grain)) throw bad('grain', `"grain" must be one of ${INTERVALS.join(', ')}`);
  return {
    name,
    event: parseEvent(o.event),
    filters: parseFilters(o.filters),
    dimensions: parseFieldList(o.dimensions, 'dimensions', LIMITS.dimensions),
    measures: parseMeasures(o.measures, ['count']),
    grain,
  };
}

/** The JSON form of a view, as it was declared (field refs back to names). */
export function viewJson(v: ViewDef): Record<string, unknown> {
  return {
    event: v.event,
    filters: v.filters.map((f) => ({ field: f.field.name, op: f.op, value: f.value })),
    dimensions: v.dimensions.map((d) => d.name),
    measures: v.measures.map((m) => m.name),
    grain: v.grain,
  };
}

const QUERY_KEYS = ['event', 'from', 'to', 'interval', 'measures', 'filters', 'group_by', 'order_by', 'limit', 'source'] as const;

export interface QueryLimits {
  maxBuckets: number;
  maxRows: number;
}

export function parseQuery(body: unknown, tenant: string, now: number, limits: QueryLimits): QuerySpec {
  const o = asObject(body, 'the query');
  checkKeys(o, QUERY_KEYS, 'a query');
  const time = (field: 'from' | 'to', fallback: string): number => {
    const v = o[field] ?? fallback;
    const ms = typeof v === 'string' ? parseQueryTime(v, now) : null;
    if (ms === null) throw bad(field, `"${field}" must be an RFC 3339 timestamp, "now" or a relative time like "-24h"`);
    // Years 1 to 9999: "-999999999d" means "from the beginning", not an overflow in the store.
    return Math.min(MAX_TIME, Math.max(MIN_TIME, ms));
  };
  let from = time('from', '-24h');
  let to = time('to', 'now');
  if (to <= from) throw bad('to', '"to" must be after "from"');
  const interval = o.interval === undefined ? '1h' : o.interval;
  if (interval !== null && !isInterval(interval)) throw bad('interval', `"interval" must be one of ${INTERVALS.join(', ')}, or null for totals over the range`);
  const align: Interval = interval ?? '1m';
  from = bucketStart(from, align);
  to = Math.ceil(to / INTERVAL_MS[align]) * INTERVAL_MS[align];
  if (interval !== null) {
    const buckets = (to - from) / INTERVAL_MS[interval];
    if (buckets > limits.maxBuckets) {
      throw new SluiceError('SLUICE_ERR_QUERY_TOO_LARGE', `the query spans ${buckets} buckets; the limit is ${limits.maxBuckets}: use a larger interval or a shorter range`, {
        field: 'interval',
      });
    }
  }
  const measures = parseMeasures(o.measures, ['count']);
  const groupBy = parseFieldList(o.group_by, 'group_by', LIMITS.groupBy);
  const columns = columnsOf({ interval, groupBy, measures });
  let limit: number | null = null;
  if (o.limit !== undefined && o.limit !== null) {
    if (typeof o.limit !== 'number' || !Number.isInteger(o.limit) || o.limit < 1 || o.limit > limits.maxRows) throw bad('limit', `"limit" must be an integer from 1 to ${limits.maxRows}`);
    limit = o.limit;
  }
  return {
    tenant,
    event: parseEvent(o.event),
    from,
    to,
    interval,
    measures,
    filters: parseFilters(o.filters),
    groupBy,
    orderBy: parseOrderBy(o.order_by, columns),
    limit,
    source: parseSource(o.source),
  };
}

function parseSource(v: unknown): 'auto' | 'raw' {
  if (v === undefined || v === null || v === 'auto') return 'auto';
  if (v === 'raw') return 'raw';
  throw bad('source', '"source" must be "auto" (a view when one covers the query) or "raw"');
}

const ORDER = /^(-)?(.+?)(?:\s+(asc|desc))?$/i;

/** `"count"`, `"-count"` or `"count desc"`, or a list of them; columns of the answer only. */
function parseOrderBy(v: unknown, columns: string[]): { column: string; desc: boolean }[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (list.length > columns.length) throw bad('order_by', '"order_by" lists more columns than the answer has');
  return list.map((s: unknown) => {
    const m = typeof s === 'string' ? ORDER.exec(s.trim()) : null;
    if (!m || !columns.includes(m[2]!)) throw bad('order_by', `"order_by" must name columns of the answer (${columns.join(', ')}), optionally with "-" or " desc"`);
    return { column: m[2]!, desc: m[1] === '-' || m[3]?.toLowerCase() === 'desc' };
  });
}

/** The answer's columns, in order: the bucket (with an interval), the group-by fields, the measures. */
export function columnsOf(q: Pick<QuerySpec, 'interval' | 'groupBy' | 'measures'>): string[] {
  return [...(q.interval ? ['bucket'] : []), ...q.groupBy.map((g) => g.name), ...q.measures.map((m) => m.name)];
}
