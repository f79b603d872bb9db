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
/** Sample text parsed per type (characters); the newest event is always read. */
const SAMPLE_BYTES = 256 * 1024;
/** Property paths listed per type, at most (`properties_truncated: true` when reached). */
const MAX_PATHS = 500;

/**
 * `GET /v1/catalog` (read or admin key): the tenant's event types seen in the last 30 days,
 * the busiest first (100 at most), each with its count and last receipt, and the property
 * paths observed in its 200 newest events (at most 256 KiB of them) with the JSON types seen
 * at each, 500 paths at most (`properties_truncated: true` when there were more):
 * `{from, event_types: [{type, count, last_seen, properties: [{path, types}], properties_truncated?}]}`.
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
        // Parsed up to SAMPLE_BYTES of text (at least one event), and at most MAX_PATHS paths
        // listed: 1,000 events of 900 properties each made this answer 89.6 MB and held the
        // thread every tenant's ingest runs on for 7 s.
        const samples: unknown[] = [];
        let bytes = 0;
        for (const text of recent) {
          if (samples.length > 0 && bytes + text.length > SAMPLE_BYTES) break;
          bytes += text.length;
          try {
            samples.push(JSON.parse(text) as unknown);
          } catch {
            samples.push(null);
          }
        }
        // One more than listed: whether there were more.
        const found = propertyPaths(samples, MAX_PATHS + 1);
        const properties = found.slice(0, MAX_PATHS);
        return { type, count, last_seen: newest[0] ? iso(newest[0].receivedAt) : null, properties, ...(found.length > MAX_PATHS ? { properties_truncated: true } : {}) };
      }),
    );
    return { from: iso(q.from), event_types: types };
  });
}
