import type { Quotas } from '../../ingest/quotas.js';
import type { SchemaRegistry } from '../../schema/registry.js';
import type { FastifyInstance } from 'fastify';
import { authenticate } from '../auth.js';
import type { Catalog } from '../../ports/catalog.js';
import type { Log } from '../../ports/log.js';
import type { StoreReader } from '../../ports/reader.js';
import { countedGap } from '../../obs/conservation.js';
import { lagOf, positionsOf } from '../../obs/lag.js';




const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * `GET /v1/status` (admin key): the pipeline's state as an operator reads it. Partitions,
 * leases and lag are shared infrastructure; dead letters and the conservation check are the
 * key's tenant's only.
 */
export function statusRoutes(app: FastifyInstance, opts: { log: Log; catalog: Catalog; reader: StoreReader; quotas: Quotas; schemas: SchemaRegistry }): void {
  app.get('/v1/status', async (request) => {
    const { tenant } = await authenticate(opts.catalog, request, 'admin');
    const now = Date.now();
    const [positions, store, deadLetters, conservation, settings] = await Promise.all([
      positionsOf(opts.log),
      opts.reader.health().catch((e: Error) => ({ ok: false, detail: e.message })),
      opts.catalog.deadLetters.counts(tenant),
      opts.reader.conservation().catch(() => null),
      opts.schemas.settings(tenant),
    ]);
    const lag = lagOf(positions, now);
    const mine = conservation?.unbalanced.filter((m) => m.tenant === tenant) ?? [];
    const withRecords = opts.log.capabilities.talliesWithRecords === true;
    return {
      tenant,
      now: iso(now),
      watermark: iso(lag.watermark),
      freshness_seconds: lag.freshnessSeconds,
      log: {
        backlog_events: lag.backlog,
        partitions: lag.partitions.map((p) => ({
          partition: p.partition,
          head: p.head,
          committed: p.committed,
          lag_events: p.lagEvents,
          lag_seconds: p.lagSeconds,
          owner: p.owner,
        })),
      },
      store,
      quota: opts.quotas.state(tenant, settings.quota),
      dead_letters: { total: Object.values(deadLetters).reduce((a, b) => a + b, 0), by_reason: deadLetters },
      conservation: conservation && {
        checked_at: iso(conservation.checkedAt),
        from: iso(conservation.from),
        settled_until: iso(conservation.settledUntil),
        // Where receipts can be lost in a crash (NATS), a minute with more stored than received
        // lost receipts, not events: not counted in the gap (countedGap), said apart.
        gap_events: mine.reduce((s, m) => s + countedGap(m, withRecords), 0),
        ...(withRecords ? {} : { receipts_lost_events: mine.reduce((s, m) => s + Math.max(0, -m.gap), 0) }),
        unbalanced: mine.map((m) => ({
          minute: iso(m.minute),
          received: m.received,
          stored: m.stored,
          dead_lettered: m.deadLettered,
          rejected: m.rejected,
          duplicate: m.duplicate,
          gap: m.gap,
        })),
      },
    };
  });
}
