import { BACKFILL_TABLES } from './backfill.js';
import type { Migration } from './database.js';

/**
 * The store's tables on PostgreSQL, by migration version (database.ts `migrate` applies those a
 * schema has not had yet, in order). Never edit a released version: add the next one.
 *
 * - 1: raw events (range-partitioned by day of `ts`, see PostgresStore.ensureDays), the key
 *   ledger (`event_keys`) and its duplicate counts, `counts_1m`, and `applied` (each
 *   partition's applied offset and fencing token).
 * - 2: views and backfills (views.ts, backfill.ts).
 * - 3, 4: the transform and operator pipeline versions that produced each event (0: none).
 */
export const STORE_MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `
      CREATE OR REPLACE FUNCTION sluice_num(x text) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN x ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]{1,4})?\\s*$'
          THEN least(greatest(x::numeric, -1.7976931348623157e308), 1.7976931348623157e308)::double precision END
      $$;
      CREATE TABLE events (
        tenant text NOT NULL,
        type text NOT NULL,
        key text NOT NULL,
        idempotency_key text NOT NULL,
        ts bigint NOT NULL,
        received_at bigint NOT NULL,
        partition integer NOT NULL,
        "offset" bigint NOT NULL,
        origin text NOT NULL,
        properties jsonb NOT NULL,
        context jsonb NOT NULL,
        stored_at bigint NOT NULL
      ) PARTITION BY RANGE (ts);
      CREATE INDEX events_tenant_ts ON events (tenant, ts);
      CREATE INDEX events_tenant_key ON events (tenant, idempotency_key);
      CREATE INDEX events_received_at ON events (received_at);
      CREATE TABLE event_keys (tenant text NOT NULL, idempotency_key text NOT NULL, stored_at bigint NOT NULL, PRIMARY KEY (tenant, idempotency_key));
      CREATE TABLE key_duplicates_1m (tenant text NOT NULL, minute bigint NOT NULL, n bigint NOT NULL, PRIMARY KEY (tenant, minute));
      CREATE TABLE counts_1m (tenant text NOT NULL, type text NOT NULL, minute bigint NOT NULL, n bigint NOT NULL, PRIMARY KEY (tenant, type, minute));
      CREATE TABLE applied (p integer PRIMARY KEY, o bigint NOT NULL, token bigint NOT NULL);
    `,
  },
  {
    // Views and backfills (see views.ts and backfill.ts).
    version: 2,
    sql: `
      CREATE TABLE views (
        tenant text NOT NULL, name text NOT NULL, version integer NOT NULL, definition text NOT NULL,
        tbl text NOT NULL, status text NOT NULL, build text, source text NOT NULL,
        created_at bigint NOT NULL, updated_at bigint NOT NULL, error text,
        PRIMARY KEY (tenant, name)
      );
      ${BACKFILL_TABLES}
    `,
  },
  {
    // The transform pipeline version that produced each event (0: none); old rows get 0.
    version: 3,
    sql: `ALTER TABLE events ADD COLUMN IF NOT EXISTS pipeline_version integer NOT NULL DEFAULT 0;`,
  },
  {
    // The operator pipeline version that produced each event (0: none); old rows get 0.
    version: 4,
    sql: `ALTER TABLE events ADD COLUMN IF NOT EXISTS operator_version integer NOT NULL DEFAULT 0;`,
  },
];
