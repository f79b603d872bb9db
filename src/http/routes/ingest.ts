import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import type { KeyGrant, TenantQuota } from '../../ports/catalog.js';
import { binaryAttributes, BATCH, cloudEventPath, fromCloudEvent, isJsonMediaType, STRUCTURED } from '../../ingest/cloudevents.js';
import { isJsonObject } from '../../core/event.js';
import { SEGMENT_KINDS, segmentEvents, type SegmentKind } from '../../ingest/segment.js';
import type { EventLimits, TimePolicy } from '../../core/event.js';
import type { SchemaRegistry } from '../../schema/registry.js';
import type { HttpObservability } from '../observe.js';
import type { Catalog } from '../../ports/catalog.js';
import type { Log } from '../../ports/log.js';
import { inSpan, traceparentOf } from '../../obs/tracing.js';
import { accept, type IngestResponse } from '../../ingest/accept.js';
import { authenticate } from '../auth.js';
import { decodeJson, eventsOf } from '../body.js';
import { checkOrigin, preflightRoutes, type CorsPolicy } from '../cors.js';
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
  cors: CorsPolicy;
  /** Filled with each request's tenant once its key is known (for per-tenant accounting of the answers). */
  tenants?: WeakMap<FastifyRequest, string>;
}

type Decoded = { events: unknown[]; sentAt?: number };

/** analytics.js (analytics-next) posts each call to `<apiHost>/<letter>`; with `apiHost: "<sluice>/v1"` these are its paths. */
export const ANALYTICS_JS_PATHS = { t: 'track', p: 'page', i: 'identify', g: 'group', a: 'alias', s: 'screen', b: 'batch' } as const;

/** Whether `POST path` is an ingest route (events, Segment's, analytics.js's short paths, CloudEvents). */
export function isIngestPath(path: string): boolean {
  const rest = path.startsWith('/v1/') ? path.slice(4) : '';
  return rest === 'events' || rest === 'cloudevents' || rest === 'batch' || (SEGMENT_KINDS as readonly string[]).includes(rest) || rest in ANALYTICS_JS_PATHS;
}

/** A rejection the producer was not told of in a way its library reads: a 2xx would lose the event. */
function refusedOutright(result: IngestResponse): IngestResponse['rejected'] {
  return result.rejected.filter((r) => !r.dead_lettered);
}

function refusalMessage(refused: IngestResponse['rejected'], total: number): string {
  const first = refused[0]!;
  const others = total - refused.length;
  return `${refused.length} of ${total} event${total === 1 ? '' : 's'} refused (first: ${first.path || 'the event'}: ${first.message})${others > 0 ? `; the other ${others} were kept (accepted, duplicates or dead-lettered)` : ''}`;
}

/** The most a Segment body carrying its write key (no Authorization header) may decompress to: Segment's batch limit is 500 KB. */
export const SEGMENT_BODY_BYTES = 512 * 1024;

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
    opts.tenants?.set(request, grant.tenant);
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
  const early = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    // A browser must be able to read even a refusal: the origin is allowed provisionally
    // here and judged against the tenant's own list once the key is known (checkOrigin).
    const origin = request.headers.origin;
    if (typeof origin === 'string' && (opts.cors.origins.includes('*') || opts.cors.origins.includes(origin) || Object.values(opts.cors.tenants).some((l) => l.includes('*') || l.includes(origin)))) {
      reply.header('access-control-allow-origin', origin).header('vary', 'Origin');
    }
    if (!request.headers.authorization) return;
    admitted.set(request, await admit(request, Number(request.headers['content-length']) || 0));
  };

  /** The bytes/s meter of an admitted request (Quotas.meter), counting its refusal like admission's. */
  const meterOf = ({ grant, quota, bytes }: { grant: KeyGrant; quota: TenantQuota; bytes: number }) => {
    const meter = opts.quotas.meter(grant.tenant, quota, bytes);
    if (!meter) return undefined;
    return (n: number) => {
      try {
        meter(n);
      } catch (e: unknown) {
        if (e instanceof SluiceError) opts.obs.metrics?.refused.inc({ tenant: opts.obs.tenant(grant.tenant), reason: e.field ?? e.code });
        throw e;
      }
    };
  };

  /** Admits (unless `early` did), decodes and appends one request; `key` finds a key in the body when there is no Authorization header. */
  async function ingest(
    request: FastifyRequest,
    reply: FastifyReply,
    decode: (body: unknown) => Decoded,
    key?: (body: unknown) => string | undefined,
    bytes = false,
  ): Promise<IngestResponse> {
    let body: unknown;
    let pass = admitted.get(request);
    if (!pass) {
      // No Authorization header: a Segment body may carry its write key (no other body is read
      // before the 401). Such a body is read before anyone is known, so it is held to Segment's
      // own batch limit (500 KB, SEGMENT_BODY_BYTES) decompressed: 9.7 MB of JSON from a 23 KB
      // gzip took 0.5 s of the event loop to answer 401.
      let decoded = 0;
      if (key) body = await request.jsonBody(SEGMENT_BODY_BYTES, (n) => void (decoded += n));
      pass = await admit(request, request.rawBytes(), key?.(body));
      if (key) meterOf(pass)?.(decoded);
    }
    const { grant, quota } = pass;
    checkOrigin(request, reply, grant.tenant, opts.cors);
    // The bytes/s quota counts the body decompressed, as it decompresses; admission took its size on the wire.
    const meter = body === undefined ? meterOf(pass) : undefined;
    const { events, sentAt } = decode(body !== undefined ? body : bytes ? await request.bodyBytes(meter) : await request.jsonBody(undefined, meter));
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
          anonymizeIp: opts.anonymizeIp === true,
          ...(sentAt === undefined ? {} : { sentAt }),
          traceparent,
          onAppended: (seconds) => metrics?.appendDuration.observe(seconds),
          onDurable: (entries, outcomes) => {
            opts.quotas.appended(grant.tenant, outcomes);
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

  app.post('/v1/events', { onRequest: early }, async (request, reply) => reply.code(202).send(await ingest(request, reply, (body) => eventsOf(body, opts.limits.batchEvents))));

  /**
   * A rejection's message in the producer's own terms: the field sluice's event calls
   * `"type"` is the Segment call's `"event"`, `"properties"` an identify's `"traits"` (the
   * field the path already names, `sluicePath` → `producerPath`).
   */
  const inProducersTerms = (message: string, sluicePath: string, producerPath: string): string => {
    if (sluicePath === producerPath) return message;
    const ours = sluicePath.split('/').slice(1);
    const theirs = producerPath.split('/');
    const tail = ours.slice(1);
    // With the tail kept (/properties/a → …/traits/a) the renamed field sits before it; else it is the last.
    const kept = tail.length > 0 && theirs.slice(-tail.length).join('/') === tail.join('/');
    const field = kept ? theirs[theirs.length - tail.length - 1] : theirs[theirs.length - 1];
    return ours[0] && field && field !== ours[0] ? message.replaceAll(`"${ours[0]}"`, `"${field}"`) : message;
  };

  // Segment answers 200 {"success": true}; its libraries check the status only, so an event
  // refused outright is answered 400 (not retried by them), with the producer's own field.
  const writeKeyOf = (body: unknown) => (body !== null && typeof body === 'object' && typeof (body as { writeKey?: unknown }).writeKey === 'string' ? (body as { writeKey: string }).writeKey : undefined);
  const segment = (kind: SegmentKind | 'batch') => async (request: FastifyRequest, reply: FastifyReply) => {
    let pathOf: (index: number, path: string) => string = (_i, p) => p;
    let total = 0;
    const result = await ingest(
      request,
      reply,
      (body) => {
        const decoded = segmentEvents(kind, body, opts.limits.batchEvents);
        pathOf = decoded.pathOf;
        total = decoded.events.length;
        return decoded;
      },
      writeKeyOf,
    );
    result.rejected = result.rejected.map((r) => {
      const path = pathOf(r.index, r.path);
      return { ...r, path, message: inProducersTerms(r.message, r.path, path) };
    });
    const refused = refusedOutright(result);
    if (refused.length > 0) {
      return reply.code(400).send({ success: false, statusCode: 400, code: 'SLUICE_ERR_INVALID_EVENT', error: 'Bad Request', message: refusalMessage(refused, total), field: refused[0]!.path, ...result });
    }
    return reply.code(200).send({ success: true, ...result });
  };
  for (const kind of [...SEGMENT_KINDS, 'batch'] as const) app.post(`/v1/${kind}`, { onRequest: early }, segment(kind));
  for (const [letter, kind] of Object.entries(ANALYTICS_JS_PATHS)) app.post(`/v1/${letter}`, { onRequest: early }, segment(kind));

  app.post('/v1/cloudevents', { onRequest: early }, async (request, reply) => {
    const ct = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const binary = ct !== STRUCTURED && ct !== BATCH;
    // Where each event came from, to name the producer's own field in a refusal.
    let origins: { where: string; dataWasObject: boolean }[] = [];
    const from = (ce: unknown, where: string) => {
      origins.push({ where, dataWasObject: isJsonObject(ce) && isJsonObject(ce.data) });
      return fromCloudEvent(ce, where);
    };
    const result = await ingest(
      request,
      reply,
      (body) => {
        if (!binary) {
          const value = decodeJson(body as Buffer, request.headers['content-type']);
          if (ct === STRUCTURED) return { events: [from(value, 'body')] };
          if (!Array.isArray(value)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'a CloudEvents batch is a JSON array of events', { field: 'body' });
          if (value.length > opts.limits.batchEvents) {
            throw new SluiceError('SLUICE_ERR_TOO_MANY_EVENTS', `the batch has ${value.length} events; the limit is ${opts.limits.batchEvents}`, { field: 'body' });
          }
          origins = [];
          return { events: value.map((ce, i) => from(ce, `[${i}]`)) };
        }
        if (request.headers['ce-specversion'] === undefined) {
          throw new SluiceError('SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', `send ${STRUCTURED}, ${BATCH}, or a binary-mode event with ce-* headers`, { field: 'Content-Type' });
        }
        // Only JSON data is read; other bytes are refused naming their type, before any parse.
        if (ct && !isJsonMediaType(ct)) {
          throw new SluiceError('SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', `binary-mode data must be JSON (application/json or +json), not ${ct}; send the event in structured mode with data_base64 for other bytes`, {
            field: 'Content-Type',
          });
        }
        return { events: [from({ ...binaryAttributes(request.headers, ct || undefined), ...binaryData(body as Buffer, request.headers['content-type']) }, 'headers')] };
      },
      undefined,
      true,
    );
    result.rejected = result.rejected.map((r) => (origins[r.index] ? { ...r, path: cloudEventPath(origins[r.index]!.where, r.path, origins[r.index]!.dataWasObject) } : r));
    // CloudEvents SDKs read the status: an event refused outright is not answered 2xx.
    const refused = refusedOutright(result);
    if (refused.length > 0) {
      return reply.code(400).send({ statusCode: 400, code: 'SLUICE_ERR_INVALID_EVENT', error: 'Bad Request', message: refusalMessage(refused, result.accepted + result.duplicates + result.rejected.length), field: refused[0]!.path, ...result });
    }
    return reply.code(202).send(result);
  });

  preflightRoutes(app, ['/v1/events', '/v1/cloudevents', ...[...SEGMENT_KINDS, 'batch', ...Object.keys(ANALYTICS_JS_PATHS)].map((k) => `/v1/${k}`)], opts.cors);
}

/**
 * A binary-mode CloudEvent's data (CloudEvents HTTP binding §3.1.1): none for an empty body
 * (a data-less event, kept with empty properties), else the JSON value; the media type was
 * checked before the body was read.
 */
function binaryData(bytes: Buffer, contentType: string | undefined): { data?: unknown } {
  return bytes.length === 0 ? {} : { data: decodeJson(bytes, contentType) };
}
