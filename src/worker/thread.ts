import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { openCatalog, openLog, openStore } from '../backends/registry.js';
import type { Config } from '../config/schema.js';
import { coerceError, RetryAfterError, SluiceError } from '../core/errors.js';
import { BackfillRunner } from '../ops/backfill.js';
import { ViewBuilds } from '../ops/views.js';
import { parseView } from '../query/spec.js';
import { storeCalls } from '../query/reader.js';
import { ConservationChecker, toReply, type ConservationReply } from '../obs/conservation.js';
import { createLogger } from '../obs/logger.js';
import { startTracing } from '../obs/tracing.js';
import { prom, storeMetrics, TenantLabels } from '../obs/metrics.js';
import { lowerThreadPriority } from './priority.js';
import { startWorkers } from './workers.js';
import type { FromStoreThread, ToStoreThread } from './thread-protocol.js';

/**
 * The store thread of `sluice up`: the consumers and the DuckDB store (which admits one
 * writing process, so everything that writes it lives here), and the queries that read it.
 * The HTTP thread never waits for a store commit; it sends queries here by message.
 */
const given = workerData.config as Config;
// A process that is not a worker hosts the store for queries and status, with no consumers.
const config: Config = workerData.consume === false ? { ...given, worker: { ...given.worker, consumers: 0 } } : given;
const port = parentPort!;
const logger = createLogger(config.logLevel, 'sluice-worker');
if (!lowerThreadPriority()) logger.debug('could not lower the store thread priority; it competes with ingest as an equal');
const log = await openLog(config);
const catalog = await openCatalog(config);
const store = openStore(config);
const abort = new AbortController();
const registry = new prom.Registry();
const metrics = config.obs.metrics ? storeMetrics(registry) : null;
// The HTTP thread decides which tenants get their own label and tells this thread.
const labels = new TenantLabels(config.obs.maxTenantLabels);
let conservation: ConservationReply = { checkedAt: null, settledUntil: null, from: null, unbalanced: [], gapByTenant: [] };

function send(m: FromStoreThread): void {
  port.postMessage(m);
}

const tracing = await startTracing(config, 'store');
const backfills = new BackfillRunner(store, { logger, signal: abort.signal });
const viewBuilds = new ViewBuilds(store, backfills, { logger });
const calls = storeCalls(store, viewBuilds);
const configViews = config.views.map(({ name, ...def }) => parseView(name, def));

/** The error a caller sees: sluice's own errors as they are, a timeout as one, anything else as the store being unavailable. */
function replyError(id: number, e: unknown): FromStoreThread {
  const err = coerceError(e);
  if (err instanceof SluiceError) return { op: 'reply', id, ok: false, code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
  const code = e instanceof RetryAfterError && /timeout/.test(err.message) ? 'SLUICE_ERR_QUERY_TIMEOUT' : 'SLUICE_ERR_STORE_UNAVAILABLE';
  return { op: 'reply', id, ok: false, code, message: err.message };
}
// Processed events per tenant, sent to the HTTP thread a few times a second (its backlog caps).
const processed = new Map<string, number>();
const processedTimer = setInterval(() => {
  if (processed.size === 0) return;
  send({ op: 'processed', counts: [...processed] });
  processed.clear();
}, 100);
processedTimer.unref();
// Held consumers (workerData.hold) take their leases, then wait for 'begin' to process: the
// process prints its banner in between.
let beginNow: () => void = () => undefined;
const begin = workerData.hold === true ? new Promise<void>((resolve) => (beginNow = resolve)) : undefined;
const workersReady = startWorkers(
  config,
  {
    log,
    store,
    catalog,
    logger,
    metrics: metrics ?? undefined,
    tenantLabel: (t) => labels.peek(t),
    tracer: tracing.tracer,
    onProcessed: (tenant, n) => processed.set(tenant, (processed.get(tenant) ?? 0) + n),
    onUnavailable: (message) => send({ op: 'unavailable', message }),
    begin,
  },
  abort.signal,
);

const checker = new ConservationChecker({ log, store, catalog }, config.obs.conservationWindowMs, config.obs.conservationFullIntervalMs);
/** Runs the conservation check; logs once when a gap appears and once when it is gone. */
async function conserve(): Promise<void> {
  const r = await checker.check(Date.now());
  const before = conservation.unbalanced.length;
  if (metrics) {
    metrics.gap.reset();
    const byLabel = new Map<string, number>();
    for (const [tenant, gap] of r.gapByTenant) {
      const label = labels.peek(tenant);
      byLabel.set(label, (byLabel.get(label) ?? 0) + gap);
    }
    for (const [tenant, gap] of byLabel) metrics.gap.set({ tenant }, gap);
    metrics.settled.set(r.settledUntil / 1000);
  }
  conservation = toReply(r, Date.now());
  if (before === 0 && r.unbalanced.length > 0) logger.error({ unbalanced: r.unbalanced.slice(0, 10) }, 'conservation gap: received events are not all accounted for');
  else if (before > 0 && r.unbalanced.length === 0) logger.info('conservation gap closed');
}
const conserveTimer = setInterval(() => {
  void workersReady.then(conserve).catch((e: unknown) => logger.warn({ err: coerceError(e).message }, 'conservation check failed; will retry'));
}, config.obs.conservationIntervalMs);
conserveTimer.unref();
// Views of the configuration reach tenants created while the server runs.
let declaring: Promise<unknown> = Promise.resolve();
const declareTimer = setInterval(() => {
  if (configViews.length === 0 || abort.signal.aborted) return;
  declaring = workersReady
    .then(() => viewBuilds.declare(catalog, configViews))
    .catch((e: unknown) => logger.warn({ err: coerceError(e).message }, 'could not declare the configured views; will retry'));
}, 10_000);
declareTimer.unref();
let resuming: Promise<void> = Promise.resolve();
workersReady.then(
  () => {
    send({ op: 'ready' });
    resuming = backfills
      .resume()
      .then(() => viewBuilds.declare(catalog, configViews))
      .then((tenants) => viewBuilds.resume(tenants))
      .catch((e: unknown) => logger.warn({ err: coerceError(e).message }, 'could not resume backfills and view builds'));
  },
  (e: unknown) => {
    if (!abort.signal.aborted) send({ op: 'fatal', message: coerceError(e).message });
  },
);

/** Answers a request once the workers (and so the store) are up: its value, or its error as `toError` says. Never throws. */
function answer(id: number, fn: () => Promise<unknown>, toError: (id: number, e: unknown) => FromStoreThread = replyError): void {
  void workersReady.then(fn).then(
    (value) => send({ op: 'reply', id, ok: true, value }),
    (e: unknown) => send(toError(id, e)),
  );
}

port.on('message', (m: ToStoreThread) => {
  switch (m.op) {
    case 'begin':
      beginNow();
      return;
    case 'notify':
      void workersReady.then((w) => w.notify(), () => undefined);
      return;
    case 'counts':
      answer(m.id, async () => {
        const applied = await store.appliedOffsets();
        return { rows: await store.counts(m.query), applied: [...applied] };
      });
      return;
    case 'backfill-start':
    case 'backfill-list':
      answer(m.id, () => (m.op === 'backfill-start' ? backfills.start(m.spec) : backfills.list(m.tenant)));
      return;
    case 'recent':
      // A failure here only means the sample of recent traffic is unavailable.
      answer(
        m.id,
        () => store.recent(m.tenant, m.type, m.limit),
        (id, e) => ({ op: 'reply', id, ok: false, code: 'SLUICE_ERR_STORE_UNAVAILABLE', message: coerceError(e).message }),
      );
      return;
    case 'metrics':
      void (async () => {
        if (metrics) {
          metrics.threadHeap.set(getHeapStatistics().total_heap_size);
          const { memoryBytes } = await store.health().catch(() => ({ memoryBytes: undefined }));
          if (memoryBytes !== undefined) metrics.memory.set(memoryBytes);
        }
        send({ op: 'reply', id: m.id, ok: true, value: await registry.getMetricsAsJSON() });
      })();
      return;
    case 'conservation':
      send({ op: 'reply', id: m.id, ok: true, value: conservation });
      return;
    case 'tenants':
      labels.admit(m.tenants);
      return;
    case 'call':
      answer(m.id, () => (calls[m.method] as (...args: unknown[]) => Promise<unknown>)(...m.args));
      return;
    case 'health':
      void store.health().then((h) => send({ op: 'reply', id: m.id, ok: true, value: h }));
      return;
    case 'stop':
      void (async () => {
        abort.abort(new Error('stopping'));
        clearInterval(conserveTimer);
        clearInterval(processedTimer);
        clearInterval(declareTimer);
        const w = await workersReady.catch(() => null);
        await w?.stop();
        // DuckDB must not be closed under a query in flight (it aborts the process).
        await resuming;
        await declaring;
        await backfills.idle();
        await store.close();
        await catalog.close();
        await log.close();
        await tracing.shutdown();
        send({ op: 'stopped' });
      })();
      return;
  }
});
