import type { FastifyInstance } from 'fastify';
import { iso } from '../core/time.js';
import { authenticate } from '../ingest/auth.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import { fillBuckets, parseCountQuery } from './counts.js';
import type { StoreReader } from './reader.js';

export interface QueryRouteOptions {
  catalog: Catalog;
  log: Log;
  reader: StoreReader;
  maxBuckets: number;
}

/**
 * POST /v1/query (read key). The watermark is the receive time of the oldest event that is
 * not yet visible (still in flight, or in the log past the store's applied offsets), or
 * the time of the answer when everything is visible: every event received before it is
 * counted.
 */
export function queryRoutes(app: FastifyInstance, opts: QueryRouteOptions): void {
  app.post('/v1/query', async (request, reply) => {
    const started = performance.now();
    const grant = await authenticate(opts.catalog, request, 'read');
    const body = await request.jsonBody();
    const q = parseCountQuery(body, grant.tenant, Date.now(), opts.maxBuckets);
    const { rows, applied } = await opts.reader.counts(q);
    const now = Date.now();
    const oldest = await opts.log.oldestUnapplied(applied);
    const watermark = oldest === null ? now : Math.min(oldest, now);
    return reply.send({
      columns: ['bucket', 'count'],
      rows: fillBuckets(q, rows),
      watermark: iso(watermark),
      source: 'view:counts_1m',
      elapsed_ms: Math.round((performance.now() - started) * 100) / 100,
    });
  });
}
