import { checkConservation, toReply } from '../obs/conservation.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { StoreCalls, StoreReader } from '../ports/reader.js';
import type { Store } from '../ports/store.js';
import { BackfillRunner } from '../ops/backfill.js';
import { ViewBuilds } from '../ops/views.js';

/** The store's calls as the HTTP API makes them, served by the store itself (in the store thread, or in tests). */
export function storeCalls(store: Store, builds: ViewBuilds): StoreCalls {
  return {
    async query(q, cap) {
      const applied = await store.appliedOffsets();
      return { ...(await store.query(q, cap)), applied: [...applied] };
    },
    putView: (tenant, def, source, maxApi) => builds.put(tenant, def, source, maxApi),
    removeView: (tenant, name) => store.views.remove(tenant, name),
    listViews: (tenant) => store.views.list(tenant),
    listTypedColumns: async (tenant) => (store.typedColumns ? store.typedColumns.list(tenant) : []),
    searchEvents: (search) => store.searchEvents(search),
    findEvent: (tenant, key) => store.findEvent(tenant, key),
    storedByMinute: (from, to) => store.storedByMinute(from, to),
    seriesScan: async (scan) => (store.seriesScan ? store.seriesScan(scan) : null),
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
