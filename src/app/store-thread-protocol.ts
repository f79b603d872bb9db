import type { CountQuery, CountRow } from '../core/types.js';
import type { MetricsJson } from '../obs/metrics.js';
import type { BackfillSpec, BackfillState } from '../ports/backfill.js';
import type { ConservationReply, StoreCalls } from '../ports/reader.js';

export type { ConservationReply };

/**
 * The store thread's protocol: one generic call. A thread sends `{op: 'call', id, method,
 * args}` and gets `{op: 'reply', id, ok, value | code+message}`; `id` 0 asks for no reply (a
 * notification). The store thread tells its parent what happens to it with `{op: 'event'}`.
 * Values cross by structured clone: plain data only (Maps as entry arrays).
 */
export type ToStoreThread = { op: 'call'; id: number; method: StoreThreadMethod; args: unknown[] } | { op: 'stop' };

export type FromStoreThread =
  | { op: 'reply'; id: number; ok: true; value: unknown }
  | { op: 'reply'; id: number; ok: false; code: string; message: string; field?: string }
  | { op: 'event'; event: StoreThreadEvent };

export type StoreThreadEvent =
  /** The store is open and the consumers (if any) started. */
  | { kind: 'ready' }
  /** The thread could not start; it exits and is restarted with backoff. */
  | { kind: 'fatal'; message: string }
  /** The reply to `stop`: consumers drained, store closed. */
  | { kind: 'stopped' }
  /** Events the workers finished per tenant since the last report (ingest's backlog accounting). */
  | { kind: 'processed'; counts: [string, number][] }
  /** Why the store cannot be opened yet (readiness reports it). */
  | { kind: 'unavailable'; message: string };

/** Every call the store thread serves: the store's calls plus the thread's own. */
export interface StoreThreadCalls extends StoreCalls {
  /** Counts per bucket, with the applied offsets read before them (entries of a Map). */
  counts(query: CountQuery): Promise<CountsReply>;
  health(): Promise<{ ok: boolean; detail?: string }>;
  recent(tenant: string, type: string, limit: number): Promise<string[]>;
  startBackfill(spec: BackfillSpec): Promise<BackfillState>;
  backfills(tenant: string): Promise<BackfillState[]>;
  /** The store thread's Prometheus metrics, to merge into /metrics. */
  metrics(): Promise<MetricsJson>;
  conservation(): Promise<ConservationReply>;
  /** New records are in the log (a notification). */
  notify(): Promise<void>;
  /** Tenants that have a metric label of their own (a notification). */
  labelTenants(tenants: string[]): Promise<void>;
  /** Held consumers (started with `hold`) may process records now (a notification). */
  begin(): Promise<void>;
}

export type StoreThreadMethod = keyof StoreThreadCalls;

/** Calls answered at once, even while the store is starting (they do not need it open). */
export const WITHOUT_STORE: ReadonlySet<StoreThreadMethod> = new Set(['metrics', 'conservation', 'health', 'notify', 'labelTenants', 'begin']);

export interface CountsReply {
  rows: CountRow[];
  applied: [number, number][];
}
