import type { DuckDBValue } from '@duckdb/node-api';
import { INTERVAL_MS } from '../../core/time.js';
import type { FieldRef, Filter, QuerySpec, ViewDef } from '../../query/spec.js';
import { filterSql as sharedFilterSql, orderLimit, Params as BaseParams, rawQuerySql as sharedRawQuerySql, type Dialect } from '../sql/compile.js';
import { NUMERIC } from '../../query/plan.js';

/**
 * The query compiler for DuckDB (pure): DuckDB's dialect of the shared compiler
 * (backends/sql/compile.ts) for raw events, and queries over views, view tables and their
 * maintenance. Values reach SQL as numbered parameters; the only text
 * spliced in is built here from closed sets (column names, measure codes, numbers that
 * the parser produced).
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
 * Dimension values are stored as text with chr(0) standing for missing (key columns cannot
 * be NULL); they are read back through NULLIF, so filters see what the raw path sees.
 */

/** Parameters of a DuckDB statement. */
export class Params extends BaseParams<DuckDBValue> {
  /**
   * A number from a request, as a DOUBLE: bound as text and cast, because the driver binds a
   * whole JavaScript number as BIGINT and refuses one beyond its range (9.3e18).
   */
  double(v: number): string {
    return DUCKDB.double(v, this);
  }
}

/** DuckDB's side of the shared compiler (backends/sql/compile.ts). */
export const DUCKDB: Dialect<DuckDBValue> = {
  field: (f, p, alias = '') => (f.path === null ? `${alias}"${f.column}"` : `json_extract_string(${alias}${f.column}, ${p.add(f.path)})`),
  num: (x) => `TRY_CAST(${x} AS DOUBLE)`,
  double: (v, p) => `CAST(${p.add(String(v))} AS DOUBLE)`,
  contains: (x, needle) => `contains(${x}, ${needle})`,
  timeRange: (tenant, from, to, p) => `tenant = ${p.add(tenant)} AND ts >= epoch_ms(${p.add(BigInt(from))}::BIGINT) AND ts < epoch_ms(${p.add(BigInt(to))}::BIGINT)`,
  bucket: (size, p) => {
    const s = p.add(size);
    return `(epoch_ms(ts) // ${s}) * ${s}`;
  },
  quantile: (x, q) => `quantile_disc(${x}, ${q})`,
};

export const HLL_BITS = 12;
export const HLL_M = 1 << HLL_BITS;
export const DD_GAMMA = 1.02;
export const DD_ALPHA = (DD_GAMMA - 1) / (DD_GAMMA + 1);
/** Bin offset: positive values in [10000 − K, 10000 + K], negative ones mirrored below 0, zero at 0. */
const DD_OFFSET = 10_000;
const DD_MAX_K = 4_000;
/** |v| below this is counted as zero. */
const DD_MIN = 1e-9;

/** The text of a field, as a SQL expression over a table with the events' columns. */
export function fieldExpr(f: FieldRef, p: Params, alias = ''): string {
  return DUCKDB.field(f, p, alias);
}

const num = DUCKDB.num;

/** One filter over the text expression `x` (see the semantics in query/spec.ts). */
export function filterSql(f: Filter, x: string, p: Params): string {
  return sharedFilterSql(DUCKDB, f, x, p);
}

/** A query over raw events (see backends/sql/compile.ts). */
export function rawQuerySql(q: QuerySpec, cap: number): { sql: string; params: DuckDBValue[] } {
  return sharedRawQuerySql(DUCKDB, q, cap);
}

// ---- views -------------------------------------------------------------------------------

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

export function viewTableDdl(table: string, v: ViewDef): string {
  const dims = dimCols(v);
  return `CREATE TABLE ${table} (tenant VARCHAR NOT NULL, bucket BIGINT NOT NULL, ${dims.map((d) => `${d} VARCHAR NOT NULL, `).join('')}m SMALLINT NOT NULL, i INTEGER NOT NULL, n BIGINT NOT NULL, s DOUBLE, lo DOUBLE, hi DOUBLE, PRIMARY KEY (tenant, bucket, ${dims.map((d) => `${d}, `).join('')}m, i))`;
}

/** How a row already in a view table absorbs a new one with the same key. */
export const VIEW_MERGE =
  'n = CASE WHEN m >= 100 AND m < 200 THEN greatest(n, excluded.n) ELSE n + excluded.n END, ' +
  's = CASE WHEN s IS NULL THEN excluded.s WHEN excluded.s IS NULL THEN s ELSE s + excluded.s END, ' +
  'lo = least(lo, excluded.lo), hi = greatest(hi, excluded.hi)';

/**
 * Adds the events of `source` (a relation with the events' columns; its parameters already
 * in `p`) to `table`: one statement, upserting pre-aggregated rows of every kind.
 */
export function viewMaintainSql(table: string, v: ViewDef, source: string, p: Params): string {
  const codes = viewCodes(v);
  const grain = p.add(INTERVAL_MS[v.grain]);
  const cols = [`tenant`, `(epoch_ms(ts) // ${grain}) * ${grain} AS bucket`];
  v.dimensions.forEach((d, i) => cols.push(`coalesce(${fieldExpr(d, p)}, chr(0)) AS d${i}`));
  const fieldOf = (name: string) => v.measures.find((m) => m.field?.name === name)!.field!;
  for (const [f, code] of codes.numeric) cols.push(`${num(fieldExpr(fieldOf(f), p))} AS v${code}`);
  for (const [f, code] of codes.uniq) cols.push(`hash(${fieldExpr(fieldOf(f), p)}) AS v${code}`);
  for (const [f, code] of codes.quantile) cols.push(`${num(fieldExpr(fieldOf(f), p))} AS v${code}`);
  let where = 'true';
  if (v.event !== null) where += ` AND type = ${p.add(v.event)}`;
  for (const f of v.filters) where += ` AND ${filterSql(f, fieldExpr(f.field, p), p)}`;
  const keys = ['tenant', 'bucket', ...dimCols(v)].join(', ');
  const parts = [`SELECT ${keys}, 0::SMALLINT, 0, count(*), NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE FROM x GROUP BY ALL`];
  for (const code of codes.numeric.values()) {
    parts.push(`SELECT ${keys}, ${code}::SMALLINT, 0, count(v${code}), sum(v${code}), min(v${code}), max(v${code}) FROM x WHERE v${code} IS NOT NULL GROUP BY ALL`);
  }
  for (const code of codes.uniq.values()) {
    const w = `CAST(v${code} >> ${HLL_BITS} AS BIGINT)`;
    parts.push(
      `SELECT ${keys}, ${code}::SMALLINT, CAST(v${code} & ${HLL_M - 1} AS INTEGER), max(least(bit_count(xor(${w}, ${w} - 1)), ${64 - HLL_BITS + 1})), NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE FROM x WHERE v${code} IS NOT NULL GROUP BY ALL`,
    );
  }
  for (const code of codes.quantile.values()) {
    const k = (x: string) => `least(CAST(ceil(ln(${x}) / ${Math.log(DD_GAMMA)}) AS INTEGER), ${DD_MAX_K})`;
    const bin = `CASE WHEN v${code} > ${DD_MIN} THEN ${DD_OFFSET} + ${k(`v${code}`)} WHEN v${code} < -${DD_MIN} THEN -${DD_OFFSET} - ${k(`-v${code}`)} ELSE 0 END`;
    // Each bin also keeps the least and greatest value it holds: an answer is clamped to them
    // (exact when a bin holds one distinct value, and never further from the truth).
    parts.push(`SELECT ${keys}, ${code}::SMALLINT, ${bin}, count(*), NULL::DOUBLE, min(v${code}), max(v${code}) FROM x WHERE v${code} IS NOT NULL GROUP BY ALL`);
  }
  return `INSERT INTO ${table} WITH x AS (SELECT ${cols.join(', ')} FROM ${source} WHERE ${where}) ${parts.join(' UNION ALL ')} ON CONFLICT DO UPDATE SET ${VIEW_MERGE}`;
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
  return `CASE WHEN ${nz} IS NULL OR ${nz} = 0 THEN 0 WHEN ${raw} <= ${2.5 * m} AND ${nz} < ${m} THEN round(${m} * ln(${m} / (${m} - ${nz}))) ELSE round(${raw}) END`;
}

/**
 * A query answered from a view table. The caller has checked that the view covers it
 * (query/plan.ts); `residual` are the query's filters the view did not apply itself.
 */
export function viewQuerySql(q: QuerySpec, table: string, v: ViewDef, residual: Filter[], cap: number): { sql: string; params: DuckDBValue[] } {
  const p = new Params();
  const codes = viewCodes(v);
  const dimIndex = new Map(v.dimensions.map((d, i) => [d.name, i]));
  const keyExprs: string[] = [];
  if (q.interval) {
    const size = p.add(INTERVAL_MS[q.interval]);
    keyExprs.push(`(bucket // ${size}) * ${size}`);
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
  let where = `tenant = ${p.add(q.tenant)} AND bucket >= ${p.add(BigInt(q.from))} AND bucket < ${p.add(BigInt(q.to))} AND m IN (${[...kinds].join(', ')})`;
  for (const f of residual) where += ` AND ${filterSql(f, `NULLIF(d${dimIndex.get(f.field.name)!}, chr(0))`, p)}`;
  const ctes = [`base AS (SELECT ${[...keySelect, 'm', 'i', 'n', 's', 'lo', 'hi'].join(', ')} FROM ${table} WHERE ${where})`];
  const mainCols: string[] = [];
  const finalCols: string[] = keys.map((k, i) => (q.interval && i === 0 ? `main.${k}` : `NULLIF(main.${k}, chr(0))`));
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
      const agg = { sum: `sum(s) ${only}`, min: `min(lo) ${only}`, max: `max(hi) ${only}`, avg: `sum(s) ${only} / nullif(sum(n) ${only}, 0)` }[m.kind as 'sum' | 'min' | 'max' | 'avg'];
      mainCols.push(`${agg} AS a${j}`);
      finalCols.push(`main.a${j}`);
      return;
    }
    if (m.kind === 'uniq') {
      const c = codes.uniq.get(f)!;
      ctes.push(`u${j}r AS (SELECT ${[...keys, 'i'].join(', ')}, max(n) AS r FROM base WHERE m = ${c} GROUP BY ${[...keys, 'i'].join(', ')})`);
      ctes.push(`u${j} AS (SELECT ${[...keys, ''].join(', ')}count(*) AS nz, sum(pow(2.0, -r)) AS z FROM u${j}r${groupBy})`);
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
    const at = `FILTER (WHERE cc >= CAST(${p.add(m.q!)} AS DOUBLE) * tot)`;
    ctes.push(`p${j} AS (SELECT ${[...keys, ''].join(', ')}min(i) ${at} AS b, arg_min(lo, i) ${at} AS lo, arg_min(hi, i) ${at} AS hi FROM ${t}c${groupBy})`);
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
