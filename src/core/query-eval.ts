import type { FieldRef, Filter, Scalar } from './query.js';

/**
 * The query language evaluated in memory, on one event at a time (pure): the text of a field,
 * its number, and whether a filter holds, with the semantics that core/query.ts states and the
 * SQL stores compile (backends/sql/compile.ts):
 *
 * - a field's text: `type` and `key` as they are, `pipeline_version` as its decimal digits
 *   (0 for none), a path inside `properties`/`context` as the value there: a string as is, a
 *   number, boolean, object or array as JSON text (as JavaScript writes it: 1.0 reads "1");
 *   missing or JSON null is null;
 * - a number: a JSON number, or a string of a decimal number (spaces around allowed); only
 *   finite numbers, numeric text past the largest double clamped to it (±1.7976931348623157e308);
 *   anything else is missing;
 * - comparisons with a number compare numbers (missing never matches, except `neq`/`nin`,
 *   which hold for it, as SQL's IS DISTINCT FROM); with a string they compare text (UTF-16
 *   code units); `contains` is a substring test; `exists` tests for null.
 *
 * Used where events are in memory anyway (the rollout compare's per-view aggregation), never
 * to answer a query: the stores answer queries, and where their text of a number differs from
 * JavaScript's (1.0 against 1) only a grouping by that field can tell.
 */
export interface EventColumns {
  type: string;
  key: string;
  pipelineVersion?: number;
  /** JSON text. */
  properties: string;
  context: string;
}

const UNPARSED: unique symbol = Symbol('unparsed');
const DECIMAL = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/** JSON text parsed; null when it is not JSON (its fields are then missing). */
export function parseColumn(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * The fields of one event, parsed at most once per column and only when a field inside it is
 * read. One reader serves a whole batch (`reset` moves it to the next event), so reading
 * fields allocates nothing but the parsed JSON; `parse` may be a cache shared across events
 * (equal texts parsed once).
 */
export class FieldReader {
  private r: EventColumns | null = null;
  private props: unknown = UNPARSED;
  private ctx: unknown = UNPARSED;

  constructor(private readonly parse: (text: string) => unknown = parseColumn) {}

  reset(r: EventColumns): this {
    this.r = r;
    this.props = UNPARSED;
    this.ctx = UNPARSED;
    return this;
  }

  /** The JSON value at `f` (undefined when missing); `type`, `key` and `pipeline_version` as they are. */
  value(f: FieldRef): unknown {
    const r = this.r!;
    switch (f.column) {
      case 'type':
        return r.type;
      case 'key':
        return r.key;
      case 'pipeline_version':
        return String(r.pipelineVersion ?? 0);
      case 'properties':
        if (this.props === UNPARSED) this.props = this.parse(r.properties);
        return walk(this.props, f.names);
      case 'context':
        if (this.ctx === UNPARSED) this.ctx = this.parse(r.context);
        return walk(this.ctx, f.names);
    }
  }

  /** The field's text; null when missing or JSON null. */
  text(f: FieldRef): string | null {
    return textOf(this.value(f));
  }

  /** The field's number; null when it has none. */
  number(f: FieldRef): number | null {
    return numberOf(this.value(f));
  }

  /** Whether the filter holds for this event. */
  matches(f: Filter): boolean {
    const v = this.value(f.field);
    switch (f.op) {
      case 'eq':
        return equals(v, f.value as Scalar);
      case 'neq':
        return !equals(v, f.value as Scalar);
      case 'in':
        return (f.value as Scalar[]).some((s) => equals(v, s));
      case 'nin':
        return (f.value as Scalar[]).every((s) => !equals(v, s));
      case 'gt':
      case 'gte':
      case 'lt':
      case 'lte': {
        const [a, b] = typeof f.value === 'number' ? [numberOf(v), f.value] : [textOf(v), String(f.value)];
        if (a === null) return false;
        return f.op === 'gt' ? a > b : f.op === 'gte' ? a >= b : f.op === 'lt' ? a < b : a <= b;
      }
      case 'contains': {
        const t = textOf(v);
        return t !== null && t.includes(String(f.value));
      }
      case 'exists':
        return f.value === false ? v === undefined || v === null : v !== undefined && v !== null;
    }
  }
}

function walk(v: unknown, names: readonly string[]): unknown {
  for (const n of names) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, n)) return undefined;
    v = (v as Record<string, unknown>)[n];
  }
  return v;
}

export function textOf(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  // A number as JSON writes it, except past the doubles (1e400 parses to Infinity, which JSON writes "null").
  return typeof v === 'number' ? String(v) : JSON.stringify(v);
}

const MAX = Number.MAX_VALUE;

export function numberOf(v: unknown): number | null {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && DECIMAL.test(v)) n = Number(v);
  else return null;
  // JSON.parse reads 1e400 as Infinity: numeric text past the largest double is clamped to it.
  return Number.isNaN(n) ? null : Math.max(-MAX, Math.min(MAX, n));
}

function equals(v: unknown, s: Scalar): boolean {
  if (typeof s === 'number') return numberOf(v) === s;
  const t = textOf(v);
  return t !== null && t === String(s);
}
