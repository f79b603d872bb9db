import type { FastifyInstance } from 'fastify';
import { iso } from '../../core/time.js';
import { authenticate } from '../auth.js';
import type { Catalog } from '../../ports/catalog.js';
import { eventCatalog } from '../../query/catalog.js';
import type { StoreReader } from '../../ports/reader.js';

/** The window of the catalog: types seen in the last 30 days. */
const WINDOW_MS = 30 * 86_400_000;
/** Events sampled per type for its property paths. */
const SAMPLE = 200;

/**
 * `GET /v1/catalog` (read or admin key): the tenant's event types with their counts and last
 * receipt, and each type's property paths with the JSON types observed (query/catalog.ts):
 * `{from, event_types: [{type, count, last_seen, properties: [{path, types}]}]}`.
 */
export async function catalogRoutes(app: FastifyInstance, opts: { catalog: Catalog; reader: StoreReader; maxRows: number }): Promise<void> {
  app.get('/v1/catalog', async (request) => {
    const { tenant } = await authenticate(opts.catalog, request, ['read', 'admin']);
    const c = await eventCatalog(opts.reader, tenant, Date.now(), { windowMs: WINDOW_MS, sample: SAMPLE, maxRows: opts.maxRows });
    return {
      from: iso(c.from),
      event_types: c.types.map((t) => ({ type: t.type, count: t.count, last_seen: t.lastSeen === null ? null : iso(t.lastSeen), properties: t.properties })),
    };
  });
}
