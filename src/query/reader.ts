import type { CountQuery, CountRow, MinuteCount } from '../core/types.js';
import { checkConservation, toReply, type ConservationReply } from '../obs/conservation.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { Store } from '../ports/store.js';
import type { BackfillSpec, BackfillState } from '../ports/backfill.js';
import { BackfillRunner } from '../ops/backfill.js';
import { ViewBuilds } from '../ops/views.js';
import type { EventSearch, QueryAnswer, StoredEvent } from '../ports/store.js';
import type { ViewSource, ViewState } from '../ports/views.js';
import type { QuerySpec, ViewDef } from './spec.js';

/**
 * What the query API needs of the store. In `sluice up` the store lives in another thread
 * and this is a message channel (worker/thread-client.ts); in tests it is the store itself.
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
 * worker/thread-protocol.ts); the same object serves both.
 */
export interface StoreCalls {
  /** See Store.query; with the applied offsets read before it (for the watermark). */
  query(q: QuerySpec, cap: number): Promise<QueryAnswer & { applied: [number, number][] }>;
  /** Declares a view and starts its build (see ops/views.ts). */
  putView(tenant: string, def: ViewDef, source: ViewSource): Promise<ViewState>;
  removeView(tenant: string, name: string): Promise<boolean>;
  listViews(tenant: string): Promise<ViewState[]>;
  searchEvents(search: EventSearch): Promise<StoredEvent[]>;
  findEvent(tenant: string, idempotencyKey: string): Promise<StoredEvent | null>;
  /** See Store.storedByMinute. */
  storedByMinute(from: number, to: number): Promise<MinuteCount[]>;
}

export type StoreCall = keyof StoreCalls;

export function storeCalls(store: Store, builds: ViewBuilds): StoreCalls {
  return {
    async query(q, cap) {
      const applied = await store.appliedOffsets();
      return { ...(await store.query(q, cap)), applied: [...applied] };
    },
    putView: (tenant, def, source) => builds.put(tenant, def, source),
    removeView: (tenant, name) => store.views.remove(tenant, name),
    listViews: (tenant) => store.views.list(tenant),
    searchEvents: (search) => store.searchEvents(search),
    findEvent: (tenant, key) => store.findEvent(tenant, key),
    storedByMinute: (from, to) => store.storedByMinute(from, to),
  };
}

/** The store read in this thread; the conservation check runs on each call, backfills run here. */
export function directReader(store: Store, deps: { log: Log; catalog: Catalog; conservationWindowMs: number; signal?: AbortSignal }): StoreReader {
  const runner = new BackfillRunner(store, { signal: deps.signal ?? new AbortController().signal });
  return {
    ...storeCalls(store, new ViewBuilds(store, runner)),
    startBackfill: (spec) => runner.start(spec),
    backfills: (tenant) => runner.list(tenant),
    async counts(q) {
      const applied = await store.appliedOffsets();
      return { rows: await store.counts(q), applied };
    },
    health: () => store.health(),
    recent: (tenant, type, limit) => store.recent(tenant, type, limit),
    async conservation() {
      const now = Date.now();
      return toReply(await checkConservation({ store, ...deps }, now, deps.conservationWindowMs), now);
    },
  };
}
