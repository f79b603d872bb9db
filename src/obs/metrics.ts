import client from 'prom-client';

/**
 * sluice's Prometheus metrics. Each thread of `sluice up` has its own registry: the HTTP
 * thread (ingest, HTTP, the log's backlog, process metrics) and the store thread (commits,
 * stored and dead-lettered events, the conservation check). `/metrics` merges the two (see
 * `mergeMetrics`); every metric is owned by exactly one thread, so the merge never adds a
 * value to itself.
 *
 * Per-tenant labels are bounded: the first `maxTenants` tenants seen get their own label, the
 * rest share "sluice_other". First-come rather than "the biggest": a counter cannot move between
 * labels without breaking `rate()`, so a label, once given, stays.
 */

/** Starts with "sluice_", which no tenant name may (src/core/reserved.ts): a tenant named "other" is not counted with the rest. */
export const OTHER_TENANT = 'sluice_other';

export class TenantLabels {
  private readonly admitted = new Set<string>();

  /** `onAdmit` hears of each tenant given its own label by `of`. */
  constructor(
    private readonly max: number,
    private readonly onAdmit?: (tenant: string) => void,
  ) {}

  /** The label for `tenant`, admitting it while there is room. */
  of(tenant: string): string {
    if (this.admitted.has(tenant)) return tenant;
    if (this.admitted.size < this.max) {
      this.admitted.add(tenant);
      this.onAdmit?.(tenant);
      return tenant;
    }
    return OTHER_TENANT;
  }

  /** The label for `tenant` without admitting it (threads that follow another's choice). */
  peek(tenant: string): string {
    return this.admitted.has(tenant) ? tenant : OTHER_TENANT;
  }

  admit(tenants: Iterable<string>): void {
    for (const t of tenants) if (this.admitted.size < this.max) this.admitted.add(t);
  }
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Metrics of the HTTP thread. */
export function ingestMetrics(registry: client.Registry) {
  const registers = [registry];
  client.collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
  return {
    httpDuration: new client.Histogram({
      name: 'sluice_http_request_duration_seconds',
      help: 'HTTP request latency by method, route and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    received: new client.Counter({ name: 'sluice_events_received_total', help: 'Events received in ingest requests that were read', labelNames: ['tenant'], registers }),
    accepted: new client.Counter({ name: 'sluice_events_accepted_total', help: 'Events appended to the log (durable)', labelNames: ['tenant'], registers }),
    rejected: new client.Counter({ name: 'sluice_events_rejected_total', help: 'Events refused at the door, by reason', labelNames: ['tenant', 'reason'], registers }),
    refused: new client.Counter({
      name: 'sluice_ingest_refused_requests_total',
      help: 'Ingest requests refused before reading them: 429 (events_per_second, bytes_per_second, backlog) or 503 (log_backlog, event_loop)',
      labelNames: ['tenant', 'reason'],
      registers,
    }),
    duplicates: new client.Counter({ name: 'sluice_events_duplicate_total', help: 'Events whose idempotency key was already seen', labelNames: ['tenant'], registers }),
    alerts: new client.Gauge({ name: 'sluice_alerts', help: 'Alerts by tenant, rule (alertname), severity and state (inactive, pending, firing, resolved, insufficient_data)', labelNames: ['tenant', 'alertname', 'severity', 'state'], registers }),
    notifications: new client.Counter({
      name: 'sluice_alert_notifications_total',
      help: 'Alert notifications by tenant, receiver and result: sent (delivered) or failed (attempts that failed, each retried)',
      labelNames: ['tenant', 'receiver', 'result'],
      registers,
    }),
    appendDuration: new client.Histogram({
      name: 'sluice_log_append_duration_seconds',
      help: 'Time from an append call to its durable group commit',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    backlog: new client.Gauge({ name: 'sluice_log_backlog_events', help: 'Records in the log not yet acknowledged by the workers', registers }),
    backlogBytes: new client.Gauge({
      name: 'sluice_log_backlog_bytes',
      help: 'Unacknowledged records in bytes, estimated from the mean size of recent appends (absent until this process appended)',
      registers,
    }),
    logBytes: new client.Gauge({ name: 'sluice_log_disk_bytes', help: 'Size of the log on disk (database and write-ahead log)', registers }),
    ledgerKeys: new client.Gauge({
      name: 'sluice_log_ledger_keys',
      help: "Idempotency keys in the embedded log's key ledger (the current and the previous dedupe horizon); read back at the first append after a start, 0 until then and on NATS (JetStream keeps its own window)",
      registers,
    }),
    ledgerFilterBytes: new client.Gauge({
      name: 'sluice_log_ledger_filter_bytes',
      help: "Memory of the embedded key ledger's Bloom filters (1.75 bytes a key of its runs, and a merge's output while it runs): grows with the keys within log.dedupeHorizonMs. Keys get a filter once their tail (log.ledgerRunKeys keys, held as an exact set of about 5 MiB, not counted here) is rewritten as a run, so it reads 0 below that many keys; also 0 until the first append after a start and on NATS",
      registers,
    }),
    lagEvents: new client.Gauge({ name: 'sluice_consumer_lag_events', help: 'Unacknowledged records per partition', labelNames: ['partition'], registers }),
    lagSeconds: new client.Gauge({
      name: 'sluice_consumer_lag_seconds',
      help: 'Age of the oldest unacknowledged record per partition (0 when caught up)',
      labelNames: ['partition'],
      registers,
    }),
    freshness: new client.Gauge({
      name: 'sluice_freshness_seconds',
      help: 'Now minus the query watermark: how far behind the counts are',
      registers,
    }),
  };
}

/** Metrics of the store thread. */
export function storeMetrics(registry: client.Registry) {
  const registers = [registry];
  return {
    stored: new client.Counter({ name: 'sluice_events_stored_total', help: 'Events committed to the store', labelNames: ['tenant'], registers }),
    deadLettered: new client.Counter({
      name: 'sluice_events_dead_lettered_total',
      help: 'Events dead-lettered by the workers, by reason',
      labelNames: ['tenant', 'reason'],
      registers,
    }),
    commitDuration: new client.Histogram({
      name: 'sluice_store_commit_duration_seconds',
      help: 'Store commit latency (one transaction: raw rows, views (PostgreSQL) or their pending rows (embedded), applied offsets)',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    commitRecords: new client.Counter({ name: 'sluice_store_committed_records_total', help: 'Records handed to store commits (stored or skipped as already applied)', registers }),
    redelivered: new client.Counter({ name: 'sluice_store_skipped_records_total', help: 'Redelivered records skipped because the store already had them', registers }),
    retries: new client.Counter({ name: 'sluice_worker_retries_total', help: 'Transient failures retried with backoff', registers }),
    busy: new client.Counter({ name: 'sluice_worker_busy_seconds_total', help: 'Time the workers spent processing batches; rate() is the busy ratio', registers }),
    memory: new client.Gauge({
      name: 'sluice_store_memory_bytes',
      help: "Memory the store's engine holds by its own accounting (the embedded store's block cache and queries, at most store.memoryMb)",
      registers,
    }),
    memoryByTag: new client.Gauge({
      name: 'sluice_store_memory_by_tag_bytes',
      help: "sluice_store_memory_bytes by what the memory holds, in the engine's own terms (DuckDB's duckdb_memory() tags, lower-cased): base_table is blocks of stored tables kept cached after they were written or read, evicted only as the store nears store.memoryMb; in_memory_table is rows committed but not yet checkpointed",
      labelNames: ['tag'] as const,
      registers,
    }),
    viewPending: new client.Gauge({
      name: 'sluice_store_view_pending_rows',
      help: "Stored events the embedded store's views have not all folded in yet (queries read them beside the views); a count that keeps growing means a tenant's views cost more than the machine has",
      registers,
    }),
    queriesWaiting: new client.Gauge({ name: 'sluice_store_queries_waiting', help: 'Queries waiting in line for a reader of the embedded store (not yet running)', registers }),
    readersBusy: new client.Gauge({ name: 'sluice_store_readers_busy', help: 'Readers of the embedded store running a query (at most query.readers)', registers }),
    threadHeap: new client.Gauge({ name: 'sluice_store_thread_heap_bytes', help: 'V8 heap of the store thread (its old space at most worker.heapMb)', registers }),
    leases: new client.Gauge({ name: 'sluice_worker_leases', help: 'Partitions leased by this process', registers }),
    gap: new client.Gauge({
      name: 'sluice_conservation_gap_events',
      help: 'Sum over settled minutes of |received - (stored + dead_lettered + rejected + duplicate)|; anything but 0 is a bug',
      labelNames: ['tenant'],
      registers,
    }),
    rolloutShare: new client.Gauge({ name: 'sluice_rollout_share', help: 'Percent of the tenant\'s entity keys on the rollout\'s candidate (0-100)', labelNames: ['tenant', 'rollout', 'change'], registers }),
    rolloutGuardrail: new client.Gauge({
      name: 'sluice_rollout_guardrail_value',
      help: 'A rollout guardrail\'s value at the last evaluation, for the cohort and the baseline (rates are fractions; cost_per_event_ms in ms)',
      labelNames: ['tenant', 'rollout', 'guardrail', 'side'],
      registers,
    }),
    settled: new client.Gauge({ name: 'sluice_conservation_settled_until_seconds', help: 'Minutes before this time (unix seconds) were checked', registers }),
  };
}

export type IngestMetrics = ReturnType<typeof ingestMetrics>;
export type StoreMetrics = ReturnType<typeof storeMetrics>;
export type MetricsJson = Awaited<ReturnType<client.Registry['getMetricsAsJSON']>>;

/** The Prometheus text of several threads' registries, as one. */
export async function mergeMetrics(parts: MetricsJson[]): Promise<{ contentType: string; text: string }> {
  const merged = client.AggregatorRegistry.aggregate(parts);
  return { contentType: merged.contentType, text: await merged.metrics() };
}

export { client as prom };
