import type { FieldRef } from '../../core/query.js';
import type { SeriesScan, SeriesScanAnswer } from '../../ports/store.js';
import { filterSql, Params } from './compile.js';
import type { ViewDialect } from './views.js';

/**
 * The per-minute series of many queries of one tenant in one scan of its events (pure), for
 * alert evaluation (ports/store.ts, `Store.seriesScan`), in the dialect of each SQL store.
 *
 * One query per series reads the tenant's events once per series: 1,200 series over 3 days
 * of 1M events took 223 s. Here the events are read once, grouped by minute and by the text
 * of every field a series filters on (the "cube"); each filter is then decided once per
 * distinct combination of those texts (a handful for the fields SLOs filter on: status,
 * route, region), not once per event, and each minute of a series is the sum of the cube's
 * rows whose combination it matches.
 *
 * The filters are the query compiler's (`filterSql`, compile.ts) over the same field texts
 * (`dialect.field`), so a series counts exactly what `POST /v1/query` counts with its
 * filters. Numbers are read from a field's text once per combination (the dialect's `num`),
 * not once per filter: a thousand copies of that expression took DuckDB a second to plan.
 * The cube keeps a field's text as views store a dimension (`dimStore`: never NULL), so that
 * the combinations join the cube on plain equality (PostgreSQL joins `IS NOT DISTINCT FROM`
 * by a nested loop); filters read it back (`dimRead`).
 *
 * Second columns (sum, min, max) are aggregated per cube row and merged per minute (a sum of
 * sums, the smallest of minima, the largest of maxima). A sum can differ from one query's in
 * its last bits (doubles added in another order), as two runs of one query can.
 *
 * Columns of the answer: series index, minute start (epoch ms), count, value (NULL: none), all
 * doubles (DuckDB's driver turns BIGINT and HUGEINT into BigInt, ten times slower to read). A
 * series' minute may come in several rows (one per combination it matches): its count is
 * their sum, its value their merge.
 */

/** What a store adds to its dialect for the scan. */
export interface ScanDialect<V> extends ViewDialect<V> {
  /** The event's minute start, epoch ms. */
  minute: string;
  /** Event time in [from, to) epoch ms. */
  eventRange(from: number, to: number, p: Params<V>): string;
  /** The name of the double type. */
  doubleType: string;
  /** A list of integers from SQL items, and its element at the 1-based SQL index `i`. */
  list(items: string[]): string;
  at(list: string, i: string): string;
}

/** Whether a scan reads nothing (no series, or an empty time range): its answer is `scanAnswer(0, …)`. */
export function scanIsEmpty(scan: SeriesScan): boolean {
  return scan.series.length === 0 || scan.to <= scan.from;
}

/**
 * The answer of a scan from its `n` result rows, `cell(column, row)` giving a cell of the
 * columns above (null: none, read as NaN). A plain loop: Float64Array.from with a mapping
 * function took 0.5 s for 1M rows.
 */
export function scanAnswer(n: number, cell: (column: number, row: number) => number | null | undefined): SeriesScanAnswer {
  const column = (c: number): Float64Array => {
    const out = new Float64Array(n);
    for (let k = 0; k < n; k++) out[k] = cell(c, k) ?? NaN;
    return out;
  };
  return { series: column(0), minutes: column(1), counts: column(2), values: column(3) };
}

export function seriesScanSql<V>(d: ScanDialect<V>, scan: SeriesScan): { sql: string; params: V[] } {
  const p = new Params<V>();
  const fields = new Map<string, { ref: FieldRef; i: number; numeric: boolean }>();
  for (const s of scan.series) {
    for (const f of s.filters) {
      let e = fields.get(f.field.name);
      if (!e) fields.set(f.field.name, (e = { ref: f.field, i: fields.size, numeric: false }));
      if (numeric(f.op, f.value)) e.numeric = true;
    }
  }
  // Second columns: one per distinct (kind, field).
  const aggs = new Map<string, { kind: 'sum' | 'min' | 'max'; ref: FieldRef; col: string }>();
  const aggOf = scan.series.map((s) => {
    if (!s.measure || s.measure.kind === 'count') return -1;
    const kind = s.measure.kind as 'sum' | 'min' | 'max';
    const id = `${kind}:${s.measure.field!.name}`;
    if (!aggs.has(id)) aggs.set(id, { kind, ref: s.measure.field!, col: `a${aggs.size}` });
    return [...aggs.keys()].indexOf(id);
  });

  const events = new Set(scan.series.map((s) => s.event));
  // One event type for every series: the WHERE below decides it, the type is no dimension.
  const byType = events.size > 1 || events.has(null);
  const dims = [...(byType ? ['t'] : []), ...[...fields.values()].map((f) => `f${f.i}`)];
  if (dims.length === 0) dims.push('n0');
  const keys = [`${d.minute} AS m`, ...(byType ? ['type AS t'] : []), ...[...fields.values()].map((f) => `${d.dimStore(d.field(f.ref, p))} AS f${f.i}`)];
  const cubeSelect = [
    ...keys,
    'count(*) AS n',
    ...[...aggs.values()].map((a) => (a.kind === 'sum' ? `${d.sum(d.num(d.field(a.ref, p)))} AS ${a.col}` : `${a.kind}(${d.num(d.field(a.ref, p))}) AS ${a.col}`)),
  ];
  let where = `tenant = ${p.add(scan.tenant as V)} AND ${d.eventRange(scan.from, scan.to, p)} AND ${d.receivedRange(scan.received.from, scan.received.to, p)}`;
  if (!events.has(null)) where += ` AND type IN (${[...events].map((e) => p.add(e as V)).join(', ')})`;

  // Each distinct filter (and event) once per combination, as a boolean column.
  const flags = new Map<string, string>();
  const flagSql: string[] = [];
  // Over a combination's columns: the field's text is `x<i>`, its number `v<i>`, computed once.
  const numCols = new Map([...fields.values()].filter((f) => f.numeric).map((f) => [`x${f.i}`, `v${f.i}`]));
  const dialect = { ...d, num: (x: string) => numCols.get(x) ?? d.num(x) };
  const flag = (id: string, sql: () => string): string => {
    let name = flags.get(id);
    if (!name) {
      name = `b${flags.size}`;
      flags.set(id, name);
      flagSql.push(`coalesce(${sql()}, false) AS ${name}`);
    }
    return name;
  };
  const member = scan.series.map((s, i) => {
    const conds: string[] = [];
    if (s.event !== null && byType) conds.push(flag(`e:${s.event}`, () => `(t = ${p.add(s.event as V)})`));
    for (const f of s.filters) conds.push(flag(JSON.stringify([f.field.name, f.op, f.value]), () => filterSql(dialect, f, `x${fields.get(f.field.name)!.i}`, p)));
    return `CASE WHEN ${conds.length ? conds.join(' AND ') : 'true'} THEN ${i} END`;
  });
  const texts = [...fields.values()].map((f) => `, ${d.dimRead(`f${f.i}`)} AS x${f.i}`).join('');
  const numbers = [...numCols].map(([x, v]) => `, ${d.num(x)} AS ${v}`).join('');
  const value = aggs.size === 0 ? 'NULL' : `CASE j ${[...aggs.values()].map((a, k) => `WHEN ${k} THEN ${a.col}`).join(' ')} END`;
  // Series index → its second column (-1: none); numbers from this function only.
  const aggList = d.list(aggOf.map(String));
  const cube = `SELECT ${cubeSelect.join(', ')} FROM events WHERE ${where} GROUP BY ${keys.map((_, k) => k + 1).join(', ')}`;
  const dbl = d.doubleType;
  const sql =
    `WITH cube AS (${dims[0] === 'n0' ? `SELECT *, 0 AS n0 FROM (${cube}) c` : cube}), ` +
    `combos AS (SELECT DISTINCT ${dims.join(', ')} FROM cube), ` +
    `decoded AS (SELECT *${texts} FROM combos), ` +
    `numbered AS (SELECT *${numbers} FROM decoded), ` +
    `flagged AS (SELECT ${dims.join(', ')}${flagSql.map((f) => `, ${f}`).join('')} FROM numbered), ` +
    `members AS (SELECT * FROM (SELECT ${dims.join(', ')}, unnest(${d.list(member)}) AS s FROM flagged) u WHERE s IS NOT NULL) ` +
    // Not summed per (series, minute) here: the caller adds rows up (a second GROUP BY of
    // as many rows as the cube's cost as much as building it).
    `SELECT CAST(s AS ${dbl}), CAST(m AS ${dbl}), CAST(n AS ${dbl}), CAST(${value} AS ${dbl}) ` +
    `FROM (SELECT members.s, ${d.at(aggList, 'members.s + 1')} AS j, cube.* FROM cube JOIN members ON ${dims.map((x) => `cube.${x} = members.${x}`).join(' AND ')}) r`;
  return { sql, params: p.values };
}

/** Whether a filter reads its field as a number (a numeric comparison; see filterSql). */
function numeric(op: string, value: unknown): boolean {
  return Array.isArray(value) ? value.some((v) => typeof v === 'number') : typeof value === 'number' && op !== 'contains' && op !== 'exists';
}
