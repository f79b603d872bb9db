import { periodic } from '../core/service.js';
import { systemClock, type Clock } from '../core/clock.js';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import type { Logger } from '../obs/logger.js';
import { SluiceError } from '../core/errors.js';
import { decodeBodyBytes, decodeJson } from './body.js';
import { errorHandler, sendError } from './errors.js';
import { ingestRoutes, isIngestPath } from './routes/ingest.js';
import { observeHttp, type HttpObservabilityOptions } from './observe.js';
import { statusRoutes } from './routes/status.js';
import { lagOf, positionsOf } from '../obs/lag.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { StoreReader } from '../ports/reader.js';
import { queryRoutes } from './routes/query.js';
import { eventRoutes } from './routes/events.js';
import { LiveTail } from './tail.js';
import { Quotas } from '../ingest/quotas.js';
import { SchemaRegistry } from '../schema/registry.js';
import { schemaRoutes } from './routes/schemas.js';
import { opsRoutes } from './routes/ops.js';
import { SignalSampler } from '../obs/signals.js';
import { INGEST_FLUSH_MS, IngestOutcomes } from '../obs/ingest-outcomes.js';
import { catalogRoutes } from './routes/catalog.js';
import { consoleRoutes } from './routes/console.js';
import { keyRoutes } from './routes/keys.js';
import { rolloutRoutes } from './routes/rollouts.js';
import { savedQueryRoutes } from './routes/saved-queries.js';
import { signalRoutes } from './routes/signals.js';
import { readiness } from '../obs/readiness.js';
import { alertRoutes } from './routes/alerts.js';
import { storeSource } from '../alerts/source.js';
import { refreshAlertMetrics } from '../alerts/metrics.js';
import type { PipelineTester } from '../transform/versions.js';
import { pipelineRoutes } from './routes/pipeline.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The body decoded as JSON (gzip, UTF-8 and size checked, within `max` bytes decompressed if given); throws a SluiceError. */
    jsonBody(max?: number, meter?: (bytes: number) => void): Promise<unknown>;
    /** The body's bytes after Content-Encoding (gzip), within the decompressed limit; `meter` as for decodeBodyBytes. */
    bodyBytes(meter?: (bytes: number) => void): Promise<Buffer>;
    /** Bytes of the body as sent (before decompression). */
    rawBytes(): number;
  }
}

export interface AppOptions {
  config: Readonly<Config>;
  log: Log;
  catalog: Catalog;
  reader: StoreReader;
  /** Where 5xx errors are logged (with the request id and trace id); none when absent. */
  logger?: Logger;
  /** Admission control; one is made from the configuration when absent. */
  quotas?: Quotas;
  /** Where `POST /v1/pipeline/test` runs a test: on the HTTP thread when absent (sluice's processes give a thread per test, src/app/pipeline-tests.ts). */
  pipelineTests?: PipelineTester;
  /** Hooks of /metrics into the rest of the process (other threads, scrape-time gauges), and the tracer. */
  observability?: Omit<HttpObservabilityOptions, 'maxTenantLabels' | 'metrics'>;
  /**
   * Which APIs this process serves besides health, status and metrics (all by default):
   * `ingest` the event endpoints; `query` queries, views, events, schemas and operations.
   */
  serve?: { ingest: boolean; query: boolean };
  /** Where the console's built files are (tests); CONSOLE_DIR by default. */
  consoleDir?: string;
  /** The time of freshness (metrics and readiness), lag and the backlog sampler (the system clock by default). */
  clock?: Clock;
}

/** The ingest endpoints, whose latency and errors the Overview shows. */
const INGEST_ROUTES = new Set(['events', 'cloudevents', 'batch', 'track', 'identify', 'page', 'screen', 'group', 'alias'].map((r) => `/v1/${r}`));

/** The HTTP API: ingest, query and health, with one error format. */
export function buildApp(opts: AppOptions): FastifyInstance {
  const { limits } = opts.config;
  const clock = opts.clock ?? systemClock;
  const app: FastifyInstance = Fastify({
    bodyLimit: limits.bodyBytes,
    ...(opts.logger ? { loggerInstance: opts.logger.child({ component: 'http' }) as FastifyBaseLogger } : { logger: false }),
    // Nothing per request on the hot path: errors are logged where they are handled.
    logController: new LogController({ disableRequestLogging: true }),
    // Slow or idle clients cannot hold sockets for ever.
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.requestTimeoutMs,
    // Node checks these timeouts every connectionsCheckingInterval (30 s by default): check
    // often enough that a slowloris client is cut near its deadline, not up to 30 s after.
    http: {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(limits.requestTimeoutMs / 4))),
    },
    keepAliveTimeout: 10_000,
    return503OnClosing: true,
  });
  // Bodies arrive as bytes whatever their Content-Type (curl's default is form-encoded) and
  // are decoded in one place, with the limits applied there.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  type Meter = (bytes: number) => void;
  const decodedBytesOf = async function (this: { body: unknown; headers: Record<string, string | string[] | undefined> }, max?: number, meter?: Meter): Promise<Buffer> {
    const raw = Buffer.isBuffer(this.body) ? this.body : Buffer.alloc(0);
    const enc = this.headers['content-encoding'];
    const bytes = await decodeBodyBytes(raw, Array.isArray(enc) ? enc.join(',') : enc, Math.min(limits.decompressedBytes, max ?? Infinity), meter);
    return bytes;
  };
  app.decorateRequest('jsonBody', async function (this: { body: unknown; headers: Record<string, string | string[] | undefined> }, max?: number, meter?: Meter) {
    return decodeJson(await decodedBytesOf.call(this, max, meter), this.headers['content-type'] as string | undefined);
  });
  app.decorateRequest('bodyBytes', function (this: { body: unknown; headers: Record<string, string | string[] | undefined> }, meter?: Meter) {
    return decodedBytesOf.call(this, undefined, meter);
  });
  app.decorateRequest('rawBytes', function (this: { body: unknown }) {
    return Buffer.isBuffer(this.body) ? this.body.length : 0;
  });
  app.setErrorHandler(errorHandler(limits.bodyBytes));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const hint = otherRoleHint(opts.serve ?? { ingest: true, query: true }, request.method, path);
    sendError(reply, new SluiceError('SLUICE_ERR_NOT_FOUND', `no route ${request.method} ${path}${hint}`));
  });

  const obs = observeHttp(app, {
    metrics: opts.config.obs.metrics,
    maxTenantLabels: opts.config.obs.maxTenantLabels,
    async refresh(m) {
      const lag = lagOf(await positionsOf(opts.log), clock.now());
      m.backlog.set(lag.backlog);
      m.freshness.set(lag.freshnessSeconds);
      for (const p of lag.partitions) {
        m.lagEvents.set({ partition: String(p.partition) }, p.lagEvents);
        m.lagSeconds.set({ partition: String(p.partition) }, p.lagSeconds);
      }
      const health = await opts.log.health().catch(() => null);
      if (health?.bytes !== undefined) m.logBytes.set(health.bytes);
      if (health?.ledgerKeys !== undefined) m.ledgerKeys.set(health.ledgerKeys);
      if (health?.ledgerFilterBytes !== undefined) m.ledgerFilterBytes.set(health.ledgerFilterBytes);
      if (health?.recordBytes !== undefined) m.backlogBytes.set(lag.backlog * health.recordBytes);
      await refreshAlertMetrics(m, opts.catalog.alerts);
    },
    ...opts.observability,
  });
  const schemas = new SchemaRegistry(opts.catalog, { refreshMs: opts.config.events.schemaRefreshMs });
  const q = opts.config.query;
  const tail = new LiveTail(q.streamBuffer, { perKey: q.streamsPerKey, perTenant: q.streamsPerTenant, total: q.streams }, (key) => opts.catalog.verifyKey(key), opts.clock);
  const quotas = opts.quotas ?? Quotas.fromConfig(opts.config);
  const serve = opts.serve ?? { ingest: true, query: true };
  // The log's backlog, for the global cap: measured twice a second, not per request; the same
  // positions release what this process appended when workers elsewhere process it. Only where
  // events are admitted: a worker or query process has no use for it, and on NATS each reading
  // asks the server about every partition (a deployment's every process asking twice a second
  // loaded the server the workers read from).
  if (serve.ingest) watchLogBacklog(app, opts.log, quotas, clock);
  app.addHook('onClose', (_app, done) => {
    if (!opts.quotas) quotas.close();
    done();
  });
  // The Overview's sampled history: lag and freshness every 10 s, ingest latency per request.
  const sampler = new SignalSampler();
  const sampling = periodic(
    'signal sampler',
    10_000,
    async () => {
      const now = clock.now();
      const lag = lagOf(await positionsOf(opts.log), now);
      sampler.sampleLag(now, lag.freshnessSeconds, lag.backlog);
    },
    { clock },
  );
  sampling.start(new AbortController().signal);
  app.addHook('onClose', (_app, done) => {
    void sampling.stop();
    done();
  });
  // A query process beside ingest processes sees no appends of its own: while it has live
  // streams open, it follows the log for them (NATS: an ordered consumer from the next record).
  const follow = opts.log.follow?.bind(opts.log);
  if (serve.query && !serve.ingest && follow) followForTail(app, tail, follow, clock);
  // Live streams never end by themselves: end them first, or closing would wait for them.
  app.addHook('preClose', (done) => {
    tail.closeAll();
    done();
  });
  statusRoutes(app, { log: opts.log, catalog: opts.catalog, reader: opts.reader, quotas, schemas });
  if (serve.ingest) {
    // Per tenant and minute, requests and those answered 5xx: the SLI of the built-in rule
    // sluice_ingest_availability, written to the catalog every few seconds.
    const outcomes = new IngestOutcomes();
    const tenants = new WeakMap<FastifyRequest, string>();
    const flushing = periodic('ingest outcomes', INGEST_FLUSH_MS, () => outcomes.flush((rows) => opts.catalog.alerts.addIngestMinutes(rows)), { clock, ...(opts.logger ? { logger: opts.logger } : {}) });
    flushing.start(new AbortController().signal);
    app.addHook('onClose', async () => {
      await flushing.stop();
      // The last seconds' counts; the catalog closes after the HTTP face.
      await outcomes.flush((rows) => opts.catalog.alerts.addIngestMinutes(rows)).catch(() => undefined);
    });
    app.addHook('onResponse', async (request, reply) => {
      if (request.method === 'POST' && INGEST_ROUTES.has(request.routeOptions.url ?? '')) {
        sampler.observeIngest(clock.now(), reply.elapsedTime, reply.statusCode);
        const tenant = tenants.get(request);
        if (tenant !== undefined) outcomes.observe(tenant, clock.now(), reply.statusCode);
      }
    });
    ingestRoutes(app, {
      tail,
      quotas,
      catalog: opts.catalog,
      log: opts.log,
      limits: { maxEventBytes: limits.eventBytes, maxDepth: limits.depth, batchEvents: limits.batchEvents },
      time: opts.config.events,
      anonymizeIp: opts.config.enrich.anonymizeIp,
      schemas,
      obs,
      cors: opts.config.cors,
      tenants,
    });
  }
  if (serve.query) {
    schemaRoutes(app, { catalog: opts.catalog, registry: schemas, recent: (t, type, n) => opts.reader.recent(t, type, n) });
    opsRoutes(app, {
      reader: opts.reader,
      log: opts.log,
      catalog: opts.catalog,
      schemas,
      limits: { maxEventBytes: limits.eventBytes, maxDepth: limits.depth },
      time: opts.config.events,
      quotaDefaults: opts.config.quotas,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    pipelineRoutes(app, { catalog: opts.catalog, reader: opts.reader, ...(opts.pipelineTests ? { test: opts.pipelineTests } : {}) });
    queryRoutes(app, { catalog: opts.catalog, log: opts.log, reader: opts.reader, maxBuckets: opts.config.query.maxBuckets, maxRows: opts.config.query.maxRows, viewsPerTenant: opts.config.query.viewsPerTenant });
    eventRoutes(app, { catalog: opts.catalog, log: opts.log, reader: opts.reader, tail, dedupeHorizonMs: opts.config.log.dedupeHorizonMs });
    const { maxBuckets, maxRows } = opts.config.query;
    void app.register(signalRoutes, { catalog: opts.catalog, log: opts.log, reader: opts.reader, sampler, maxBuckets, now: () => clock.now() });
    void app.register(catalogRoutes, { catalog: opts.catalog, reader: opts.reader, maxRows, now: () => clock.now() });
    void app.register(savedQueryRoutes, { catalog: opts.catalog, maxBuckets, maxRows });
    void app.register(keyRoutes, { catalog: opts.catalog });
    void app.register(rolloutRoutes, { catalog: opts.catalog, now: () => clock.now() });
    void app.register(consoleRoutes, opts.consoleDir ? { dir: opts.consoleDir } : {});
    alertRoutes(app, { catalog: opts.catalog, now: () => clock.now(), source: storeSource(opts.reader, opts.log, () => clock.now(), { deadLetters: opts.catalog.deadLetters, ingest: (t, from, to) => opts.catalog.alerts.ingestMinutes(t, from, to), conservationWindowMs: opts.config.obs.conservationWindowMs }) });
  }

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    // Each part answers within READY_CHECK_MS or is named as not answering: a store thread
    // busy for minutes made /readyz hang, and a probe that times out says nothing of which part.
    const late = (what: string) => ({ ok: false, detail: `${what} did not answer within ${READY_CHECK_MS} ms (busy or stuck)` });
    const [log, store, catalog, positions] = await Promise.all([
      within(opts.log.health(), READY_CHECK_MS, clock, () => late('the log')),
      within(opts.reader.health(), READY_CHECK_MS, clock, () => late('the store')).catch((e: Error) => ({ ok: false, detail: e.message })),
      within(opts.catalog.listTenants().then(() => ({ ok: true })), READY_CHECK_MS, clock, () => late('the catalog')).catch((e: Error) => ({ ok: false, detail: e.message })),
      within(positionsOf(opts.log), READY_CHECK_MS, clock, () => null).catch(() => []),
    ]);
    const r = readiness({ log: positions === null && log.ok ? late("the log's positions") : log, store, catalog }, lagOf(positions ?? [], clock.now()).freshnessSeconds, opts.config.obs.readyFreshnessSeconds);
    return reply.code(r.status === 'ready' ? 200 : 503).send(r);
  });
  return app;
}

/** How long /readyz waits for each part (ms) before it reports that part as not answering. */
export const READY_CHECK_MS = 2_000;

/** `p`, or `fallback()` when it has not settled within `ms` on `clock`. */
function within<T, F>(p: Promise<T>, ms: number, clock: Clock, fallback: () => F): Promise<T | F> {
  let timer: ReturnType<Clock['setTimeout']> | null = null;
  const timeout = new Promise<F>((resolve) => (timer = clock.setTimeout(() => resolve(fallback()), ms)));
  return Promise.race([p, timeout]).finally(() => {
    if (timer !== null) clock.clearTimeout(timer);
  });
}

/**
 * Twice a second: the log's backlog, for the global cap (not measured per request), and the
 * committed offsets that release what this process appended as workers elsewhere process it.
 */
function watchLogBacklog(app: FastifyInstance, log: Log, quotas: Quotas, clock: Clock): void {
  const backlog = periodic(
    'log backlog',
    500,
    async () => {
      const positions = await positionsOf(log);
      quotas.setLogBacklog(lagOf(positions, clock.now()).backlog);
      quotas.committed(positions);
    },
    { clock },
  );
  backlog.start(new AbortController().signal);
  app.addHook('onClose', (_app, done) => {
    void backlog.stop();
    done();
  });
}

/**
 * For a request a role process does not serve because another role does: which one ('' when
 * no role serves it). A load balancer or a producer pointed at the wrong process is the usual
 * cause.
 */
function otherRoleHint(served: { ingest: boolean; query: boolean }, method: string, path: string): string {
  const ingestPath = method === 'POST' && isIngestPath(path);
  if (!ingestPath && !path.startsWith('/v1/')) return '';
  if (!served.ingest && !served.query) {
    return '; this process is a worker (health, status and metrics only): send events to an ingest process (sluice ingest), ask a query process (sluice query) for the API and the console, or run sluice up';
  }
  if (ingestPath) return served.ingest ? '' : '; this process does not ingest: send events to an ingest process (sluice ingest, or sluice up)';
  return served.query ? '' : '; this process only ingests: ask a query process (sluice query, or sluice up) for the API and the console';
}

/** How often a query process checks whether its live tail has streams open (ms), and how long it keeps following with none. */
const FOLLOW_CHECK_MS = 1_000;
const FOLLOW_IDLE_MS = 30_000;

/**
 * Follows the log into the live tail while streams are open, and stops after FOLLOW_IDLE_MS
 * without any: decoding every record of every tenant costs a query process nothing while no one
 * watches. A stream's first events are those appended once following has begun (the consumer
 * is made when the first stream opens).
 */
function followForTail(app: FastifyInstance, tail: LiveTail, follow: NonNullable<Log['follow']>, clock: Clock): void {
  let stop: (() => Promise<void>) | null = null;
  let idleSince: number | null = null;
  const check = periodic(
    'live tail follower',
    FOLLOW_CHECK_MS,
    async () => {
      const now = clock.now();
      if (tail.clients > 0) {
        idleSince = null;
        stop ??= follow((r) => tail.publish(r.tenant, [r], [{ status: 'appended', partition: r.partition, offset: r.offset }]));
      } else if (stop) {
        idleSince ??= now;
        if (now - idleSince >= FOLLOW_IDLE_MS) {
          const stopping = stop;
          stop = null;
          await stopping();
        }
      }
    },
    { clock },
  );
  check.start(new AbortController().signal);
  // A first stream need not wait for the next check.
  tail.onSubscribe = () => void check.runNow();
  app.addHook('onClose', async () => {
    await check.stop();
    await stop?.();
  });
}
