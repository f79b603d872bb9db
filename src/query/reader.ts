import type { CountQuery, CountRow } from '../core/types.js';
import { checkConservation, toReply, type ConservationReply } from '../obs/conservation.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { Store } from '../ports/store.js';
import type { BackfillSpec, BackfillState } from '../ports/backfill.js';
import { BackfillRunner } from '../ops/backfill.js';

/**
 * What the query API needs of the store. In `sluice up` the store lives in another thread
 * and this is a message channel (worker/thread-client.ts); in tests it is the store itself.
 */
export interface StoreReader {
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

/** The store read in this thread; the conservation check runs on each call, backfills run here. */
export function directReader(store: Store, deps: { log: Log; catalog: Catalog; conservationWindowMs: number; signal?: AbortSignal }): StoreReader {
  const runner = new BackfillRunner(store, { signal: deps.signal ?? new AbortController().signal });
  return {
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
