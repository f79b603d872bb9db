import { INTERVAL_MS } from '../../core/time.js';
import { columnsOf, type FieldRef, type Filter, type Measure, type QuerySpec } from '../../core/query.js';

/**
 * The query compiler shared by the SQL stores (pure): filters, measures and queries over raw
 * events, in the dialect of each engine. Values reach SQL as numbered parameters; the only
 * text spliced in is built here from closed sets (column names, measure codes, numbers the
 * parser produced) or by the dialect from such text.
 */

export class Params<V = unknown> {
  readonly values: V[] = [];
  add(v: V): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

/** What differs between engines; every method returns SQL text over the events' columns. */
export interface Dialect<V = unknown> {
  /** The text of a field (`type`, `key`, or a JSON path inside properties/context); NULL when absent. */
  field(f: FieldRef, p: Params<V>, alias?: string): string;
  /** Text to a double, NULL when it is not a number (never an error). */
  num(x: string): string;
  /** A number from a request, as a double. */
  double(v: number, p: Params<V>): string;
  /** Whether text `x` contains the parameter `needle`; NULL when x is NULL. */
  contains(x: string, needle: string): string;
  /** Event time in [from, to) epoch ms, for one tenant. */
  timeRange(tenant: string, from: number, to: number, p: Params<V>): string;
  /** Receipt time (received_at) in [from, to) epoch ms; `from` null: no lower bound. */
  receivedRange(from: number | null, to: number, p: Params<V>): string;
  /** The start of the event's bucket of `sizeMs`, in epoch ms. */
  bucket(sizeMs: number, p: Params<V>): string;
  /** The value at rank q (discrete, a value of the set) of `x`; `q` is a parameter. */
  quantile(x: string, q: string): string;
  /**
   * The sum of the doubles `x` (`filter`, e.g. `FILTER (WHERE …)`, follows the aggregate), as a
   * double; never an overflow error, whatever the values.
   */
  sum(x: string, filter?: string): string;
}

function scalarCompare<V>(d: Dialect<V>, x: string, op: 'eq' | 'neq', v: string | number | boolean, p: Params<V>): string {
  const [lhs, rhs] = typeof v === 'number' ? [d.num(x), d.double(v, p)] : [x, p.add(String(v) as V)];
  return op === 'eq' ? `(${lhs} = ${rhs})` : `(${lhs} IS DISTINCT FROM ${rhs})`;
}

const ORDERING = { gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

/** One filter over the text expression `x` (see the semantics in query/spec.ts). */
export function filterSql<V>(d: Dialect<V>, f: Filter, x: string, p: Params<V>): string {
  switch (f.op) {
    case 'eq':
    case 'neq':
      return scalarCompare(d, x, f.op, f.value as string | number | boolean, p);
    case 'in':
      return `(${(f.value as (string | number | boolean)[]).map((v) => scalarCompare(d, x, 'eq', v, p)).join(' OR ')})`;
    case 'nin':
      return `(${(f.value as (string | number | boolean)[]).map((v) => scalarCompare(d, x, 'neq', v, p)).join(' AND ')})`;
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return typeof f.value === 'number'
        ? `(${d.num(x)} ${ORDERING[f.op]} ${d.double(f.value, p)})`
        : `(${x} ${ORDERING[f.op]} ${p.add(String(f.value) as V)})`;
    case 'contains':
      return `coalesce(${d.contains(x, p.add(String(f.value) as V))}, false)`;
    case 'exists':
      return f.value === false ? `(${x} IS NULL)` : `(${x} IS NOT NULL)`;
  }
}

/** ORDER BY and LIMIT over the answer's columns, c0, c1… in the order of `columnsOf(q)`, `keys` its group keys. */
export function orderLimit(q: QuerySpec, keys: string[], cap: number): string {
  const cols = columnsOf(q);
  const order = q.orderBy.length > 0 ? q.orderBy.map((o) => `"c${cols.indexOf(o.column)}" ${o.desc ? 'DESC' : 'ASC'} NULLS LAST`) : keys.map((k) => `${k} ASC NULLS FIRST`);
  return `${order.length ? ` ORDER BY ${order.join(', ')}` : ''} LIMIT ${Math.min(q.limit ?? cap, cap)}`;
}

function rawMeasure<V>(d: Dialect<V>, m: Measure, p: Params<V>): string {
  if (m.kind === 'count') return 'count(*)';
  const x = d.field(m.field!, p);
  switch (m.kind) {
    case 'uniq':
      return `count(DISTINCT ${x})`;
    case 'quantile':
      return d.quantile(d.num(x), p.add(m.q! as V));
    case 'sum':
      return d.sum(d.num(x));
    case 'avg':
      return `${d.sum(d.num(x))} / nullif(count(${d.num(x)}), 0)`;
    default:
      return `${m.kind}(${d.num(x)})`;
  }
}

/**
 * A query over raw events. Columns are named c0, c1… in the order of `columnsOf(q)`.
 * `cap` is the most rows returned (one more than the server's cap, to tell "too many").
 * `from` is the relation read: the events table, or one with the columns the dialect names
 * (the embedded store's typed columns); `oneType`: it holds rows of the query's event type
 * only (typed columns), so no condition on the type is written.
 */
export function rawQuerySql<V>(d: Dialect<V>, q: QuerySpec, cap: number, from = 'events', oneType = false): { sql: string; params: V[] } {
  const p = new Params<V>();
  const select: string[] = [];
  if (q.interval) select.push(d.bucket(INTERVAL_MS[q.interval], p));
  for (const g of q.groupBy) select.push(d.field(g, p));
  const keys = select.map((_, i) => `"c${i}"`);
  for (const m of q.measures) select.push(rawMeasure(d, m, p));
  let where = d.timeRange(q.tenant, q.from, q.to, p);
  if (q.received) where += ` AND ${d.receivedRange(q.received.from, q.received.to, p)}`;
  if (q.event !== null && !oneType) where += ` AND type = ${p.add(q.event as V)}`;
  for (const f of q.filters) where += ` AND ${filterSql(d, f, d.field(f.field, p), p)}`;
  const sql =
    `SELECT ${select.map((s, i) => `${s} AS "c${i}"`).join(', ')} FROM ${from} WHERE ${where}` +
    (keys.length ? ` GROUP BY ${keys.join(', ')}` : '') +
    orderLimit(q, keys, cap);
  return { sql, params: p.values };
}
