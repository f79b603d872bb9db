import type { Backfills } from './backfill.js';
import type { Views } from './views.js';
import type { TypedColumns } from './typed-columns.js';
import type { CountQuery, CountRow, LogRecord, MinuteCount, Origin } from '../core/types.js';
import type { Filter, Measure, QuerySpec } from '../core/query.js';

/**
 * The Store: raw events (append-only) and the tables derived from them, with an idempotent
 * commit and the queries that read them.
 *
 * Call order: `connect` once, then `commit` and the queries in any order (a backend
 * serializes commits itself), then `close`.
 */
export interface Store {
  readonly name: string;

  /** How this engine keeps the commit's promises (derived from the engine, not configured). */
  readonly capabilities: StoreCapabilities;

  connect(signal?: AbortSignal): Promise<void>;

  /**
   * Commits a batch in one transaction: the raw rows and the derived per-minute counts of
   * every record not yet applied, and the new applied offset of each partition.
   *
   * Idempotent by position: a record at or below its partition's applied offset is skipped,
   * so a redelivered batch changes nothing. Fenced: a partition whose `token` is older than
   * the newest token the store has seen for it is refused with FencedError, and nothing of
   * the batch is written. Records whose partition has no entry in `partitions` are refused.
   *
   * Throws RetryAfterError for transient failures (I/O, busy); NonRetryableError when a row
   * itself cannot be stored (the caller isolates it and dead-letters it).
   */
  commit(batch: CommitBatch): Promise<CommitResult>;

  /** Newest applied offset per partition (partitions never committed are absent). */
  appliedOffsets(): Promise<Map<number, number>>;

  /** Event counts of one tenant per bucket, read from the derived per-minute table. */
  counts(query: CountQuery, signal?: AbortSignal): Promise<CountRow[]>;

  /**
   * Answers a structured query (query/spec.ts), from a ready view that covers it (see
   * query/plan.ts), else from raw events; rows hold the columns of `columnsOf(q)`, at most
   * `cap` of them. Interrupted past the store's query timeout (RetryAfterError).
   */
  query(q: QuerySpec, cap: number, signal?: AbortSignal): Promise<QueryAnswer>;

  /**
   * The per-minute series of several queries of one tenant read in one scan of its events
   * (alert evaluation reads every series of a tenant that needs a full read this way; see
   * alerts/series-cache.ts). Each series counts, per minute of event time in [from, to), the
   * raw events received in `received` that match its event and filters, exactly as `query`
   * with those filters, `interval: '1m'` and `source: 'raw'` would; with a `measure` (sum,
   * min or max) also that measure per minute. Minutes without events are absent.
   *
   * Optional (DuckDB and PostgreSQL have it; the SQL is backends/sql/series-scan.ts): a
   * store without it is read one query per series. Interrupted past `scan.timeoutMs`, else
   * the store's query timeout (RetryAfterError).
   */
  seriesScan?(scan: SeriesScan, signal?: AbortSignal): Promise<SeriesScanAnswer>;

  /** A tenant's stored events, newest first (by event time, then position), from before `before`. Empty: none left. */
  searchEvents(search: EventSearch, signal?: AbortSignal): Promise<StoredEvent[]>;

  /** The stored event of a tenant with this idempotency key; null when the store does not have it. */
  findEvent(tenant: string, idempotencyKey: string): Promise<StoredEvent | null>;

  /** View definitions and their tables (see ports/views.ts). */
  readonly views: Views;

  /** Raw events stored for a tenant and how many distinct idempotency keys they carry (equal unless something was doubled). */
  rawStats(tenant: string): Promise<{ events: number; distinctKeys: number }>;

  /** The `properties` (JSON text) of the newest stored events of a tenant and type, newest first: a sample of recent traffic. */
  recent(tenant: string, type: string, limit: number): Promise<string[]>;

  /** Stored events per tenant and minute of their receipt by ingest, for minutes in [from, to). */
  storedByMinute(from: number, to: number): Promise<MinuteCount[]>;

  /** Rebuilding derived tables from the raw events. */
  readonly backfills: Backfills;

  /**
   * Rollback with repair of a pipeline version: the log positions and event times of the
   * tenant's raw events that `version` produced, in position order. Empty when there are none.
   * `of` names the pipeline: the tenant's transform pipeline (`pipeline_version`, the default)
   * or the operator pipeline (`operator_version`; call it tenant by tenant for an
   * operator-wide rollback).
   */
  producedBy(tenant: string, version: number, of?: VersionOf): Promise<EventPosition[]>;

  /**
   * Deletes the tenant's raw events that `version` (of the pipeline `of`, as in producedBy)
   * produced at these positions, with what they added to the per-minute counts (and, on a
   * store that keeps one, to the key ledger, so that the same key can be stored again), in one
   * transaction. Views are not changed: rebuild them over the events' times with a backfill.
   * Idempotent: answers how many were deleted now.
   */
  withdraw(tenant: string, version: number, positions: readonly EventPosition[], of?: VersionOf): Promise<number>;

  /**
   * Columns for the properties schemas declare (see ports/typed-columns.ts); absent: this
   * store always reads properties from the JSON.
   */
  readonly typedColumns?: TypedColumns;

  /** Whether the store answers, and the memory its engine holds (see StoreHealth). */
  health(): Promise<StoreHealth>;

  /** Idempotent; must not throw. */
  close(): Promise<void>;
}

/** What `Store.health` answers. */
export interface StoreHealth {
  ok: boolean;
  /** Why not, when it does not answer or cannot commit. */
  detail?: string;
  /**
   * The memory its engine holds by its own accounting (the embedded store's block cache and
   * queries), when it keeps one, bytes.
   */
  memoryBytes?: number;
  /**
   * The same by what it holds, bytes by the engine's own names: DuckDB's `duckdb_memory()`
   * tags, lower-cased (`base_table` for cached blocks of stored tables, `in_memory_table` for
   * rows not yet checkpointed, `art_index`, …).
   */
  memoryByTag?: Record<string, number>;
}

/**
 * What a store's engine gives, declared by the store and checked by the conformance suite
 * (test/conformance/store-suite.ts).
 */
export interface StoreCapabilities {
  /**
   * How `commit` applies each record exactly once:
   * - `transactional-offsets`: the rows, the derived counts and each partition's applied
   *   offset (with its fencing token) are written in one transaction, so a batch is stored
   *   whole or not at all, and a redelivered record at or below the applied offset is skipped
   *   (DuckDB, PostgreSQL).
   * - `insert-deduplication`: no multi-statement transaction; each insert carries a
   *   deduplication token derived from the batch (partition, first and last offset), so a
   *   retried insert of the same block is dropped by the engine, and the applied offsets
   *   are written after the rows (ClickHouse's insert_deduplication_token).
   */
  readonly exactlyOnce: 'transactional-offsets' | 'insert-deduplication';
  /** Several statements commit or roll back together (`exactlyOnce: 'transactional-offsets'` needs it). */
  readonly transactions: boolean;
  /** Several processes may commit at once (each partition under its own lease); false: one writing process. */
  readonly concurrentWriters: boolean;
}

export interface CommitBatch {
  records: readonly LogRecord[];
  /** For each partition in the batch: the lease token and the offset the batch ends at. */
  partitions: readonly { partition: number; token: number; upTo: number }[];
}

export interface CommitResult {
  /** Records written now. */
  stored: number;
  /** Records skipped because an earlier commit applied them. */
  skipped: number;
  /** `stored`, per tenant. */
  storedByTenant: Map<string, number>;
}

/** Several queries' per-minute series over one tenant's events (see Store.seriesScan). */
export interface SeriesScan {
  tenant: string;
  /** Event time [from, to), epoch ms. */
  from: number;
  to: number;
  /** Only events received (`received_at`, epoch ms) in [from, to); `from` null: no lower bound. */
  received: { from: number | null; to: number };
  series: SeriesScanQuery[];
  /**
   * Interrupted past this (ms) instead of the store's query timeout: one scan does the work
   * of a query per series (alert evaluation gives it the evaluation interval).
   */
  timeoutMs?: number;
}

/** One series of a scan: what a query's `event`, `filters` and second measure say. */
export interface SeriesScanQuery {
  event: string | null;
  filters: Filter[];
  /** A second column: `sum`, `min` or `max` of a field; null (or `count`): counts only. */
  measure: Measure | null;
}

/**
 * A scan's rows, column by column (typed arrays cross threads without a copy per row): row i
 * is minute `minutes[i]` (epoch ms) of series `series[i]` (its index in the scan), with
 * `counts[i]` events and the value `values[i]` (NaN: none, or no measure). A series' minute
 * may come in several rows: its count is the sum of theirs, its value their merge (the sum of
 * the sums, the least of the minima, the greatest of the maxima).
 */
export interface SeriesScanAnswer {
  series: Float64Array;
  minutes: Float64Array;
  counts: Float64Array;
  values: Float64Array;
}

/** One cell of a query answer. */
export type Cell = string | number | boolean | null;

export interface QueryAnswer {
  rows: Cell[][];
  /** `view:<name>` or `raw`. */
  source: string;
  /** Raw events read from typed columns instead of the JSON (same answer; see ports/typed-columns.ts). */
  typed?: boolean;
}

export interface EventSearch {
  tenant: string;
  type?: string;
  key?: string;
  /** Event-time range [from, to), epoch ms. */
  from: number;
  to: number;
  limit: number;
  /** Continue after this event (the last one of the previous page). */
  before?: { ts: number; partition: number; offset: number };
}

export interface StoredEvent {
  type: string;
  key: string;
  idempotencyKey: string;
  ts: number;
  receivedAt: number;
  storedAt: number;
  partition: number;
  offset: number;
  origin: Origin;
  /** JSON text. */
  properties: string;
  context: string;
  /** The version of the tenant's transform pipeline that produced it (0: none). */
  pipelineVersion: number;
  /** The version of the operator pipeline that produced it (0: none). */
  operatorVersion: number;
}

/**
 * Which pipeline's version selects events in Store.producedBy and Store.withdraw: the tenant's
 * transform pipeline (column `pipeline_version`) or the operator pipeline (`operator_version`).
 */
export type VersionOf = 'pipeline' | 'operator';

/** Where a stored event came from in the log, and its event time (epoch ms). */
export interface EventPosition {
  partition: number;
  offset: number;
  ts: number;
}
