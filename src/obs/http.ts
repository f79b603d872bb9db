import type { FastifyInstance } from 'fastify';
import { ingestMetrics, mergeMetrics, prom, TenantLabels, type IngestMetrics, type MetricsJson } from './metrics.js';

export interface HttpObservabilityOptions {
  maxTenantLabels: number;
  /** Metrics of the other threads, merged into /metrics; a failure leaves them out. */
  remote?: () => Promise<MetricsJson>;
  /** Refreshes the gauges computed at scrape time (backlog, lag, freshness). */
  refresh?: (m: IngestMetrics) => Promise<void>;
  /** Told when a tenant gets its own label, so that other threads label it alike. */
  onTenantLabel?: (tenant: string) => void;
}

export interface HttpObservability {
  metrics: IngestMetrics;
  /** The metric label of a tenant (its name, or "other" past the cap). */
  tenant(name: string): string;
  tenantLabels(): string[];
}

/**
 * Request latency for every route, and `GET /metrics` in the Prometheus text format. The
 * route label is the route's pattern (`/v1/events`), never the raw URL, so that a scan of
 * random paths cannot grow the label set.
 */
export function observeHttp(app: FastifyInstance, opts: HttpObservabilityOptions): HttpObservability {
  const registry = new prom.Registry();
  const metrics = ingestMetrics(registry);
  const labels = new TenantLabels(opts.maxTenantLabels);
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  app.get('/metrics', async (_request, reply) => {
    await opts.refresh?.(metrics).catch(() => undefined);
    const parts: MetricsJson[] = [await registry.getMetricsAsJSON()];
    const remote = await opts.remote?.().catch(() => null);
    if (remote) parts.push(remote);
    const { contentType, text } = await mergeMetrics(parts);
    return reply.type(contentType).send(text);
  });
  return {
    metrics,
    tenant(name) {
      const before = labels.list().length;
      const label = labels.of(name);
      if (labels.list().length !== before) opts.onTenantLabel?.(name);
      return label;
    },
    tenantLabels: () => labels.list(),
  };
}
