import {
  DuckDBDataChunk,
  DuckDBTimestampMillisecondsValue,
  BIGINT,
  INTEGER,
  TIMESTAMP_MS,
  VARCHAR,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import type { LogRecord } from '../../core/types.js';
import type { DuckdbTypedColumns } from './typed-columns.js';
import type { ViewFolds } from './view-folds.js';
import type { DuckdbViews } from './views.js';

/**
 * The rows of one commit on DuckDB, written inside the transaction the store opened: the raw
 * events, and what derives from them (typed columns; the rows views will fold) from exactly
 * the rows appended.
 *
 * Rows of tenants with views or typed columns are appended to `staging` (temporary: this
 * connection only, never on disk), copied to `events` by one INSERT … SELECT; the typed
 * columns are computed from `staging`, and the rows of tenants with views are kept in
 * `view_pending` for their views to fold after the commit (view-folds.ts); the others are
 * appended to `events` directly. Measured (100k and 20k events per commit, 2 cores): the staging detour costs
 * about what it saves, the appender into a temporary table being cheaper than into `events`
 * (within the machine's noise of the direct path); what typed columns cost at commit is the
 * JSON parsed again for their values and the pages of their tables, see store.ts
 * CHECKPOINT_MB.
 */
export const STAGING_DDL = 'CREATE TEMP TABLE IF NOT EXISTS staging AS SELECT * FROM events LIMIT 0';

const EVENT_TYPES: DuckDBType[] = [VARCHAR, VARCHAR, VARCHAR, VARCHAR, TIMESTAMP_MS, TIMESTAMP_MS, INTEGER, BIGINT, VARCHAR, VARCHAR, VARCHAR, TIMESTAMP_MS, INTEGER, INTEGER];

export class CommitRows {
  constructor(
    private readonly views: DuckdbViews,
    private readonly folds: ViewFolds,
    private readonly typed: DuckdbTypedColumns,
    /** Rows per appended data chunk; the event loop is yielded between chunks. */
    private readonly chunkRows: number,
  ) {}

  /** Writes `records` (fresh: none already applied) inside the open transaction of `c`, as commit `seq`. */
  async write(c: DuckDBConnection, records: readonly LogRecord[], seq: number): Promise<void> {
    const viewed = new Set<string>();
    let typed = false;
    for (const r of records) {
      if (this.views.has(r.tenant)) viewed.add(r.tenant);
      typed ||= this.typed.has(r.tenant);
    }
    if (viewed.size === 0 && !typed) return this.append(c, records, 'events');
    await this.append(c, records, 'staging');
    await c.run('INSERT INTO events SELECT * FROM staging');
    await this.folds.stage(c, 'staging', viewed, seq);
    if (typed) await this.typed.maintain(c, 'staging', records);
    await c.run('DELETE FROM staging');
  }

  private async append(c: DuckDBConnection, records: readonly LogRecord[], table: 'events' | 'staging'): Promise<void> {
    const appender = table === 'events' ? await c.createAppender('events') : await c.createAppender('staging', 'main', 'temp');
    try {
      const storedAt = new DuckDBTimestampMillisecondsValue(BigInt(Date.now()));
      for (let start = 0; start < records.length; start += this.chunkRows) {
        const n = Math.min(this.chunkRows, records.length - start);
        const cols: DuckDBValue[][] = EVENT_TYPES.map(() => new Array<DuckDBValue>(n));
        for (let i = 0; i < n; i++) {
          const r = records[start + i]!;
          cols[0]![i] = r.tenant;
          cols[1]![i] = r.type;
          cols[2]![i] = r.key;
          cols[3]![i] = r.idempotencyKey;
          cols[4]![i] = new DuckDBTimestampMillisecondsValue(BigInt(r.ts));
          cols[5]![i] = new DuckDBTimestampMillisecondsValue(BigInt(r.receivedAt));
          cols[6]![i] = r.partition;
          cols[7]![i] = BigInt(r.offset);
          cols[8]![i] = r.origin;
          cols[9]![i] = r.properties;
          cols[10]![i] = r.context;
          cols[11]![i] = storedAt;
          cols[12]![i] = r.pipelineVersion ?? 0;
          cols[13]![i] = r.operatorVersion ?? 0;
        }
        const chunk = DuckDBDataChunk.create(EVENT_TYPES, n);
        chunk.setColumns(cols);
        appender.appendDataChunk(chunk);
        // Appending is synchronous; yield so that queries and lease renewals are served.
        if (start + n < records.length) await new Promise((r) => setImmediate(r));
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
  }
}
