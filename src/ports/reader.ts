import type { TypedColumnsState } from './typed-columns.js';
import type { CountQuery, CountRow, MinuteCount } from '../core/types.js';
import type { BackfillSpec, BackfillState } from './backfill.js';
import type { EventSearch, QueryAnswer, SeriesScan, SeriesScanAnswer, StoredEvent } from './store.js';
import type { ViewSource, ViewState } from './views.js';
import type { QuerySpec, ViewDef } from '../core/query.js';

/**
 * What the query API needs of the store. In `sluice up` the store lives in another thread
 * and this is a message channel (app/store-thread-client.ts); in tests it is the store itself.
 */
export interface StoreReader extends StoreCalls {
  /**
   * Counts per bucket, with the applied offsets read *before* the counts, so that the
   * counts contain at least everything up to those offsets (the watermark relies on it).
   */
  counts(q: CountQuery): Promise<{ rows: CountRow[]; applied: Map<number, number> }>;
  health(): Promise<{ ok: boolean; detail?: string }>;
  /** See Store.recent. */
  recent(tenant: string, type: string, limit: number): Promise<string[]>;
  /** Starts a backfill in the background (see ops/backfill.ts). */
  startBackfill(spec: BackfillSpec): Promise<BackfillState>;
  /** A tenant's backfills, newest first. */
  backfills(tenant: string): Promise<BackfillState[]>;
  /** The latest conservation check (in `sluice up`, the one the store thread runs periodically). */
  conservation(): Promise<ConservationReply>;
}

/**
 * The store's queries and view declarations, as the HTTP API calls them. In `sluice up`
 * these run in the store thread and reach the HTTP thread by message (one generic call, see
 * app/store-thread-protocol.ts); the same object serves both.
 */
export interface StoreCalls {
  /** See Store.query; with the applied offsets read before it (for the watermark). */
  query(q: QuerySpec, cap: number): Promise<QueryAnswer & { applied: [number, number][] }>;
  /** Declares a view and starts its build (see ops/views.ts). */
  /** Declares a view (see ports/views.ts Views.put, `maxApi` included) and starts its build. */
  putView(tenant: string, def: ViewDef, source: ViewSource, maxApi?: number): Promise<ViewState>;
  removeView(tenant: string, name: string): Promise<boolean>;
  listViews(tenant: string): Promise<ViewState[]>;
  /** The tenant's typed columns (ports/typed-columns.ts); empty on a store without them. */
  listTypedColumns(tenant: string): Promise<TypedColumnsState[]>;
  searchEvents(search: EventSearch): Promise<StoredEvent[]>;
  findEvent(tenant: string, idempotencyKey: string): Promise<StoredEvent | null>;
  /** See Store.storedByMinute. */
  storedByMinute(from: number, to: number): Promise<MinuteCount[]>;
  /** See Store.seriesScan; null when the store has no such scan (then series are read one query at a time). */
  seriesScan(scan: SeriesScan): Promise<SeriesScanAnswer | null>;
}

export type StoreCall = keyof StoreCalls;

/** The last conservation check, as plain data (it crosses threads). */
export interface ConservationReply {
  checkedAt: number | null;
  settledUntil: number | null;
  from: number | null;
  unbalanced: MinuteBalance[];
  gapByTenant: [string, number][];
}

/** One tenant-minute of the conservation check: received against everything that accounts for it. */
export interface MinuteBalance {
  tenant: string;
  minute: number;
  received: number;
  stored: number;
  deadLettered: number;
  rejected: number;
  duplicate: number;
  /** received − (stored + deadLettered + rejected + duplicate). */
  gap: number;
}
