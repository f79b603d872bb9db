import type { ViewDialect } from '../sql/views.js';

const MAX_DOUBLE = '1.7976931348623157e308';

/** A numeric expression as a double, clamped to the doubles' range; NULL stays NULL (least and greatest skip NULLs). */
function clampDouble(x: string): string {
  return `CAST(CASE WHEN ${x} IS NULL THEN NULL ELSE least(greatest(${x}, -${MAX_DOUBLE}), ${MAX_DOUBLE}) END AS double precision)`;
}

/**
 * PostgreSQL's side of the shared compilers (backends/sql/compile.ts, views.ts). Event times
 * are BIGINT epoch ms; JSON is jsonb, read with `->` and `->>`, a text parameter for each
 * of the path's names; `sluice_num` (the store's migrations) turns text into a double or NULL,
 * never an error.
 *
 * A view's dimension is stored as "=" followed by its text, and missing as the empty string:
 * PostgreSQL text cannot hold chr(0), the marker DuckDB uses, and no value can be mistaken
 * for missing this way.
 */
export const POSTGRES: ViewDialect = {
  field: (f, p, alias = '') => {
    // The version is an integer column; fields are compared as text, as JSON values are.
    if (f.column === 'pipeline_version') return `(${alias}"pipeline_version")::text`;
    if (f.path === null) return `${alias}"${f.column}"`;
    // `properties.a["b.c"]` → -> 'a' ->> 'b.c': one name at a time, each a text parameter, so
    // that a numeric name reads a member and never an array's element (`#>>` with a text[]
    // path indexes arrays), as on DuckDB: the query language reads no array element.
    return `(${alias}${f.column}${f.names.map((n, i) => ` ${i === f.names.length - 1 ? '->>' : '->'} ${p.add(n)}::text`).join('')})`;
  },
  num: (x) => `sluice_num(${x})`,
  double: (v, p) => `CAST(${p.add(String(v))} AS double precision)`,
  contains: (x, needle) => `(strpos(${x}, ${needle}) > 0)`,
  timeRange: (tenant, from, to, p) => `tenant = ${p.add(tenant)} AND ts >= ${p.add(from)}::bigint AND ts < ${p.add(to)}::bigint`,
  receivedRange: (from, to, p) => `${from === null ? '' : `received_at >= ${p.add(from)}::bigint AND `}received_at < ${p.add(to)}::bigint`,
  bucket: (size) => `(ts - ((ts % ${size}) + ${size}) % ${size})`,
  quantile: (x, q) => `percentile_disc(CAST(${q} AS double precision)) WITHIN GROUP (ORDER BY ${x})`,
  // A double sum past the largest double raises an error in PostgreSQL (22003), which would
  // fail a query, or a commit maintaining a view: summed as numeric, clamped as sluice_num does.
  sum: (x, filter = '') => clampDouble(`sum(CAST(${x} AS numeric)) ${filter}`),
  dimStore: (x) => `coalesce('=' || ${x}, '')`,
  dimRead: (d) => `(CASE WHEN ${d} = '' THEN NULL ELSE substr(${d}, 2) END)`,
  hash64: (x) => `hashtextextended(${x}, 0)`,
  lowBit: (w) => `bit_count(CAST((${w}) # ((${w}) - 1) AS bit(64)))`,
  // Integer division in PostgreSQL truncates toward zero; this rounds down, as buckets do.
  idiv: (a, b) => `((${a} - ((${a} % ${b}) + ${b}) % ${b}) / ${b})`,
  argMin: (x, by, cond) => `(array_agg(${x} ORDER BY ${by}) FILTER (WHERE ${cond}))[1]`,
  add: (a, b) => clampDouble(`CAST(${a} AS numeric) + CAST(${b} AS numeric)`),
};
