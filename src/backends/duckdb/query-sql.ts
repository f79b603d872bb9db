import type { DuckDBValue } from '@duckdb/node-api';
import { jsonPath, type FieldRef, type Filter, type QuerySpec, type ViewDef } from '../../core/query.js';
import { viewTableDdl as sharedViewTableDdl, viewWhereSql as sharedViewWhereSql, viewMaintainSql as sharedViewMaintainSql, viewQuerySql as sharedViewQuerySql, viewCellsSql as sharedViewCellsSql, type ViewDialect } from '../sql/views.js';
import { Params as BaseParams, rawQuerySql as sharedRawQuerySql } from '../sql/compile.js';

/**
 * DuckDB's dialect of the shared compilers (pure): raw events (backends/sql/compile.ts) and
 * views (backends/sql/views.ts, where view tables are described).
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

const MAX_DOUBLE = '1.7976931348623157e308';

/** A double clamped to the doubles' finite range; NULL stays NULL (DuckDB's least and greatest skip NULLs). */
function clampDouble(x: string): string {
  return `(CASE WHEN (${x}) IS NULL THEN NULL ELSE least(greatest(${x}, -${MAX_DOUBLE}), ${MAX_DOUBLE}) END)`;
}

/**
 * The number of text `x` (a DOUBLE, or NULL when the text is not a finite number): the
 * dialect's `num`. Finite numbers only: "NaN", "inf" and "-Infinity" are text, not numbers (as
 * sluice_num in PostgreSQL); numeric text past the largest double ("1e400") is clamped to it,
 * as there. `cast` is `TRY_CAST(x AS DOUBLE)`, or the name of a column computed by it (the
 * typed columns' fill computes the cast once per value).
 */
export function numberOfText(x: string, cast = `TRY_CAST(${x} AS DOUBLE)`): string {
  return `(CASE WHEN isfinite(${cast}) THEN ${cast} WHEN isinf(${cast}) AND NOT contains(lower(${x}), 'inf') THEN sign(${cast}) * ${MAX_DOUBLE} END)`;
}

/**
 * `ts` in [from, to) (epoch ms), against TIMESTAMP_MS constants as received_at is (see
 * receivedRange): against a TIMESTAMP, DuckDB casts the column on every row and its zone maps
 * skip nothing. Measured over 10M rows of a type's typed columns, a day's group-by: the scan
 * took 690 ms of the engine's time with the cast; without, the range is decided per row group.
 */
export function eventTimeRange(from: number, to: number, p: BaseParams<DuckDBValue>): string {
  return `ts >= CAST(epoch_ms(${p.add(BigInt(from))}::BIGINT) AS TIMESTAMP_MS) AND ts < CAST(epoch_ms(${p.add(BigInt(to))}::BIGINT) AS TIMESTAMP_MS)`;
}

/**
 * The text at field `f`'s path in the JSON `x`. A JSON Pointer path (a name "*" or holding a
 * control character: core/query.ts jsonPath) indexes an array at a numeric segment, where the
 * query language reads a member and never an element (as a quoted JSONPath member does): such a
 * path with a numeric name past the first is read one name at a time.
 */
function jsonText(x: string, f: FieldRef, p: BaseParams<DuckDBValue>): string {
  if (!f.path!.startsWith('/') || !f.names.some((n, i) => i > 0 && /^[0-9]+$/.test(n))) return `json_extract_string(${x}, ${p.add(f.path!)})`;
  return f.names.reduce((inner, n, i) => `${i === f.names.length - 1 ? 'json_extract_string' : 'json_extract'}(${inner}, ${p.add(jsonPath([n]))})`, x);
}

/** DuckDB's side of the shared compilers (backends/sql/compile.ts, views.ts). */
export const DUCKDB: ViewDialect<DuckDBValue> = {
  field: (f, p, alias = '') =>
    // The version is an integer column; fields are compared as text, as JSON values are.
    f.column === 'pipeline_version'
      ? `CAST(${alias}"pipeline_version" AS VARCHAR)`
      : f.path === null
        ? `${alias}"${f.column}"`
        : jsonText(`${alias}${f.column}`, f, p),
  num: (x) => numberOfText(x),
  double: (v, p) => `CAST(${p.add(String(v))} AS DOUBLE)`,
  contains: (x, needle) => `contains(${x}, ${needle})`,
  timeRange: (tenant, from, to, p) => `tenant = ${p.add(tenant)} AND ${eventTimeRange(from, to, p)}`,
  // The column against constants of its own type (TIMESTAMP_MS; against a TIMESTAMP the column
  // is cast and no row group is skipped), so that the zone maps of received_at (rows are
  // appended in about the order they were received) skip the older row groups: measured 55 ms
  // → 7 ms for a minute of receipts among 1M events.
  receivedRange: (from, to, p) =>
    `${from === null ? '' : `received_at >= CAST(epoch_ms(${p.add(BigInt(from))}::BIGINT) AS TIMESTAMP_MS) AND `}received_at < CAST(epoch_ms(${p.add(BigInt(to))}::BIGINT) AS TIMESTAMP_MS)`,
  bucket: (size, p) => {
    const s = p.add(size);
    return `(epoch_ms(ts) // ${s}) * ${s}`;
  },
  quantile: (x, q) => `quantile_disc(${x}, ${q})`,
  // DuckDB's double sums go to ±Infinity past the largest double: clamped to it, as
  // PostgreSQL's store does, so that an overflow reads the same in JSON, CSV and both engines.
  sum: (x, filter = '') => clampDouble(`sum(${x}) ${filter}`),
  // chr(0) cannot come from JSON text as DuckDB extracts it, so it marks missing.
  dimStore: (x) => `coalesce(${x}, chr(0))`,
  dimRead: (d) => `NULLIF(${d}, chr(0))`,
  hash64: (x) => `hash(${x})`,
  lowBit: (w) => `bit_count(xor(${w}, ${w} - 1))`,
  idiv: (a, b) => `(${a} // ${b})`,
  argMin: (x, by, cond) => `arg_min(${x}, ${by}) FILTER (WHERE ${cond})`,
  add: (a, b) => clampDouble(`(${a} + ${b})`),
  merge: true,
};

export { DD_ALPHA } from '../sql/views.js';

/**
 * A view table on DuckDB: without a PRIMARY KEY, maintained by MERGE INTO (DUCKDB.merge).
 * DuckDB keeps a key's ART index in memory, beside the buffer pool's limit: twenty views of
 * five group-by dimensions over 40k events held 449 MiB of ART of the store's 512 MiB
 * (`duckdb_memory()`, tag ART_INDEX), and a build's table of 2M rows could not be committed
 * in 512 MiB at all. Without the index the tables are blocks the buffer pool evicts like any
 * other; the MERGE's join reads only the row groups of the cells' buckets (DuckDB's join
 * filters from the build side skip the rest by their zone maps): a fold of 12,000 cells took
 * 30-67 ms into tables of 2M and 10M rows, 77-174 ms as an upsert into a keyed table of 1M.
 */
export function viewTableDdl(table: string, v: ViewDef): string {
  return sharedViewTableDdl(table, v, false);
}

/** A query over raw events (see backends/sql/compile.ts). */
export function rawQuerySql(q: QuerySpec, cap: number): { sql: string; params: DuckDBValue[] } {
  return sharedRawQuerySql(DUCKDB, q, cap);
}

/** Adds the events of `source` to a view table (see backends/sql/views.ts). */
export function viewWhereSql(v: ViewDef, p: Params): string {
  return sharedViewWhereSql(DUCKDB, v, p);
}

export function viewMaintainSql(table: string, v: ViewDef, source: string, p: Params): string {
  return sharedViewMaintainSql(DUCKDB, table, v, source, p);
}

/** The rows a view table gains from the events of `source`, as a SELECT (see backends/sql/views.ts). */
export function viewCellsSql(v: ViewDef, source: string, p: BaseParams<DuckDBValue>): string {
  return sharedViewCellsSql(DUCKDB, v, source, p);
}

/** A query answered from a view table and (`delta`) the rows not yet folded into it (see backends/sql/views.ts). */
export function viewQuerySql(q: QuerySpec, table: string, v: ViewDef, residual: Filter[], cap: number, delta?: (p: BaseParams<DuckDBValue>) => string): { sql: string; params: DuckDBValue[] } {
  return sharedViewQuerySql(DUCKDB, q, table, v, residual, cap, delta);
}
