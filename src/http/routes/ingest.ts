import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import type { KeyGrant, TenantQuota } from '../../ports/catalog.js';
import { binaryAttributes, BATCH, fromCloudEvent, isJsonMediaType, STRUCTURED } from '../../ingest/cloudevents.js';
import { SEGMENT_KINDS, segmentEvents } from '../../ingest/segment.js';
import type { EventLimits, TimePolicy } from '../../core/event.js';
import type { SchemaRegistry } from '../../schema/registry.js';
import type { HttpObservability } from '../observe.js';
import type { Catalog } from '../../ports/catalog.js';
import type { Log } from '../../ports/log.js';
import { inSpan, traceparentOf } from '../../obs/tracing.js';
import { accept, type IngestResponse } from '../../ingest/accept.js';
import { authenticate } from '../auth.js';
import { eventsOf } from '../body.js';
import type { LiveTail } from '../tail.js';
import type { Quotas } from '../../ingest/quotas.js';

export interface IngestRouteOptions {
  catalog: Catalog;
  log: Log;
  limits: EventLimits & { batchEvents: number };
  time: TimePolicy;
  /** Anonymize context.ip before the log (enrich.anonymizeIp). */
  anonymizeIp?: boolean;
  schemas: SchemaRegistry;
  obs: HttpObservability;
  /** Where durable events are published for `GET /v1/stream`. */
  tail?: LiveTail;
  quotas: Quotas;
}

type Decoded = { events: unknown[]; sentAt?: number };

/**
 * The ingest endpoints (write key); each answers once the accepted events are durable in
 * the log: `POST /v1/events` (sluice's own shape), the Segment tracking API (`/v1/track`,
 * `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`, `/v1/batch`) and
 * CloudEvents (`/v1/cloudevents`). They share one path: saturation and quota checks before
 * the body is decoded, then the same judging, appending and accounting.
 */
export function ingestRoutes(app: FastifyInstance, opts: IngestRouteOptions): void {
  /** Authentication and admission; throws the 401/403/429/503 to answer. */
  async function admit(request: FastifyRequest, bytes: number, fallbackKey?: string): Promise<{ grant: KeyGrant; quota: TenantQuota; bytes: number }> {
    const grant = await authenticate(opts.catalog, request, 'write', fallbackKey);
    const { quota } = await opts.schemas.settings(grant.tenant);
    try {
      opts.quotas.checkSaturation();
      opts.quotas.admit(grant.tenant, quota, bytes);
    } catch (e: unknown) {
      if (e instanceof SluiceError) opts.obs.metrics?.refused.inc({ tenant: opts.obs.tenant(grant.tenant), reason: e.field ?? e.code });
      throw e;
    }
    return { grant, quota, bytes };
  }

  // A request with a key in its header is admitted before its body is read: a tenant over
  // its quota is refused for the price of its headers (Node discards the unread body).
  const admitted = new WeakMap<FastifyRequest, { grant: KeyGrant; quota: TenantQuota; bytes: number }>();
  const early = async (request: FastifyRequest): Promise<void> => {
    if (!request.headers.authorization) return;
    admitted.set(request, await admit(request, Number(request.headers['content-length']) || 0));
  };

  /** Admits (unless `early` did), decodes and appends one request; `key` finds a key in the body when there is no Authorization header. */
  async function ingest(request: FastifyRequest, decode: (body: unknown) => Decoded, key?: (body: unknown) => string | undefined): Promise<IngestResponse> {
    let body: unknown;
    let pass = admitted.get(request);
    if (!pass) {
      // No Authorization header: a Segment body may carry its write key.
      body = await request.jsonBody();
      pass = await admit(request, request.rawBytes(), key?.(body));
    }
    const { grant, quota } = pass;
    const { events, sentAt } = decode(body === undefined ? await request.jsonBody() : body);
    opts.quotas.take(grant.tenant, quota, events.length, Math.max(0, request.rawBytes() - pass.bytes));
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
          anonymizeIp: opts.anonymizeIp === true,
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
    return result;
  }

  app.post('/v1/events', { onRequest: early }, async (request, reply) => reply.code(202).send(await ingest(request, (body) => eventsOf(body, opts.limits.batchEvents))));

  // Segment answers 200 {"success": true}; its libraries check the status only.
  const writeKeyOf = (body: unknown) => (body !== null && typeof body === 'object' && typeof (body as { writeKey?: unknown }).writeKey === 'string' ? (body as { writeKey: string }).writeKey : undefined);
  for (const kind of [...SEGMENT_KINDS, 'batch'] as const) {
    app.post(`/v1/${kind}`, { onRequest: early }, async (request, reply) => {
      const result = await ingest(request, (body) => segmentEvents(kind, body, opts.limits.batchEvents), writeKeyOf);
      return reply.code(200).send({ success: true, ...result });
    });
  }

  app.post('/v1/cloudevents', { onRequest: early }, async (request, reply) => {
    const ct = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const result = await ingest(request, (body) => {
      if (ct === STRUCTURED) return { events: [fromCloudEvent(body, 'body')] };
      if (ct === BATCH) {
        if (!Array.isArray(body)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'a CloudEvents batch is a JSON array of events', { field: 'body' });
        if (body.length > opts.limits.batchEvents) {
          throw new SluiceError('SLUICE_ERR_TOO_MANY_EVENTS', `the batch has ${body.length} events; the limit is ${opts.limits.batchEvents}`, { field: 'body' });
        }
        return { events: body.map((ce, i) => fromCloudEvent(ce, `[${i}]`)) };
      }
      if (request.headers['ce-specversion'] === undefined) {
        throw new SluiceError('SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', `send ${STRUCTURED}, ${BATCH}, or a binary-mode event with ce-* headers`, { field: 'Content-Type' });
      }
      if (ct && !isJsonMediaType(ct)) throw new SluiceError('SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', `binary-mode data must be JSON, not ${ct}`, { field: 'Content-Type' });
      return { events: [fromCloudEvent({ ...binaryAttributes(request.headers, ct || undefined), ...(body === undefined ? {} : { data: body }) }, 'headers')] };
    });
    return reply.code(202).send(result);
  });
}
