import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Tracer } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import { extractContext } from '../obs/tracing.js';
import { SluiceError } from '../core/errors.js';
import { isLoopback } from './obs-listener.js';
import { ingestMetrics, mergeMetrics, prom, TenantLabels, type IngestMetrics, type MetricsJson } from '../obs/metrics.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The trace context of the request's server span (the root context when untraced). */
    traceContext: Context;
  }
}

export interface HttpObservabilityOptions {
  /** false: no /metrics and no counters (what the bench compares against). */
  metrics: boolean;
  maxTenantLabels: number;
  /** Traces the API routes (/v1/...); the no-op tracer when tracing is off. */
  tracer?: Tracer;
  /** Metrics of the other threads, merged into /metrics; a failure leaves them out. */
  remote?: () => Promise<MetricsJson>;
  /** Refreshes the gauges computed at scrape time (backlog, lag, freshness). */
  refresh?: (m: IngestMetrics) => Promise<void>;
  /** Told when a tenant gets its own label, so that other threads label it alike. */
  onTenantLabel?: (tenant: string) => void;
}

export interface HttpObservability {
  /** null when metrics are off. */
  metrics: IngestMetrics | null;
  tracer: Tracer | undefined;
  /** The metric label of a tenant (its name, or "other" past the cap). */
  tenant(name: string): string;
}

/**
 * Request latency for every route, and `GET /metrics` in the Prometheus text format. The
 * route label is the route's pattern (`/v1/events`), never the raw URL, so that a scan of
 * random paths cannot grow the label set.
 */
export function observeHttp(app: FastifyInstance, opts: HttpObservabilityOptions): HttpObservability {
  const registry = new prom.Registry();
  const metrics = opts.metrics ? ingestMetrics(registry) : null;
  const labels = new TenantLabels(opts.maxTenantLabels, opts.onTenantLabel);
  const tracer = opts.tracer;
  app.decorateRequest('traceContext', null as unknown as Context);
  app.addHook('onRequest', async (request) => {
    request.traceContext = ROOT_CONTEXT;
    const route = request.routeOptions.url;
    if (!tracer || !route?.startsWith('/v1/')) return;
    const parent = extractContext(request.headers);
    const span = tracer.startSpan(`${request.method} ${route}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method, 'http.route': route } }, parent);
    request.traceContext = trace.setSpan(parent, span);
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url;
    metrics?.httpDuration.observe({ method: request.method, route: route ?? 'unmatched', status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    const span = trace.getSpan(request.traceContext);
    if (span) {
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
  });
  if (metrics) app.get('/metrics', async (request, reply) => {
    // It names tenants and their volumes: loopback clients only (obs.metricsAddress serves
    // a scraper elsewhere, through this same handler in-process).
    if (!isLoopback(request.ip)) {
      throw new SluiceError('SLUICE_ERR_FORBIDDEN', '/metrics names tenants and their volumes, so this address serves it to loopback clients only: scrape obs.metricsAddress (SLUICE_OBS_METRICS_ADDRESS, e.g. 10.0.0.5:9464 on a private network) instead', {
        field: 'obs.metricsAddress',
      });
    }
    await opts.refresh?.(metrics).catch(() => undefined);
    const parts: MetricsJson[] = [await registry.getMetricsAsJSON()];
    const remote = await opts.remote?.().catch(() => null);
    if (remote) parts.push(remote);
    const { contentType, text } = await mergeMetrics(parts);
    return reply.type(contentType).send(text);
  });
  return {
    metrics,
    tracer,
    tenant: (name) => labels.of(name),
  };
}
