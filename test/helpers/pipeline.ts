import type { Clock } from '../../src/core/clock.js';
import type { Tracer } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import { openEmbeddedCatalog, openEmbeddedLog, openEmbeddedStore } from '../../src/backends/embedded.js';
import { defaultConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { buildApp } from '../../src/http/app.js';
import { Quotas } from '../../src/ingest/quotas.js';
import type { NewTenant } from '../../src/ports/catalog.js';
import type { Log } from '../../src/ports/log.js';
import { directReader } from '../../src/app/store-calls.js';
import { startWorkers, type Workers } from '../../src/worker/workers.js';
import { tmpDir } from './tmp.js';

export interface Pipeline {
  config: Readonly<Config>;
  app: FastifyInstance;
  tenant: NewTenant;
  log: ReturnType<typeof openEmbeddedLog>;
  store: ReturnType<typeof openEmbeddedStore>;
  catalog: ReturnType<typeof openEmbeddedCatalog>;
  quotas: Quotas;
  workers: Workers | null;
  close(): Promise<void>;
}

export interface PipelineOptions {
  /** false: the log is left unconsumed. */
  workers?: boolean;
  tracer?: Tracer;
  /** The log as the workers see it: a fault injected between them and the log. */
  workerLog?: (log: Log) => Log;
  /** The log's clock (leases, the dedupe horizon): a test's, or the system clock. */
  logClock?: Pick<Clock, 'now'>;
  /** The HTTP app's clock (readiness, freshness), when not the system clock. */
  clock?: Clock;
}

/**
 * The whole embedded pipeline in this process, on real SQLite and DuckDB files, with the
 * HTTP API reachable through `app.inject()`. `workers: false` leaves the log unconsumed.
 */
export async function startPipeline(overrides: Record<string, unknown> = {}, options: PipelineOptions = {}): Promise<Pipeline> {
  const config = defaultConfig({ dataDir: tmpDir(), ...overrides });
  let workers: Workers | null = null;
  const log = openEmbeddedLog(config, () => workers?.notify(), options.logClock);
  const catalog = openEmbeddedCatalog(config);
  const store = openEmbeddedStore(config);
  await store.connect();
  const tenant = await catalog.createTenant('acme');
  const quotas = Quotas.fromConfig(config);
  if (options.workers !== false) workers = await startWorkers(config, { log: options.workerLog?.(log) ?? log, store, catalog, tracer: options.tracer, onProcessed: (t, n) => quotas.processed([[t, n]]) });
  const app = buildApp({
    config,
    log,
    catalog,
    quotas,
    reader: directReader(store, { log, catalog, conservationWindowMs: config.obs.conservationWindowMs }),
    observability: { tracer: options.tracer },
    ...(options.clock ? { clock: options.clock } : {}),
  });
  await app.ready();
  return {
    config,
    app,
    tenant,
    log,
    store,
    catalog,
    quotas,
    workers,
    async close() {
      await app.close();
      await workers?.stop();
      await log.close();
      await store.close();
      await catalog.close();
      quotas.close();
    },
  };
}

/** Polls `fn` until it returns true or `timeoutMs` passes. */
export async function until(fn: () => Promise<boolean> | boolean, timeoutMs = 30_000, stepMs = 25): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
