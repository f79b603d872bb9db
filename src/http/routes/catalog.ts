import type { FastifyInstance } from 'fastify';
import { propertyPaths } from '../../core/properties.js';
import { parseQuery } from '../../core/query.js';
import { iso } from '../../core/time.js';
import { authenticate } from '../auth.js';
import type { Catalog } from '../../ports/catalog.js';
import type { StoreReader } from '../../ports/reader.js';
import type { Cell } from '../../ports/store.js';

/** The window of the catalog: types seen in the last 30 days. */
const WINDOW_MS = 30 * 86_400_000;
/** Events sampled per type for its property paths. */
const SAMPLE = 200;
/** Types listed at most; the busiest first. */
const MAX_TYPES = 100;

/**
 * `GET /v1/catalog` (read or admin key): the tenant's event types seen in the last 30 days,
 * the busiest first (100 at most), each with its count and last receipt, and the property
 * paths observed in its 200 newest events with the JSON types seen at each:
 * `{from, event_types: [{type, count, last_seen, properties: [{path, types}]}]}`.
 *
 * The paths come from a sample, not from every event: a property that only older events
 * carry may be missing.
 */
export async function catalogRoutes(app: FastifyInstance, opts: { catalog: Catalog; reader: StoreReader; maxRows: number; now?: () => number }): Promise<void> {
  const clockNow = opts.now ?? Date.now;
  app.get('/v1/catalog', async (request) => {
    const { tenant } = await authenticate(opts.catalog, request, ['read', 'admin']);
    const now = clockNow();
    const q = parseQuery({ from: iso(now - WINDOW_MS), to: iso(now), interval: null, group_by: ['type'], measures: ['count'] }, tenant, now, { maxBuckets: 1, maxRows: opts.maxRows });
    const counted = (await opts.reader.query(q, opts.maxRows)).rows
      .map((r: Cell[]) => ({ type: String(r[0]), count: Number(r[1]) }))
      .sort((a, b) => b.count - a.count || (a.type < b.type ? -1 : 1))
      .slice(0, MAX_TYPES);
    const types = await Promise.all(
      counted.map(async ({ type, count }) => {
        const [newest, recent] = await Promise.all([
          opts.reader.searchEvents({ tenant, type, from: q.from, to: now + 3_600_000, limit: 1 }),
          opts.reader.recent(tenant, type, SAMPLE),
        ]);
        const samples = recent.map((text) => {
          try {
            return JSON.parse(text) as unknown;
          } catch {
            return null;
          }
        });
        return { type, count, last_seen: newest[0] ? iso(newest[0].receivedAt) : null, properties: propertyPaths(samples) };
      }),
    );
    return { from: iso(q.from), event_types: types };
  });
}
