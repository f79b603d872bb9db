import { INTERVAL_MS } from '../../core/time.js';
import { NUMERIC } from '../../core/plan.js';
import type { Filter, QuerySpec, ViewDef } from '../../core/query.js';
import { filterSql, orderLimit, Params, type Dialect } from './compile.js';

/**
 * The view compiler (pure), shared by the stores: a view's table, its maintenance from a set
 * of events, and queries answered from it, in any engine's dialect. Values reach SQL as
 * numbered parameters; the only text spliced in is built here from closed sets (column
 * names, measure codes, numbers that the parser produced).
 *
 * A view table holds, per (tenant, bucket, dimensions…), rows of several kinds told apart
 * by `m`, so that every measure merges with plain SQL upserts and GROUP BYs:
 * - m = 0: `n` = events.
 * - m = 1 + j (numeric field j): `n` = numeric values, `s` = their sum, `lo`/`hi` = min/max.
 * - m = 100 + j (uniq field j): HyperLogLog, one row per register `i` (2^12 registers),
 *   `n` = the register's rank; merged with max. Standard error 1.04/√4096 ≈ 1.6%.
 * - m = 200 + j (percentile field j): DDSketch, one row per bin `i`, `n` = values in it,
 *   `lo`/`hi` the least and greatest of them; merged with sum, min and max. Relative accuracy
 *   α = (γ−1)/(γ+1) ≈ 0.99% with γ = 1.02: the answer is within 1% of the exact value at the
 *   same rank, clamped to the values the bin holds (exact when they are all equal).
 * Dimension values are stored as text with a marker for missing (key columns cannot be
 * NULL), and read back through the dialect, so filters see what the raw path sees.
 */

/** What views need of an engine beyond the raw-query dialect. */
export interface ViewDialect<V = unknown> extends Dialect<V> {
  /** A dimension's text `x` (NULL when missing) as stored in a key column, never NULL. */
  dimStore(x: string): string;
  /** The stored key column `d` back to the text, NULL for missing. */
  dimRead(d: string): string;
  /** A 64-bit hash of text `x`, as a signed or unsigned 64-bit integer. */
  hash64(x: string): string;
  /** The position of the lowest set bit of the 64-bit integer `w`, plus one (64 when none is set). */
  lowBit(w: string): string;
  /** Integer division of `a` by `b`, rounding down. */
  idiv(a: string, b: string): string;
  /** The value of `x` at the least `by` among the rows where `cond` holds. */
  argMin(x: string, by: string, cond: string): string;
  /** `a + b` for doubles, never an overflow error (as `sum`). */
  add(a: string, b: string): string;
  /**
   * Whether view tables are kept without a key index and maintained with MERGE INTO (a join
   * of the new cells with the table) instead of an upsert on their PRIMARY KEY. For an engine
   * whose key index lives in memory (DuckDB's ART): see backends/duckdb/query-sql.ts.
   */
  merge?: boolean;
}

export const HLL_BITS = 12;
export const HLL_M = 1 << HLL_BITS;
export const DD_GAMMA = 1.02;
export const DD_ALPHA = (DD_GAMMA - 1) / (DD_GAMMA + 1);
/** Bin offset: positive values in [10000 − K, 10000 + K], negative ones mirrored below 0, zero at 0. */
const DD_OFFSET = 10_000;
const DD_MAX_K = 4_000;
/** |v| below this is counted as zero. */
const DD_MIN = 1e-9;

/** Numeric, uniq and percentile fields of a view, each with its `m` code. */
export function viewCodes(v: ViewDef): { numeric: Map<string, number>; uniq: Map<string, number>; quantile: Map<string, number> } {
  const numeric = new Map<string, number>();
  const uniq = new Map<string, number>();
  const quantile = new Map<string, number>();
  for (const m of v.measures) {
    if (m.kind === 'count') continue;
    const f = m.field!.name;
    if (NUMERIC.has(m.kind) && !numeric.has(f)) numeric.set(f, 1 + numeric.size);
    if (m.kind === 'uniq' && !uniq.has(f)) uniq.set(f, 100 + uniq.size);
    if (m.kind === 'quantile' && !quantile.has(f)) quantile.set(f, 200 + quantile.size);
  }
  return { numeric, uniq, quantile };
}

const dimCols = (v: ViewDef) => v.dimensions.map((_, i) => `d${i}`);

/** The columns of a view table's key: one row per key. */
function keyColumns(v: ViewDef): string[] {
  return ['tenant', 'bucket', ...dimCols(v), 'm', 'i'];
}

/** The columns of a view table's primary key, as a list. */
export function viewKey(v: ViewDef): string {
  return keyColumns(v).join(', ');
}

/** A view table's columns, in order. */
function viewColumns(v: ViewDef): string[] {
  return [...keyColumns(v), 'n', 's', 'lo', 'hi'];
}

/**
 * The order a build writes a view table's rows in (and a rewrite of it): by kind, then bucket,
 * so that a query reading one kind (a count) skips the row groups of the others (the sketches).
 */
export const VIEW_ROW_ORDER = 'm, bucket';

/**
 * A view table. `keyed`: with its key (viewKey) as a PRIMARY KEY, which `viewMaintainSql`'s
 * upsert needs; a dialect with `merge` maintains the table without one (see ViewDialect.merge).
 */
export function viewTableDdl(table: string, v: ViewDef, keyed = true): string {
  const dims = dimCols(v);
  return `CREATE TABLE ${table} (tenant VARCHAR NOT NULL, bucket BIGINT NOT NULL, ${dims.map((d) => `${d} VARCHAR NOT NULL, `).join('')}m SMALLINT NOT NULL, i INTEGER NOT NULL, n BIGINT NOT NULL, s FLOAT8, lo FLOAT8, hi FLOAT8${keyed ? `, PRIMARY KEY (${viewKey(v)})` : ''})`;
}

/** How a row already in view table `t` absorbs a new one `x` with the same key (`excluded` in an upsert). */
export function viewMerge<V>(d: ViewDialect<V>, t: string, x = 'excluded'): string {
  return (
    `n = CASE WHEN ${t}.m >= 100 AND ${t}.m < 200 THEN greatest(${t}.n, ${x}.n) ELSE ${t}.n + ${x}.n END, ` +
    `s = CASE WHEN ${t}.s IS NULL THEN ${x}.s WHEN ${x}.s IS NULL THEN ${t}.s ELSE ${d.add(`${t}.s`, `${x}.s`)} END, ` +
    `lo = least(${t}.lo, ${x}.lo), hi = greatest(${t}.hi, ${x}.hi)`
  );
}

/** The predicate, over the events' columns, of the events a view reads: its event type and filters. */
export function viewWhereSql<V>(d: ViewDialect<V>, v: ViewDef, p: Params<V>): string {
  let where = 'true';
  if (v.event !== null) where += ` AND type = ${p.add(v.event as V)}`;
  for (const f of v.filters) where += ` AND ${filterSql(d, f, d.field(f.field, p), p)}`;
  return where;
}

/**
 * The rows `viewMaintainSql` adds to a view table for the events of `source` (a relation with
 * the events' columns; its parameters already in `p`), as one SELECT with the table's columns
 * in its order: pre-aggregated rows of every kind. Queries read such rows beside the table
 * (`delta` of viewQuerySql) for events not yet folded into it.
 */
export function viewCellsSql<V>(d: ViewDialect<V>, v: ViewDef, source: string, p: Params<V>): string {
  const codes = viewCodes(v);
  const cols = [`tenant`, `${d.bucket(INTERVAL_MS[v.grain], p)} AS bucket`];
  v.dimensions.forEach((f, i) => cols.push(`${d.dimStore(d.field(f, p))} AS d${i}`));
  const fieldOf = (name: string) => v.measures.find((m) => m.field?.name === name)!.field!;
  for (const [f, code] of codes.numeric) cols.push(`${d.num(d.field(fieldOf(f), p))} AS v${code}`);
  for (const [f, code] of codes.uniq) cols.push(`${d.hash64(d.field(fieldOf(f), p))} AS v${code}`);
  for (const [f, code] of codes.quantile) cols.push(`${d.num(d.field(fieldOf(f), p))} AS v${code}`);
  const where = viewWhereSql(d, v, p);
  const keyCols = ['tenant', 'bucket', ...dimCols(v)];
  const keys = keyCols.join(', ');
  const groupKeys = keyCols.map((_, i) => String(i + 1));
  // The position of `i` in each SELECT, for the kinds with one row per register or bin.
  const byI = [...groupKeys, String(keyCols.length + 2)].join(', ');
  const none = 'CAST(NULL AS FLOAT8)';
  const parts = [`SELECT ${keys}, CAST(0 AS SMALLINT), 0, count(*), ${none}, ${none}, ${none} FROM x GROUP BY ${groupKeys.join(', ')}`];
  for (const code of codes.numeric.values()) {
    parts.push(`SELECT ${keys}, CAST(${code} AS SMALLINT), 0, count(v${code}), ${d.sum(`v${code}`)}, min(v${code}), max(v${code}) FROM x WHERE v${code} IS NOT NULL GROUP BY ${groupKeys.join(', ')}`);
  }
  for (const code of codes.uniq.values()) {
    const w = `CAST(v${code} >> ${HLL_BITS} AS BIGINT)`;
    parts.push(
      `SELECT ${keys}, CAST(${code} AS SMALLINT), CAST(v${code} & ${HLL_M - 1} AS INTEGER), max(least(${d.lowBit(w)}, ${64 - HLL_BITS + 1})), ${none}, ${none}, ${none} FROM x WHERE v${code} IS NOT NULL GROUP BY ${byI}`,
    );
  }
  for (const code of codes.quantile.values()) {
    const k = (x: string) => `least(CAST(ceil(ln(${x}) / ${Math.log(DD_GAMMA)}) AS INTEGER), ${DD_MAX_K})`;
    const bin = `CASE WHEN v${code} > ${DD_MIN} THEN ${DD_OFFSET} + ${k(`v${code}`)} WHEN v${code} < -${DD_MIN} THEN -${DD_OFFSET} - ${k(`-v${code}`)} ELSE 0 END`;
    // Each bin also keeps the least and greatest value it holds: an answer is clamped to them
    // (exact when a bin holds one distinct value, and never further from the truth).
    parts.push(`SELECT ${keys}, CAST(${code} AS SMALLINT), ${bin}, count(*), ${none}, min(v${code}), max(v${code}) FROM x WHERE v${code} IS NOT NULL GROUP BY ${byI}`);
  }
  return `WITH x AS (SELECT ${cols.join(', ')} FROM ${source} AS src WHERE ${where}) ${parts.join(' UNION ALL ')}`;
}

/**
 * Adds the events of `source` (a relation with the events' columns; its parameters already
 * in `p`) to `table`: one statement, upserting (or, with `d.merge`, merging) pre-aggregated
 * rows of every kind.
 */
export function viewMaintainSql<V>(d: ViewDialect<V>, table: string, v: ViewDef, source: string, p: Params<V>): string {
  if (d.merge) {
    // The cells are unique by key (each SELECT of viewCellsSql groups by it, and the kinds differ by m).
    const cols = viewColumns(v);
    const on = keyColumns(v).map((c) => `t.${c} = x.${c}`).join(' AND ');
    return (
      `MERGE INTO ${table} AS t USING (${viewCellsSql(d, v, source, p)}) AS x(${cols.join(', ')}) ON ${on} ` +
      `WHEN MATCHED THEN UPDATE SET ${viewMerge(d, 't', 'x')} WHEN NOT MATCHED THEN INSERT (${cols.join(', ')}) VALUES (${cols.map((c) => `x.${c}`).join(', ')})`
    );
  }
  // Rows upserted in key order: two writers adding to the same rows (workers of one tenant
  // on PostgreSQL) lock them in the same order, and never deadlock.
  const order = Array.from({ length: v.dimensions.length + 4 }, (_, i) => i + 1).join(', ');
  return `INSERT INTO ${table} AS t ${viewCellsSql(d, v, source, p)} ORDER BY ${order} ON CONFLICT (${viewKey(v)}) DO UPDATE SET ${viewMerge(d, 't')}`;
}

/** The value a DDSketch bin stands for (within α of every value in it). */
function binValue(b: string): string {
  const g = DD_GAMMA;
  return `CASE WHEN ${b} > 0 THEN ${2 / (g + 1)} * pow(${g}, ${b} - ${DD_OFFSET}) WHEN ${b} < 0 THEN ${-2 / (g + 1)} * pow(${g}, -${b} - ${DD_OFFSET}) ELSE 0 END`;
}

function hllEstimate(nz: string, z: string): string {
  const m = HLL_M;
  const alpha = 0.7213 / (1 + 1.079 / m);
  const raw = `(${alpha * m * m} / (${z} + (${m} - ${nz})))`;
  return `CASE WHEN ${nz} IS NULL OR ${nz} = 0 THEN 0 WHEN ${raw} <= ${2.5 * m} AND ${nz} < ${m} THEN round(${m} * ln(CAST(${m} AS FLOAT8) / (${m} - ${nz}))) ELSE round(${raw}) END`;
}

/**
 * A query answered from a view table. The caller has checked that the view covers it
 * (query/plan.ts); `residual` are the query's filters the view did not apply itself.
 */
export function viewQuerySql<V>(
  d: ViewDialect<V>,
  q: QuerySpec,
  table: string,
  v: ViewDef,
  residual: Filter[],
  cap: number,
  /** Rows not yet folded into the table (a SELECT with its columns: viewCellsSql), read beside it. */
  delta?: (p: Params<V>) => string,
): { sql: string; params: V[] } {
  const p = new Params<V>();
  const from = delta ? `(SELECT * FROM ${table} UNION ALL SELECT * FROM (${delta(p)}) AS unfolded) AS vt` : table;
  const codes = viewCodes(v);
  const dimIndex = new Map(v.dimensions.map((f, i) => [f.name, i]));
  const keyExprs: string[] = [];
  if (q.interval) {
    const size = p.add(INTERVAL_MS[q.interval] as V);
    keyExprs.push(`${d.idiv('bucket', size)} * ${size}`);
  }
  for (const g of q.groupBy) keyExprs.push(`d${dimIndex.get(g.name)!}`);
  const keys = keyExprs.map((_, i) => `k${i}`);
  const keySelect = keyExprs.map((e, i) => `${e} AS k${i}`);
  // Only the row kinds the measures read: with rows stored by kind (see the backfill's swap),
  // a count reads the count rows' row groups and skips the sketches'.
  const kinds = new Set([0]);
  for (const m of q.measures) {
    const f = m.field?.name;
    if (f === undefined) continue;
    const code = NUMERIC.has(m.kind) ? codes.numeric.get(f) : m.kind === 'uniq' ? codes.uniq.get(f) : codes.quantile.get(f);
    if (code !== undefined) kinds.add(code);
  }
  const bigint = (n: number) => `CAST(${p.add(String(n) as V)} AS BIGINT)`;
  let where = `tenant = ${p.add(q.tenant as V)} AND bucket >= ${bigint(q.from)} AND bucket < ${bigint(q.to)} AND m IN (${[...kinds].join(', ')})`;
  for (const f of residual) where += ` AND ${filterSql(d, f, d.dimRead(`d${dimIndex.get(f.field.name)!}`), p)}`;
  const ctes = [`base AS (SELECT ${[...keySelect, 'm', 'i', 'n', 's', 'lo', 'hi'].join(', ')} FROM ${from} WHERE ${where})`];
  const mainCols: string[] = [];
  const finalCols: string[] = keys.map((k, i) => (q.interval && i === 0 ? `main.${k}` : d.dimRead(`main.${k}`)));
  const joins: string[] = [];
  const on = keys.length ? `USING (${keys.join(', ')})` : 'ON true';
  const groupBy = keys.length ? ` GROUP BY ${keys.join(', ')}` : '';
  const partition = keys.length ? `PARTITION BY ${keys.join(', ')} ` : '';
  const quantileCtes = new Map<number, string>();
  q.measures.forEach((m, j) => {
    if (m.kind === 'count') {
      mainCols.push(`sum(n) FILTER (WHERE m = 0) AS a${j}`);
      finalCols.push(`coalesce(main.a${j}, 0)`);
      return;
    }
    const f = m.field!.name;
    if (NUMERIC.has(m.kind)) {
      const c = codes.numeric.get(f)!;
      const only = `FILTER (WHERE m = ${c})`;
      const agg = { sum: d.sum('s', only), min: `min(lo) ${only}`, max: `max(hi) ${only}`, avg: `${d.sum('s', only)} / nullif(sum(n) ${only}, 0)` }[m.kind as 'sum' | 'min' | 'max' | 'avg'];
      mainCols.push(`${agg} AS a${j}`);
      finalCols.push(`main.a${j}`);
      return;
    }
    if (m.kind === 'uniq') {
      const c = codes.uniq.get(f)!;
      ctes.push(`u${j}r AS (SELECT ${[...keys, 'i'].join(', ')}, max(n) AS r FROM base WHERE m = ${c} GROUP BY ${[...keys, 'i'].join(', ')})`);
      ctes.push(`u${j} AS (SELECT ${[...keys, ''].join(', ')}count(*) AS nz, sum(pow(CAST(2 AS FLOAT8), -r)) AS z FROM u${j}r${groupBy})`);
      joins.push(`LEFT JOIN u${j} ${on}`);
      finalCols.push(hllEstimate(`u${j}.nz`, `u${j}.z`));
      return;
    }
    const c = codes.quantile.get(f)!;
    if (!quantileCtes.has(c)) {
      const t = `q${c}`;
      quantileCtes.set(c, t);
      ctes.push(`${t}b AS (SELECT ${[...keys, 'i'].join(', ')}, sum(n) AS c, min(lo) AS lo, max(hi) AS hi FROM base WHERE m = ${c} GROUP BY ${[...keys, 'i'].join(', ')})`);
      ctes.push(
        `${t}c AS (SELECT ${[...keys, ''].join(', ')}i, lo, hi, sum(c) OVER (${partition}ORDER BY i ROWS UNBOUNDED PRECEDING) AS cc, sum(c) OVER (${partition.trim()}) AS tot FROM ${t}b)`,
      );
    }
    const t = quantileCtes.get(c)!;
    const at = `cc >= CAST(${p.add(m.q! as V)} AS FLOAT8) * tot`;
    ctes.push(`p${j} AS (SELECT ${[...keys, ''].join(', ')}min(i) FILTER (WHERE ${at}) AS b, ${d.argMin('lo', 'i', at)} AS lo, ${d.argMin('hi', 'i', at)} AS hi FROM ${t}c${groupBy})`);
    joins.push(`LEFT JOIN p${j} ${on}`);
    // least/greatest skip NULLs: rows written before bins kept their bounds answer unclamped.
    finalCols.push(`CASE WHEN p${j}.b IS NULL THEN NULL ELSE least(greatest(${binValue(`p${j}.b`)}, p${j}.lo), p${j}.hi) END`);
  });
  ctes.push(`main AS (SELECT ${[...keys, ...mainCols, 'count(*) AS _n'].join(', ')} FROM base${groupBy})`);
  const cols = finalCols.map((c, i) => `${c} AS "c${i}"`);
  const sql =
    `WITH ${ctes.join(', ')} SELECT ${cols.join(', ')} FROM main ${joins.join(' ')}` +
    orderLimit(q, keys.map((_, i) => `"c${i}"`), cap);
  return { sql, params: p.values };
}
