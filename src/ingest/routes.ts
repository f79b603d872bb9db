import type { FastifyInstance } from 'fastify';
import type { EventLimits, TimePolicy } from '../core/event.js';
import type { SchemaRegistry } from '../schema/registry.js';
import type { HttpObservability } from '../obs/http.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import { inSpan, traceparentOf } from '../obs/tracing.js';
import { accept } from './accept.js';
import { authenticate } from './auth.js';
import { eventsOf } from './body.js';
import type { LiveTail } from '../query/tail.js';
import type { Quotas } from './quotas.js';

export interface IngestRouteOptions {
  catalog: Catalog;
  log: Log;
  limits: EventLimits & { batchEvents: number };
  time: TimePolicy;
  schemas: SchemaRegistry;
  obs: HttpObservability;
  /** Where durable events are published for `GET /v1/stream`. */
  tail?: LiveTail;
  quotas: Quotas;
}

/** POST /v1/events (write key): 202 once the accepted events are durable in the log. */
export function ingestRoutes(app: FastifyInstance, opts: IngestRouteOptions): void {
  app.post('/v1/events', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'write');
    opts.quotas.checkSaturation();
    const { quota } = await opts.schemas.settings(grant.tenant);
    opts.quotas.admit(grant.tenant, quota, request.rawBytes());
    const body = await request.jsonBody();
    const { events, sentAt } = eventsOf(body, opts.limits.batchEvents);
    opts.quotas.take(grant.tenant, quota, events.length);
    const { metrics, tracer } = opts.obs;
    const tenant = opts.obs.tenant(grant.tenant);
    const traceparent = traceparentOf(request.traceContext);
    const result = await inSpan(
      tracer,
      'log.append',
      { attributes: { 'sluice.tenant': grant.tenant, 'sluice.events': events.length } },
      request.traceContext,
      () =>
        accept(opts.log, grant.tenant, events, {
          limits: opts.limits,
          time: opts.time,
          schemas: opts.schemas,
          receivedAt: Date.now(),
          ...(sentAt === undefined ? {} : { sentAt }),
          traceparent,
          onAppended: (seconds) => metrics?.appendDuration.observe(seconds),
          onDurable: (entries, outcomes) => {
            let appended = 0;
            for (const o of outcomes) if (o.status === 'appended') appended++;
            opts.quotas.accepted(grant.tenant, appended);
            opts.tail?.publish(grant.tenant, entries, outcomes);
          },
        }),
      (r) => ({ 'sluice.accepted': r.accepted, 'sluice.duplicates': r.duplicates, 'sluice.rejected': r.rejected.length }),
    );
    if (metrics) {
      metrics.received.inc({ tenant }, events.length);
      metrics.accepted.inc({ tenant }, result.accepted);
      if (result.duplicates > 0) metrics.duplicates.inc({ tenant }, result.duplicates);
      for (const r of result.rejected) if (!r.dead_lettered) metrics.rejected.inc({ tenant, reason: r.code });
    }
    return reply.code(202).send(result);
  });
}
