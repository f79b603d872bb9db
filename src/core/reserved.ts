/**
 * Names sluice uses for its own objects: the store's and the catalog's tables (DuckDB,
 * SQLite, PostgreSQL), the built-in view `counts_1m`, and the words the query API gives a
 * meaning (`raw`, `auto`). A name a tenant gives to an object of its own (a view, a tenant)
 * must not be one of these: a view named `counts_1m` would be answered from, and rebuilt
 * as, the built-in table instead of its own.
 *
 * Compared in lowercase (SQL identifiers are case-insensitive); names starting with `sluice_`,
 * `ledger_` or `view_` (the tables of the idempotency ledger and of each view) are kept for
 * sluice too.
 */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  // the store (tables and indexes)
  'events', 'counts_1m', 'applied', 'views', 'view_pending', 'backfills', 'backfill_snapshots', 'event_keys', 'key_duplicates_1m',
  'typed_tables', 'typed_promotions', 'events_received_at', 'events_tenant_key', 'events_tenant_ts',
  // the catalog and the log
  'tenants', 'api_keys', 'audit', 'schemas', 'dead_letters', 'catalog_meta', 'meta', 'members', 'deliveries', 'records', 'records_packed',
  'leases', 'offsets', 'heads', 'tallies', 'ledger', 'ledger_runs', 'dlq_groups', 'ingest_minutes', 'saved_queries',
  'pipelines', 'pipeline_live', 'pipeline_salts', 'rollouts', 'rollout_tallies', 'rollout_diffs',
  'alert_rules', 'alert_states', 'alert_history', 'alert_lease', 'alert_objects', 'alert_outbox', 'alert_notification_totals',
  // and their indexes
  'alert_history_by_time', 'alert_outbox_delivered', 'alert_outbox_due', 'audit_by_tenant', 'backfills_by_tenant', 'dead_letters_by_receipt',
  'dead_letters_by_signature', 'dead_letters_by_time', 'rollouts_by_tenant', 'rollouts_one_active',
  // words of the query API
  'raw', 'auto',
]);

export const RESERVED_PREFIXES: readonly string[] = ['sluice_', 'ledger_', 'view_'];

/** Whether `name` collides with one of sluice's own names (see RESERVED_NAMES). */
export function isReservedName(name: string): boolean {
  const n = name.toLowerCase();
  return RESERVED_NAMES.has(n) || RESERVED_PREFIXES.some((p) => n.startsWith(p));
}

/** The sentence an error gives when a name is reserved; `what` is the kind of object. */
export function reservedNameMessage(what: string, name: string): string {
  return `${what} name ${JSON.stringify(name)} is reserved by sluice (its own tables and words: ${[...RESERVED_NAMES].join(', ')}, and names starting with ${RESERVED_PREFIXES.map((p) => `"${p}"`).join(', ')}): choose another name`;
}
