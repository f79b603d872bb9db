import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { openCatalog, openLog, openStore } from '../backends/registry.js';
import type { Config } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { coerceError, RetryAfterError, SluiceError, storeDataError } from '../core/errors.js';
import { parseView } from '../core/query.js';
import { BackfillRunner } from '../ops/backfill.js';
import { ViewBuilds } from '../ops/views.js';
import { TypedColumnBuilds } from '../ops/typed-columns.js';
import { ConservationChecker, toReply } from '../obs/conservation.js';
import { createLogger } from '../obs/logger.js';
import { startTracing } from '../obs/tracing.js';
import { prom, storeMetrics, TenantLabels } from '../obs/metrics.js';
import type { ConservationReply } from '../ports/reader.js';
import { startWorkers, type Workers } from '../worker/workers.js';
import { EnrichSettings } from '../rollout/enrich-settings.js';
import { RolloutRuntime, SHADOW_GROUP, SHADOW_SLICE } from '../rollout/runtime.js';
import { loadEnrichers } from '../worker/enrich.js';
import { evaluateAll, finishRepair, pendingRepairs } from '../rollout/service.js';
import { SchemaRegistry } from '../schema/registry.js';
import type { ConsumerSinks } from '../worker/consumer.js';
import { lowerThreadPriority } from './priority.js';
import { periodic, Services, type Service } from '../core/service.js';
import { storeCalls } from './store-calls.js';
import { WITHOUT_STORE, type FromStoreThread, type StoreThreadCalls, type StoreThreadEvent, type ToStoreThread } from './store-thread-protocol.js';

/**
 * The store thread of a sluice process: the store (DuckDB admits one writing process, so
 * everything that writes it lives here), the queries that read it, and in a worker the
 * consumers. The HTTP thread never waits for a store commit; it calls here by message
 * (store-thread-protocol.ts).
 *
 * Its services, started in this order and stopped in reverse: the engines (log, catalog,
 * store), the consumer group, the conservation check, the configured views' declarations,
 * and the reports of processed events to the HTTP thread.
 */
const given = workerData.config as Config;
// A process that is not a worker hosts the store for queries and status, with no consumers.
const config: Config = workerData.consume === false ? { ...given, worker: { ...given.worker, consumers: 0 } } : given;
const clock = systemClock;
const port = parentPort!;
// Named for what it does here: a worker's consumers, or the store of an ingest or query process.
const logger = createLogger(config.logLevel, workerData.consume === false ? 'sluice-store' : 'sluice-worker', config.logFormat === 'pretty' ? 'pretty' : 'json');
if (!lowerThreadPriority()) logger.debug('could not lower the store thread priority; it competes with ingest as an equal');
const log = await openLog(config);
const catalog = await openCatalog(config);
const store = await openStore(config);
const registry = new prom.Registry();
const metrics = config.obs.metrics ? storeMetrics(registry) : null;
// The HTTP thread decides which tenants get their own label and tells this thread, where it
// ingests; in a worker or query process it sees no events, and this thread decides, first come
// (a worker's every tenant was labelled sluice_other).
const labels = new TenantLabels(config.obs.maxTenantLabels);
const labelOf = (tenant: string): string => (workerData.ownLabels === true ? labels.of(tenant) : labels.peek(tenant));
const tracing = await startTracing(config, 'store');
const abort = new AbortController();
const backfills = new BackfillRunner(store, { logger, signal: abort.signal });
const viewBuilds = new ViewBuilds(store, backfills, { logger });
const typedBuilds = new TypedColumnBuilds(store, backfills, { logger, now: () => clock.now() });
const configViews = config.views.map(({ name, ...def }) => parseView(name, def));
/** The built-in enrichers' switches: the configuration's, with the catalog's operator-level document over them. */
const enrichSettings = new EnrichSettings(catalog, { anonymizeIp: config.enrich.anonymizeIp, userAgent: config.enrich.userAgent }, { refreshMs: config.events.schemaRefreshMs, now: () => clock.now() });
const enrichPlugins = loadEnrichers(config.enrich.plugins);
enrichPlugins.catch(() => undefined);
const rollouts = new RolloutRuntime(
  catalog,
  clock,
  async () => ({ ...(await enrichSettings.flags()), plugins: await enrichPlugins }),
  async (tenant) => (await store.views.list(tenant)).map((v) => v.def),
);

function emit(event: StoreThreadEvent): void {
  port.postMessage({ op: 'event', event } satisfies FromStoreThread);
}

const services = new Services();

/** The engines: closed last, once nothing uses them. DuckDB must not be closed under a query in flight (it aborts the process). */
services.add<Service>({
  name: 'engines',
  start: () => undefined,
  async stop() {
    await backfills.idle();
    await store.close();
    await catalog.close();
    await log.close();
    await tracing.shutdown();
  },
  health: () => ({ ok: true }),
});

// Held consumers (workerData.hold) take their leases, then wait for `begin` to process: the
// process prints its banner in between.
let beginNow: () => void = () => undefined;
const begin = workerData.hold === true ? new Promise<void>((resolve) => (beginNow = resolve)) : undefined;

/** The consumer group; `ready` resolves once the store is open and the consumers run. */
const processed = new Map<string, number>();
let workersReady: Promise<Workers> = new Promise(() => undefined);
let resuming: Promise<void> = Promise.resolve();
services.add<Service>({
  name: 'workers',
  start(signal) {
    workersReady = startWorkers(
      config,
      {
        log,
        store,
        catalog,
        logger,
        metrics: metrics ?? undefined,
        tenantLabel: labelOf,
        tracer: tracing.tracer,
        onProcessed: (tenant, n) => processed.set(tenant, (processed.get(tenant) ?? 0) + n),
        onUnavailable: (message) => emit({ kind: 'unavailable', message }),
        begin,
        stages: (live) => rollouts.liveStages(live),
        enrichFlags: enrichSettings.flags,
      },
      signal,
    );
    workersReady.then(
      () => {
        emit({ kind: 'ready' });
        resuming = backfills
          .resume()
          .then(() => viewBuilds.declare(catalog, configViews))
          .then((tenants) => viewBuilds.resume(tenants))
          .catch((e: unknown) => logger.warn({ err: coerceError(e).message }, 'could not resume backfills and view builds'));
      },
      (e: unknown) => {
        if (!signal.aborted) emit({ kind: 'fatal', message: coerceError(e).message });
      },
    );
  },
  async stop() {
    abort.abort(new Error('stopping'));
    const w = await workersReady.catch(() => null);
    await w?.stop();
    await resuming;
  },
  health: () => ({ ok: true }),
});

let conservation: ConservationReply = { checkedAt: null, settledUntil: null, from: null, unbalanced: [], gapByTenant: [] };
const checker = new ConservationChecker({ log, store, catalog }, config.obs.conservationWindowMs, config.obs.conservationFullIntervalMs);
/** The conservation check; logs once when a gap appears and once when it is gone. */
services.add(
  periodic(
    'conservation',
    config.obs.conservationIntervalMs,
    async () => {
      await workersReady;
      const r = await checker.check(clock.now());
      const before = conservation.unbalanced.length;
      if (metrics) {
        metrics.gap.reset();
        const byLabel = new Map<string, number>();
        for (const [tenant, gap] of r.gapByTenant) {
          const label = labelOf(tenant);
          byLabel.set(label, (byLabel.get(label) ?? 0) + gap);
        }
        for (const [tenant, gap] of byLabel) metrics.gap.set({ tenant }, gap);
        metrics.settled.set(r.settledUntil / 1000);
      }
      conservation = toReply(r, clock.now());
      if (before === 0 && r.unbalanced.length > 0) logger.error({ unbalanced: r.unbalanced.slice(0, 10) }, 'conservation gap: received events are not all accounted for');
      else if (before > 0 && r.unbalanced.length === 0) logger.info('conservation gap closed');
    },
    { clock, logger },
  ),
);

/** How often the rollout controller evaluates (and the shadow group starts or stops): a breach rolls back within this. */
const ROLLOUT_EVALUATION_MS = 1_000;

/**
 * How far before its rollout's start the shadow seeks in each partition (ms): receive times rise
 * with offsets only up to the clock skew between ingest processes. Records received before the
 * rollout are read and skipped by the shadow stage.
 */
const SHADOW_SEEK_MARGIN_MS = 60_000;

/**
 * Where the shadow group starts in each partition: just before the first record received
 * since `since` (less the margin), instead of wherever the group stopped (the oldest retained
 * record for a first rollout, or where the previous rollout's shadow stopped: possibly weeks
 * of records to read before the new one's events).
 */
async function shadowStart(since: number): Promise<Map<number, number>> {
  const from = new Map<number, number>();
  for (const pos of await log.positions(SHADOW_GROUP)) {
    const first = await log.offsetForTime(pos.partition, since - SHADOW_SEEK_MARGIN_MS);
    from.set(pos.partition, first === null ? pos.head : first - 1);
  }
  return from;
}

/**
 * The shadow group's sinks: it stores nothing and dead-letters nothing; its applied offsets live
 * in memory (the log keeps the group's commits). They start at `from` (see shadowStart): a
 * partition's lease acks up to there, never backwards.
 */
function shadowSinks(from: ReadonlyMap<number, number>): ConsumerSinks {
  const applied = new Map(from);
  return {
    async commit(batch) {
      for (const p of batch.partitions) applied.set(p.partition, Math.max(applied.get(p.partition) ?? 0, p.upTo));
      return { stored: 0, skipped: 0, storedByTenant: new Map() };
    },
    appliedOffsets: async () => new Map(applied),
    deadLetters: { record: async () => undefined },
  };
}

/**
 * The rollout controller: adds what the workers observed to the catalog, evaluates every
 * active rollout on its tallies (advance, hold, roll back, promote), refreshes the routes the
 * live group takes, and runs the shadow group while any rollout is active.
 */
let shadow: Promise<Workers> | null = null;
const shadowAbort = new AbortController();
const replayDeps = {
  log,
  catalog,
  schemas: new SchemaRegistry(catalog, { refreshMs: config.events.schemaRefreshMs }),
  limits: { maxEventBytes: config.limits.eventBytes, maxDepth: config.limits.depth },
  time: config.events,
  store,
  startBackfill: (spec: Parameters<typeof backfills.start>[0]) => backfills.start(spec),
};
/** Rollouts that finished at the last pass: repaired at this one, once the live routes no longer take the candidate. */
let toRepair: { tenant: string; id: string }[] = [];
/** Whether the repairs left pending before this process started were taken up (at the first pass). */
let resumed = false;
const controller = periodic(
    'rollouts',
    ROLLOUT_EVALUATION_MS,
    async () => {
      await workersReady;
      await rollouts.flush();
      const after = await evaluateAll(catalog, clock.now());
      const gone = await rollouts.refresh(after);
      if (!resumed) {
        for (const g of await pendingRepairs(catalog)) if (!toRepair.some((t) => t.id === g.id)) toRepair.push(g);
        resumed = true;
      }
      const again: typeof toRepair = [];
      for (const g of toRepair) {
        const r = await finishRepair(catalog, replayDeps, g.tenant, g.id, clock.now());
        // Lost to another writer: tried again at the next pass.
        if (r === null) again.push(g);
        else if (r.repair?.status === 'done' && r.repair.repaired > 0) logger.info({ tenant: g.tenant, rollout: g.id, state: r.state, repaired: r.repair.repaired }, `rollout ${r.state === 'aborted' ? 'aborted' : 'rolled back'} and repaired`);
      }
      toRepair = [...again, ...gone];
      if (metrics) {
        metrics.rolloutShare.reset();
        metrics.rolloutGuardrail.reset();
        for (const r of after) {
          const tenant = labelOf(r.tenant);
          metrics.rolloutShare.set({ tenant, rollout: r.id, change: r.kind }, r.share);
          const last = [...r.decisions].reverse().find((d) => d.checks);
          for (const c of last?.checks ?? []) {
            metrics.rolloutGuardrail.set({ tenant, rollout: r.id, guardrail: c.guardrail, side: 'cohort' }, c.cohort);
            metrics.rolloutGuardrail.set({ tenant, rollout: r.id, guardrail: c.guardrail, side: 'baseline' }, c.baseline);
          }
        }
      }
      if (config.worker.consumers === 0) return;
      if (rollouts.any && !shadow) {
        // The shadow reads and runs slices of SHADOW_SLICE records: a read of the live group's
        // batch size (thousands of records) blocked the thread, and filled its young generation,
        // while live batches waited (the pipeline-version shadow's freshness p99 was 2.4x).
        const sliced = { ...config, worker: { ...config.worker, readBatch: SHADOW_SLICE, commitBatch: SHADOW_SLICE } };
        shadow = shadowStart(rollouts.since ?? clock.now()).then((from) =>
          startWorkers(
            sliced,
            { log, store, catalog, logger, group: SHADOW_GROUP, stages: (live) => [rollouts.shadowStage(live)], sinks: shadowSinks(from), breaker: false, clock, enrichFlags: enrichSettings.flags },
            shadowAbort.signal,
          ),
        );
        shadow.catch((e: unknown) => logger.warn({ err: coerceError(e).message }, 'the rollout shadow group could not start'));
      } else if (!rollouts.any && shadow) {
        const s = shadow;
        shadow = null;
        await (await s.catch(() => null))?.stop();
      }
    },
    { clock, logger },
  );
services.add<Service>({
  ...controller,
  async stop() {
    await controller.stop();
    shadowAbort.abort(new Error('stopping'));
    await (await shadow?.catch(() => null))?.stop();
  },
});

/** Views of the configuration reach tenants created while the server runs. */
services.add(
  periodic(
    'configured views',
    10_000,
    async () => {
      if (configViews.length === 0) return;
      await workersReady;
      await viewBuilds.declare(catalog, configViews);
    },
    { clock, logger },
  ),
);

/** Typed columns follow the schemas (published in another thread or process: read from the catalog). */
services.add(
  periodic(
    'typed columns',
    10_000,
    async () => {
      await workersReady;
      await resuming;
      await typedBuilds.sync(catalog);
    },
    { clock, logger },
  ),
);

/** Processed events per tenant, reported to the HTTP thread a few times a second (its backlog caps). */
services.add(
  periodic(
    'processed reports',
    100,
    () => {
      if (processed.size === 0) return;
      emit({ kind: 'processed', counts: [...processed] });
      processed.clear();
    },
    { clock },
  ),
);

const calls: StoreThreadCalls = {
  ...storeCalls(store, viewBuilds),
  async counts(query) {
    const applied = await store.appliedOffsets();
    return { rows: await store.counts(query), applied: [...applied] };
  },
  health: () => store.health(),
  recent: (tenant, type, limit) => store.recent(tenant, type, limit),
  startBackfill: (spec) => backfills.start(spec),
  backfills: (tenant) => backfills.list(tenant),
  async metrics() {
    if (metrics) {
      metrics.threadHeap.set(getHeapStatistics().total_heap_size);
      const { memoryBytes, memoryByTag } = await store.health().catch(() => ({ memoryBytes: undefined, memoryByTag: undefined }));
      if (memoryBytes !== undefined) metrics.memory.set(memoryBytes);
      // Only the tags of this reading: none is left standing from an earlier one.
      metrics.memoryByTag.reset();
      for (const [tag, bytes] of Object.entries(memoryByTag ?? {})) metrics.memoryByTag.set({ tag }, bytes);
      const pending = (store as { pendingViewRows?: number }).pendingViewRows;
      if (pending !== undefined) metrics.viewPending.set(pending);
      // Waiting in line is reported apart from running (the embedded store only).
      const pool = (store as { readers?: () => { waiting: number; busy: number } }).readers;
      if (pool) {
        const { waiting, busy } = pool.call(store);
        metrics.queriesWaiting.set(waiting);
        metrics.readersBusy.set(busy);
      }
    }
    return registry.getMetricsAsJSON();
  },
  conservation: async () => conservation,
  async notify() {
    await workersReady.then((w) => w.notify(), () => undefined);
  },
  async labelTenants(tenants) {
    labels.admit(tenants);
  },
  async begin() {
    beginNow();
  },
};

/** The error a caller sees: sluice's own errors as they are, a timeout as one, anything else as the store being unavailable. */
function replyError(id: number, e: unknown, method: string): FromStoreThread {
  const err = coerceError(e);
  // A failure of the sample of recent traffic only means that sample is unavailable.
  if (err instanceof SluiceError && method !== 'recent') return { op: 'reply', id, ok: false, code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
  // A value the store cannot read is one query's problem, not the store being away (no retry, no payload echoed).
  const data = method === 'recent' ? null : storeDataError(err);
  if (data) {
    logger.error({ err }, data.message);
    return { op: 'reply', id, ok: false, code: data.code, message: data.message };
  }
  const code = e instanceof RetryAfterError && /timeout/.test(err.message) && method !== 'recent' ? 'SLUICE_ERR_QUERY_TIMEOUT' : 'SLUICE_ERR_STORE_UNAVAILABLE';
  return { op: 'reply', id, ok: false, code, message: err.message };
}

port.on('message', (m: ToStoreThread) => {
  if (m.op === 'stop') {
    void services.stop().then(() => emit({ kind: 'stopped' }));
    return;
  }
  const fn = calls[m.method] as (...args: unknown[]) => Promise<unknown>;
  // Calls that need the store wait for it to be open (the client bounds that wait).
  const run = WITHOUT_STORE.has(m.method) ? Promise.resolve().then(() => fn(...m.args)) : workersReady.then(() => fn(...m.args));
  run.then(
    (value) => m.id !== 0 && port.postMessage({ op: 'reply', id: m.id, ok: true, value } satisfies FromStoreThread),
    (e: unknown) => m.id !== 0 && port.postMessage(replyError(m.id, e, m.method)),
  );
});

await services.start();
