import type { Dialect } from '../sql/compile.js';

/**
 * PostgreSQL's side of the shared compiler (backends/sql/compile.ts). Event times are
 * BIGINT epoch ms; JSON is jsonb, read with `#>>` and a parameter holding the path's names;
 * `sluice_num` (the store's migrations) turns text into a double or NULL, never an error.
 */
export const POSTGRES: Dialect = {
  field: (f, p, alias = '') => {
    if (f.path === null) return `${alias}"${f.column}"`;
    // `properties.a.b` → {a,b}: the names after the column.
    return `(${alias}${f.column} #>> ${p.add(f.name.split('.').slice(1))}::text[])`;
  },
  num: (x) => `sluice_num(${x})`,
  double: (v, p) => `CAST(${p.add(String(v))} AS double precision)`,
  contains: (x, needle) => `(strpos(${x}, ${needle}) > 0)`,
  timeRange: (tenant, from, to, p) => `tenant = ${p.add(tenant)} AND ts >= ${p.add(from)}::bigint AND ts < ${p.add(to)}::bigint`,
  bucket: (size) => `(ts - ((ts % ${size}) + ${size}) % ${size})`,
  quantile: (x, q) => `percentile_disc(CAST(${q} AS double precision)) WITHIN GROUP (ORDER BY ${x})`,
};
