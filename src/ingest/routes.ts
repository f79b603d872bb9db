import type { FastifyInstance } from 'fastify';
import type { EventLimits } from '../core/event.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import { accept } from './accept.js';
import { authenticate } from './auth.js';
import { eventsOf } from './body.js';

export interface IngestRouteOptions {
  catalog: Catalog;
  log: Log;
  limits: EventLimits & { batchEvents: number };
}

/** POST /v1/events (write key): 202 once the accepted events are durable in the log. */
export function ingestRoutes(app: FastifyInstance, opts: IngestRouteOptions): void {
  app.post('/v1/events', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'write');
    const body = await request.jsonBody();
    const events = eventsOf(body, opts.limits.batchEvents);
    const result = await accept(opts.log, grant.tenant, events, opts.limits, Date.now());
    return reply.code(202).send(result);
  });
}
