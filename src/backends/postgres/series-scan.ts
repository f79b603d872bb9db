import type pg from 'pg';
import type { SeriesScan, SeriesScanAnswer } from '../../ports/store.js';
import { scanAnswer, scanIsEmpty, seriesScanSql, type ScanDialect } from '../sql/series-scan.js';
import { POSTGRES } from './dialect.js';

/** PostgreSQL's side of the series scan (backends/sql/series-scan.ts). */
export const POSTGRES_SCAN: ScanDialect<unknown> = {
  ...POSTGRES,
  minute: '(ts - ((ts % 60000) + 60000) % 60000)',
  eventRange: (from, to, p) => `ts >= ${p.add(from)}::bigint AND ts < ${p.add(to)}::bigint`,
  doubleType: 'double precision',
  list: (items) => `ARRAY[${items.join(', ')}]::int[]`,
  at: (list, i) => `(${list})[${i}]`,
};

/**
 * Store.seriesScan on PostgreSQL: one statement over the tenant's events, in a read-only
 * transaction whose statement timeout is `timeoutMs` (a scan does the work of a query per
 * series: alert evaluation gives it the evaluation interval). Errors are the driver's.
 */
export async function scanSeries(pool: pg.Pool, scan: SeriesScan, timeoutMs: number): Promise<SeriesScanAnswer> {
  if (scanIsEmpty(scan)) return scanAnswer(0, () => null);
  const { sql, params } = seriesScanSql(POSTGRES_SCAN, scan);
  const client = await pool.connect();
  let rows: (number | null)[][];
  // A connection whose ROLLBACK failed is broken: released with the error, the pool drops it.
  let broken: Error | undefined;
  try {
    await client.query('BEGIN READ ONLY');
    try {
      await client.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
      rows = (await client.query({ text: sql, values: params, rowMode: 'array' })).rows as (number | null)[][];
    } finally {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e));
      });
    }
  } finally {
    client.release(broken);
  }
  return scanAnswer(rows.length, (c, k) => rows[k]![c]);
}
