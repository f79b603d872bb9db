import { closest, distance } from 'fastest-levenshtein';
import type { Cell } from '../ports/store.js';
import type { FieldRef, QuerySpec } from '../core/query.js';

/**
 * Warnings for silent zeros: an answer of zeros and nulls may be true, or may be a typo. When
 * a query's measures come back empty, this checks the two usual causes against the last
 * `LOOKBACK_DAYS` days of the tenant's events and says which, with a "did you mean" (the
 * closest name by Levenshtein distance, when it is close):
 *
 * - the event type: `no events of type "chekout" in the last 30 days; did you mean "checkout"?`
 * - a property a measure, a filter or a group-by names: `no "checkout" event in the last 30
 *   days has "properties.amout"; did you mean "properties.amount"?` (a measure that came back
 *   empty; a filter's field when nothing matched; a group-by field whose every group is null)
 *
 * Nothing is checked when the answer has a non-zero value and no all-null group, so a query
 * that finds data costs nothing more. The checks run through the same query path as the query (views or raw events).
 */

export const LOOKBACK_DAYS = 30;
const DAY_MS = 86_400_000;

export interface WarningSources {
  /** Runs a query of the key's tenant; rows as `/v1/query` answers them before bucket filling. */
  query(q: QuerySpec): Promise<Cell[][]>;
  /** Properties (JSON text) of up to `limit` recent stored events of a type, newest first. */
  recent(tenant: string, type: string, limit: number): Promise<string[]>;
}

/** Whether every measure cell of the answer is 0 or null. */
function allEmpty(q: QuerySpec, columns: string[], rows: Cell[][]): boolean {
  const first = columns.length - q.measures.length;
  return rows.every((r) => r.slice(first).every((v) => v === null || v === 0));
}

function measureEmpty(columns: string[], rows: Cell[][], name: string): boolean {
  const i = columns.indexOf(name);
  return i >= 0 && rows.every((r) => r[i] === null || r[i] === 0);
}

/** Whether the answer has rows and every one's `name` column (a group-by field) is null. */
function groupAllNull(columns: string[], rows: Cell[][], name: string): boolean {
  const i = columns.indexOf(name);
  return i >= 0 && rows.length > 0 && rows.every((r) => r[i] === null);
}

/** The candidate nearest to `name`, when it is close enough to be a typo (at most a third of its length, at least 1). */
export function didYouMean(name: string, candidates: readonly string[]): string | null {
  const others = candidates.filter((c) => c !== name);
  if (others.length === 0) return null;
  const best = closest(name, others);
  return distance(name, best) <= Math.max(1, Math.floor(name.length / 3)) ? best : null;
}

/** The top-level names of the objects in `texts` (JSON objects). */
function keysOf(texts: string[]): string[] {
  const keys = new Set<string>();
  for (const t of texts) {
    try {
      const o = JSON.parse(t) as unknown;
      if (o && typeof o === 'object' && !Array.isArray(o)) for (const k of Object.keys(o)) keys.add(k);
    } catch {
      // Not an object: no names to suggest.
    }
  }
  return [...keys];
}

/** The warnings for a query's answer (empty when it has a non-zero value). */
export async function silentZeroWarnings(q: QuerySpec, columns: string[], rows: Cell[][], sources: WarningSources, now: number): Promise<string[]> {
  const empty = allEmpty(q, columns, rows);
  // Property fields that may be typos: a measure that came back empty; a filter's field when
  // nothing matched; a group-by field whose every group is null (one null group).
  const suspects: FieldRef[] = [
    ...q.measures.filter((m) => m.field?.path && measureEmpty(columns, rows, m.name)).map((m) => m.field!),
    ...(empty ? q.filters.map((f) => f.field).filter((f) => f.path) : []),
    ...q.groupBy.filter((g) => g.path && groupAllNull(columns, rows, g.name)),
  ];
  if (!empty && suspects.length === 0) return [];
  const to = Math.ceil(now / 60_000) * 60_000;
  const base: QuerySpec = {
    tenant: q.tenant,
    event: null,
    from: to - LOOKBACK_DAYS * DAY_MS,
    to,
    interval: null,
    measures: [{ name: 'count', kind: 'count', field: null }],
    filters: [],
    groupBy: [],
    orderBy: [],
    limit: null,
    source: 'auto',
  };
  const window = `in the last ${LOOKBACK_DAYS} days`;
  if (q.event !== null) {
    const typeField: FieldRef = { name: 'type', column: 'type', path: null, names: [] };
    const types = (await sources.query({ ...base, groupBy: [typeField], limit: 10_000 })).map((r) => String(r[0]));
    if (!types.includes(q.event)) {
      const near = didYouMean(q.event, types);
      return [`no events of type ${JSON.stringify(q.event)} ${window}${near ? `; did you mean ${JSON.stringify(near)}?` : ''}`];
    }
  }
  const warnings: string[] = [];
  const seen = new Set<string>();
  for (const field of suspects) {
    if (seen.has(field.name)) continue;
    seen.add(field.name);
    const [[n] = [0]] = await sources.query({ ...base, event: q.event, filters: [{ field, op: 'exists', value: true }] });
    if (Number(n) > 0) continue;
    const what = q.event === null ? 'event' : `${JSON.stringify(q.event)} event`;
    let near: string | null = null;
    // Suggest a sibling of the same object: properties.amout → properties.amount (top-level names only).
    const { column, names: path } = field;
    if (q.event !== null && column === 'properties' && path.length === 1) {
      const name = didYouMean(path[0]!, keysOf(await sources.recent(q.tenant, q.event, 100)));
      near = name === null ? null : /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? `properties.${name}` : `properties[${JSON.stringify(name)}]`;
    }
    warnings.push(`no ${what} ${window} has ${JSON.stringify(field.name)}${near ? `; did you mean ${JSON.stringify(near)}?` : ''}`);
  }
  return warnings;
}
