import type { DuckDBValue } from '@duckdb/node-api';
import { fieldSegment, parseField, type FieldRef, type QuerySpec } from '../../core/query.js';
import { rawQuerySql, type Dialect } from '../sql/compile.js';
import { DUCKDB, eventTimeRange, numberOfText, Params } from './query-sql.js';

/**
 * The SQL of typed columns on DuckDB (pure). A type's typed columns live in a table of their
 * own, one row per event of that tenant and type: the events' narrow columns (tenant, type,
 * key, ts, pipeline_version) and, for the i-th declared property, `s<i>` (its text, exactly
 * what the query language reads from the JSON: json_extract_string) and `d<i>` (that text as
 * a finite number, else null: the dialect's `num`, numberOfText).
 *
 * Why a table per type and not columns on `events`: measured on this machine (2 cores),
 * appending 1,000-row transactions to `events` fell from 145k rows/s to 31k rows/s with 16
 * pairs of (null) slot columns added to it, as DuckDB writes every column of every row group
 * it touches; a side table costs only the commits of types that have one. A group-by with
 * count and sum over one type of 1M events took 28 ms from such columns, 208 ms from JSON.
 */

/** One set of typed columns: its table and the declared properties, column i for property i. */
export interface TypedSet {
  tenant: string;
  type: string;
  table: string;
  /** Declared names, sorted; those a field cannot name (see core/query.ts FIELD) are left out. */
  properties: string[];
  /** `properties.<name>` of each property, in order. */
  fields: FieldRef[];
}

/** The field of each name that the query language can name; the others stay JSON-only. */
export function typedFields(names: readonly string[]): { properties: string[]; fields: FieldRef[] } {
  const properties: string[] = [];
  const fields: FieldRef[] = [];
  for (const name of names) {
    try {
      fields.push(parseField(`properties${fieldSegment(name)}`, 'properties'));
      properties.push(name);
    } catch {
      // Not a field of the query language (too long, __proto__): never queried, never typed.
    }
  }
  return { properties, fields };
}

export function typedTableDdl(name: string, n: number): string {
  const cols = Array.from({ length: n }, (_, i) => `, s${i} VARCHAR, d${i} DOUBLE`).join('');
  // partition and offset: the event's position, so that a rolled-back pipeline version's rows
  // are withdrawn exactly (withdraw.ts), as they are from events.
  return `CREATE TABLE ${name} (tenant VARCHAR NOT NULL, type VARCHAR NOT NULL, key VARCHAR NOT NULL, ts TIMESTAMP_MS NOT NULL, pipeline_version INTEGER, partition INTEGER NOT NULL, "offset" BIGINT NOT NULL${cols})`;
}

/**
 * Adds the events of `source` (the events' columns; a table name or a parenthesized query
 * whose parameters are already in `p`) of the set's tenant and type to table `into`.
 *
 * Each event's JSON is parsed once for all of the set's properties: json_extract_string with a
 * list of paths is the query language's json_extract_string of each path, in one parse
 * (measured on 100k events and 3 paths: 47 ms against 87 ms for one call per path), and each
 * text is cast to DOUBLE once for the dialect's number (numberOfText).
 */
export function typedFillSql(into: string, set: TypedSet, source: string, p: Params): string {
  const paths = set.fields.map((f) => p.add(f.path!)).join(', ');
  const texts = set.fields.map((_, i) => `, j[${i + 1}] AS s${i}`).join('');
  const casts = set.fields.map((_, i) => `, TRY_CAST(s${i} AS DOUBLE) AS x${i}`).join('');
  const pairs = set.fields.map((_, i) => `, s${i}, ${numberOfText(`s${i}`, `x${i}`)}`).join('');
  return (
    `INSERT INTO ${into} SELECT tenant, type, key, ts, pipeline_version, partition, "offset"${pairs} FROM ` +
    `(SELECT *${casts} FROM (SELECT tenant, type, key, ts, pipeline_version, partition, "offset"${texts} FROM ` +
    `(SELECT src.tenant, src.type, src.key, src.ts, src.pipeline_version, src.partition, src."offset", json_extract_string(src.properties, [${paths}]) AS j FROM ${source} AS src ` +
    `WHERE src.tenant = ${p.add(set.tenant)} AND src.type = ${p.add(set.type)})))`
  );
}

/** Every field a query reads. */
export function fieldsOf(q: QuerySpec): FieldRef[] {
  return [...q.groupBy, ...q.filters.map((f) => f.field), ...q.measures.flatMap((m) => (m.field ? [m.field] : []))];
}

/**
 * The query over the set's table, or null when the set cannot answer it: another type (or
 * every type), or a field without a column (context, an undeclared or nested property). A
 * query that reads no property is left to the events table, which has all it needs.
 */
export function typedQuerySql(q: QuerySpec, set: TypedSet, cap: number): { sql: string; params: DuckDBValue[] } | null {
  if (q.event !== set.type || q.tenant !== set.tenant) return null;
  const index = new Map(set.fields.map((f, i) => [f.name, i]));
  let properties = 0;
  for (const f of fieldsOf(q)) {
    if (f.column === 'properties' && index.has(f.name)) properties++;
    else if (f.column === 'properties' || f.column === 'context') return null;
  }
  if (properties === 0) return null;
  const dialect: Dialect<DuckDBValue> = {
    ...DUCKDB,
    field: (f, p, alias) => (f.column === 'properties' ? `s${index.get(f.name)!}` : DUCKDB.field(f, p, alias)),
    // The number of a typed property's text was computed at commit, by the same expression.
    num: (x) => (/^s\d+$/.test(x) ? `d${x.slice(1)}` : DUCKDB.num(x)),
    // The table holds one tenant and one type: no condition on either (evaluated on every row,
    // they took 170 of 243 ms of a group-by over 10M rows).
    timeRange: (_tenant, from, to, p) => eventTimeRange(from, to, p),
  };
  return rawQuerySql(dialect, q, cap, set.table, true);
}
