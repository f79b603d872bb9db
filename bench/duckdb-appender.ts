import { DuckDBInstance, DuckDBTimestampMillisecondsValue } from '@duckdb/node-api';
import path from 'node:path';
import { SCHEMA } from '../src/backends/duckdb/sql.js';
import type { LogEntry } from '../src/core/types.js';

/**
 * The end-to-end baseline: DuckDB's appender in a bare loop, appending the same rows into the
 * same `events` table sluice uses, with nothing else (no HTTP, no log, no dedupe, no views).
 * The rows are built before the clock starts. Returns rows per second.
 */
export async function appenderRowsPerSecond(dir: string, entries: LogEntry[]): Promise<number> {
  const instance = await DuckDBInstance.create(path.join(dir, 'baseline.duckdb'));
  const c = await instance.connect();
  await c.run(SCHEMA);
  const storedAt = new DuckDBTimestampMillisecondsValue(BigInt(Date.now()));
  const rows = entries.map((e, i) => ({ e, ts: new DuckDBTimestampMillisecondsValue(BigInt(e.ts)), rec: new DuckDBTimestampMillisecondsValue(BigInt(e.receivedAt)), offset: BigInt(i + 1) }));
  const start = performance.now();
  const a = await c.createAppender('events');
  for (const { e, ts, rec, offset } of rows) {
    a.appendVarchar(e.tenant);
    a.appendVarchar(e.type);
    a.appendVarchar(e.key);
    a.appendVarchar(e.idempotencyKey);
    a.appendTimestampMilliseconds(ts);
    a.appendTimestampMilliseconds(rec);
    a.appendInteger(e.partition);
    a.appendBigInt(offset);
    a.appendVarchar(e.origin);
    a.appendVarchar(e.properties);
    a.appendVarchar(e.context);
    a.appendTimestampMilliseconds(storedAt);
    a.appendInteger(0); // pipeline_version
    a.appendInteger(0); // operator_version
    a.endRow();
  }
  a.flushSync();
  a.closeSync();
  const seconds = (performance.now() - start) / 1000;
  c.closeSync();
  instance.closeSync();
  return entries.length / seconds;
}
