/**
 * Glossary
 *
 * - event: what a producer sends: a `type`, an optional partition `key`, an optional
 *   timestamp `ts`, an optional `idempotency_key`, and free-form `properties` and `context`.
 * - record: an event as the log holds it, with the server's fields added (tenant,
 *   received_at, the idempotency key, origin) and a position (partition, offset).
 * - partition: one of P ordered sub-logs. An event's partition is hash(tenant, key) mod P,
 *   so one key's events stay in order.
 * - offset: a record's position in its partition, from 1, without gaps or reuse.
 * - lease: a consumer's time-bounded ownership of one partition. Each grant carries a
 *   fencing token that only grows; the store refuses a commit whose token is older than
 *   the newest one it has seen for that partition.
 * - attempt: how many times in a row a record was delivered without being acked, persisted
 *   before the consumer sees it (so a record that crashes the process is counted too).
 * - dead letter: an event that cannot be processed, kept with its reason and attempts.
 * - replay: re-injecting dead letters through the live path with their original keys.
 * - backfill: rebuilding a derived table from the raw events.
 * - view: a derived, read-optimized table (the per-minute counts are the first one).
 * - watermark: a time T such that every event received before T is visible to queries.
 *
 * Terms of sluice's own, in the order a record meets them:
 *
 * - idempotency key: the producer's `idempotency_key` (Segment's `messageId`, CloudEvents'
 *   `id`), or a hash of (tenant, type, key, timestamp, canonical properties). One key's
 *   effect happens once per tenant.
 * - dedupe horizon: how long the log remembers idempotency keys at append
 *   (`log.dedupeHorizonMs`, 7 days): a key seen within it is answered `duplicate`.
 * - receipt: what the log answers for one appended entry (appended at partition/offset, or
 *   duplicate); tally: per tenant and minute, what ingest received, rejected and found
 *   duplicate, written with the append (the conservation check's left-hand side).
 * - fault: a judgement ingest made but did not act on by refusing (a schema violation, an
 *   unknown type, too late): the record carries it through the log and a worker writes its
 *   dead letter, exactly once.
 * - consumer group: the consumers that share a log's partitions and keep one committed
 *   offset per partition (`workers` is the live group; a shadow pipeline runs as another).
 * - fencing token: a number that grows with each lease grant; a commit carrying an older
 *   token than the store has seen for the partition is refused (a consumer that lost its
 *   lease cannot write over its successor).
 * - applied offset: per partition, the last offset the store committed, written in the
 *   same transaction as the rows: a redelivered record (offset <= applied) is skipped.
 * - suspect: a delivery that repeats an unacked one (the consumer may have crashed on it):
 *   processed alone, and its attempts count towards poison.
 * - held: a record set aside while its tenant is paused by the dead-letter breaker; kept
 *   as a dead letter with status `held` and replayed on resume.
 * - replay generation: the n-th replay of a dead letter; the log dedupes (key, generation),
 *   so replaying one twice stores it once.
 * - stage: one step of the pipeline a worker runs over a batch (judge, hold, enrich; see
 *   worker/pipeline.ts).
 * - conservation: received = stored + dead-lettered + rejected + duplicate, per tenant and
 *   minute, checked continuously; the difference is the conservation gap.
 */

/** What a producer sends, after validation. Times are epoch milliseconds. */
export interface EventInput {
  type: string;
  key: string;
  ts: number | null;
  idempotencyKey: string | null;
  properties: Record<string, unknown>;
  context: Record<string, unknown>;
}

export type Origin = 'live' | 'replay' | 'backfill';

/** An event ready for the log: validated, keyed and partitioned. */
export interface LogEntry {
  tenant: string;
  type: string;
  key: string;
  /** The producer's key, or one derived deterministically (see core/hash.ts). */
  idempotencyKey: string;
  /** Event time in epoch ms: the producer's `ts`, else `receivedAt`. */
  ts: number;
  receivedAt: number;
  partition: number;
  origin: Origin;
  /** JSON text of the event's properties and context, kept as sent (canonical re-encoding is not needed). */
  properties: string;
  context: string;
  /**
   * W3C traceparent of the ingest request that brought the entry (absent when the request
   * was not traced), so that the worker's span can link to it.
   */
  trace?: string;
  /**
   * Set when ingest already knows the event cannot be stored (it fails its schema, it is too
   * late, its type is unknown and the tenant dead-letters those): the record still goes
   * through the log, so that the dead letter is written exactly once by a worker, and the
   * producer is told at once.
   */
  fault?: Fault;
  /**
   * The replay generation of a dead letter re-injected by replay (1 for its first replay);
   * absent for live events. It is part of the dedupe key, so that replaying the same dead
   * letter twice appends it once, and lets the dead-letter store ignore a stale failure.
   */
  replay?: number;
  /**
   * The version of the tenant's transform pipeline that produced the event (0 or absent: none), set by
   * the worker's `transform` stage and stored with the event (`pipeline_version`).
   */
  pipelineVersion?: number;
  /**
   * The version of the operator pipeline (src/core/operator.ts) that produced the event (0 or
   * absent: none), set by the worker's `operator_transform` stage and stored with the event
   * (`operator_version`), so that a rolled-back operator version's output can be found.
   */
  operatorVersion?: number;
}

/** Why ingest refused to store an event that it still kept (see LogEntry.fault). */
export interface Fault {
  reason: DeadLetterReason;
  message: string;
  /** JSON pointer to the field at fault, relative to the event ("" for the whole event). */
  path: string;
  /** The schema version the event was checked against. */
  schemaVersion?: number;
}

/** A log entry at its position in the log, as a consumer receives it. */
export interface LogRecord extends LogEntry {
  offset: number;
  /** Deliveries in a row without an ack, this one included (1 = first); see Log.read. */
  attempt: number;
  /**
   * This delivery repeats one that was never acked: the range may hold a record that
   * crashes its consumer. Consumers process a suspect delivery alone, so that a crash is
   * charged to its own partition only.
   */
  suspect?: boolean;
}

/** Per-event outcome of an append, in the order of the request. */
export type AppendOutcome =
  | { status: 'appended'; partition: number; offset: number }
  | { status: 'duplicate' };

/** Why an event was dead-lettered. */
export type DeadLetterReason =
  /** Delivered `maxAttempts` times without completing (it crashes or times out its consumer). */
  | 'poison'
  /** The store refused the row itself. */
  | 'invalid_row'
  /** The event fails its type's current schema. */
  | 'schema_violation'
  /** No schema for the type, and the tenant dead-letters unknown types. */
  | 'unknown_type'
  /** Older than the lateness window. */
  | 'too_late'
  /** An enricher failed permanently for this event. */
  | 'enrich_failed'
  /** Held, not failed: the tenant's dead-letter breaker was open; resuming replays it. */
  | 'held'
  /** A step of the tenant's transform pipeline failed on this event (a cast that cannot cast, an expression error). */
  | 'transform_failed'
  /** A `drop` step of the tenant's pipeline dropped it on purpose: recorded as discarded, so that it is counted. */
  | 'dropped'
  /** The reason of a `dead_letter` step of the tenant's pipeline, e.g. `missing_order_id` (lower-case, digits, `_`). */
  | (string & { readonly pipelineReason?: never });

export interface DeadLetter {
  record: LogRecord;
  reason: DeadLetterReason;
  message: string;
  path?: string;
  schemaVersion?: number;
}

/**
 * What one ingest request brought, beyond its accepted entries: written by the log in the
 * same transaction as the entries, so that the conservation check (received = stored +
 * dead-lettered + rejected + duplicate, per tenant and minute of receipt) never sees half a
 * request.
 */
export interface Receipt {
  tenant: string;
  receivedAt: number;
  /** Events in the request, whatever became of them. */
  received: number;
  /** Events refused at the door (validation). Duplicates are counted by the log itself. */
  rejected: number;
}

/** Per tenant and minute of receipt (epoch ms of the minute's start): what ingest saw. */
export interface Tally {
  tenant: string;
  minute: number;
  received: number;
  rejected: number;
  duplicate: number;
}

/** Per tenant and minute of receipt: how many events ended somewhere (stored, dead-lettered). */
export interface MinuteCount {
  tenant: string;
  minute: number;
  n: number;
}

/** One bucket of a timeseries answer. */
export type Interval = '1m' | '5m' | '15m' | '1h' | '6h' | '1d';

export interface CountQuery {
  tenant: string;
  /** Restrict to one event type; null = all types. */
  type: string | null;
  from: number;
  to: number;
  interval: Interval;
}

export interface CountRow {
  bucket: number;
  count: number;
}
