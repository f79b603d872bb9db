import type { DuckDBValue } from '@duckdb/node-api';
import { INTERVAL_MS } from '../../core/time.js';
import type { CountQuery, LogRecord } from '../../core/types.js';
import { countsPerMinute } from '../minute-counts.js';

/**
 * The store's SQL, built as pure values (text + parameters) so that it can be tested
 * without a database. Nothing from a request is ever spliced into the text.
 */

export const SCHEMA = `
  CREATE TABLE IF NOT EXISTS events (
    tenant VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    idempotency_key VARCHAR NOT NULL,
    ts TIMESTAMP_MS NOT NULL,
    received_at TIMESTAMP_MS NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    origin VARCHAR NOT NULL,
    properties JSON NOT NULL,
    context JSON NOT NULL,
    stored_at TIMESTAMP_MS NOT NULL,
    pipeline_version INTEGER DEFAULT 0,
    operator_version INTEGER DEFAULT 0
  );
  -- Data directories made before transform pipelines, then before operator pipelines: each
  -- version column is added, last, in this order (the appender writes columns by position).
  ALTER TABLE events ADD COLUMN IF NOT EXISTS pipeline_version INTEGER DEFAULT 0;
  ALTER TABLE events ADD COLUMN IF NOT EXISTS operator_version INTEGER DEFAULT 0;
  CREATE TABLE IF NOT EXISTS counts_1m (
    tenant VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    minute BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (tenant, type, minute)
  );
  CREATE TABLE IF NOT EXISTS applied (
    p INTEGER PRIMARY KEY,
    o BIGINT NOT NULL,
    token BIGINT NOT NULL
  );
`;

export interface Sql {
  sql: string;
  params: DuckDBValue[];
}

/** One upsert adding a batch's events to the per-minute counts (pre-aggregated: one row per key). */
export function minuteCounts(records: readonly LogRecord[]): Sql {
  const rows = countsPerMinute(records);
  const params: DuckDBValue[] = [];
  for (const a of rows) params.push(a.tenant, a.type, a.minute, a.n);
  return {
    sql: `INSERT INTO counts_1m (tenant, type, minute, n) VALUES ${rows.map(() => '(?, ?, ?, ?)').join(', ')}
          ON CONFLICT (tenant, type, minute) DO UPDATE SET n = n + excluded.n`,
    params,
  };
}

/** Counts per bucket for one tenant, from the per-minute table. Buckets are UTC, [from, to). */
export function countsSql(q: CountQuery): Sql {
  const size = INTERVAL_MS[q.interval];
  const params: DuckDBValue[] = [size, size, q.tenant, q.from, q.to];
  let where = 'tenant = ? AND minute >= ? AND minute < ?';
  if (q.type !== null) {
    where += ' AND type = ?';
    params.push(q.type);
  }
  return {
    sql: `SELECT (minute // ?) * ? AS bucket, sum(n) AS count FROM counts_1m WHERE ${where} GROUP BY bucket ORDER BY bucket`,
    params,
  };
}
