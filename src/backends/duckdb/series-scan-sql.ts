import type { DuckDBValue } from '@duckdb/node-api';
import type { SeriesScan } from '../../ports/store.js';
import { seriesScanSql as sharedSeriesScanSql, type ScanDialect } from '../sql/series-scan.js';
import { DUCKDB, eventTimeRange } from './query-sql.js';

/** DuckDB's side of the series scan (backends/sql/series-scan.ts). */
export const DUCKDB_SCAN: ScanDialect<DuckDBValue> = {
  ...DUCKDB,
  minute: '(epoch_ms(ts) // 60000) * 60000',
  eventRange: eventTimeRange,
  doubleType: 'DOUBLE',
  list: (items) => `[${items.join(', ')}]`,
  at: (list, i) => `list_extract(${list}, ${i})`,
};

/** The per-minute series of many queries of one tenant in one scan of its events (see backends/sql/series-scan.ts). */
export function seriesScanSql(scan: SeriesScan): { sql: string; params: DuckDBValue[] } {
  return sharedSeriesScanSql(DUCKDB_SCAN, scan);
}
