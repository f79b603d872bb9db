import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { openCatalog, openLog, ownsDataDir } from '../backends/registry.js';
import { SqliteLog } from '../backends/sqlite/log.js';
import { startRetention } from '../backends/sqlite/retention.js';
import { SluiceError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import type { Config } from '../config/schema.js';
import { buildApp } from '../http/app.js';
import { Quotas } from '../ingest/quotas.js';
import { createLogger } from '../obs/logger.js';
import { startTracing } from '../obs/tracing.js';
import type { NewTenant } from '../ports/catalog.js';
import { StoreThread } from './store-thread-client.js';
import { WORKER_GROUP } from '../worker/workers.js';
import { lockDataDir } from './data-dir-lock.js';
import { Services } from './service.js';
import { alertServices } from '../alerts/service.js';
import { storeSource } from '../alerts/source.js';
import { systemClock } from '../core/clock.js';

export interface Running {
  app: FastifyInstance;
  roles: readonly Role[];
  url: string;
  /** The default tenant's keys when this start created it; null otherwise. */
  created: NewTenant | null;
  /** Drains and stops everything. Idempotent; must not throw. */
  close(): Promise<void>;
}

/** The roles of a process: `sluice up` runs them all; `sluice ingest|worker|query` one each. */
export type Role = 'ingest' | 'worker' | 'query';
export const ALL_ROLES: readonly Role[] = ['ingest', 'worker', 'query'];

/**
 * `sluice up`: every role in one process on the embedded default. The HTTP thread
 * validates and appends to the log (group commits, one fsync each); the store thread
 * consumes the log and commits to DuckDB. So the HTTP path never waits for the store, and
 * both cores work.
 */
export async function up(config: Readonly<Config>, roles: readonly Role[] = ALL_ROLES): Promise<Running> {
  const all = ALL_ROLES.every((r) => roles.includes(r));
  // The embedded log and store have one writer: the process that holds the data directory.
  const ownsDir = ownsDataDir(config);
  if (!all && ownsDir) {
    throw new SluiceError(
      'SLUICE_ERR_CONFIG',
      `sluice ${roles.join(', ')} runs beside other processes and needs a shared log and store: --log nats://host:4222 --store postgres://user@host:5432/db (on one machine with the embedded files, run sluice up)`,
    );
  }
  const unlock = ownsDir ? lockDataDir(config.dataDir) : () => undefined;
  const logger = createLogger(config.logLevel);
  const tracing = await startTracing(config, 'http');
  // The store thread hosts the store (queries, status) and, in a worker, the consumers.
  const storeThread = new StoreThread(config, logger, { consume: roles.includes('worker') });
  const log = await openLog(config, () => storeThread.notify()).catch((e: unknown) => {
    unlock();
    throw e;
  });
  // The data-dir lock says no other process uses the embedded log: leases left by one that
  // died are free now, instead of at their expiry (a crash loop would otherwise wait a ttl
  // per start). A shared log (NATS) has other users: its leases expire by themselves.
  if (log instanceof SqliteLog) {
    const freed = log.expireLeases();
    if (freed > 0) logger.info({ leases: freed }, 'freed the leases of a process that stopped without releasing them');
  }
  const catalog = await openCatalog(config).catch(async (e: unknown) => {
    await log.close();
    unlock();
    throw e;
  });
  // Role processes share a catalog: tenants are made with `sluice tenant create`, not at start.
  const created = !all || (await catalog.getTenant('default')) ? null : await catalog.createTenant('default');
  const quotas = Quotas.fromConfig(config);
  storeThread.onProcessed = (counts) => quotas.processed(counts);
  // The backlog a previous process left counts against each tenant's cap too.
  if (roles.includes('ingest')) for (const [tenant, n] of await log.backlogByTenant(WORKER_GROUP)) quotas.accepted(tenant, n);
  storeThread.start();
  const app = buildApp({
    config,
    log,
    catalog,
    quotas,
    reader: storeThread,
    logger,
    serve: { ingest: roles.includes('ingest'), query: roles.includes('query') },
    observability: { remote: () => storeThread.metrics(), onTenantLabel: (t) => storeThread.labelTenants([t]), tracer: tracing.tracer },
  });
  const address = await app.listen({ host: config.host, port: config.port });
  const stopRetention = log instanceof SqliteLog ? startRetention(log, logger) : () => undefined;
  // Alert evaluation and delivery run beside the query API; scaled out, the one holding the catalog's lease works.
  const jobs = new Services();
  if (config.alerts.enabled && roles.includes('query')) {
    const source = storeSource(storeThread, log, Date.now, catalog.deadLetters);
    // Holding the data directory, a lease left by an earlier process of the same directory is one that died: take it back at once.
    const owner = ownsDir ? `sluice-up:${path.resolve(config.dataDir)}` : undefined;
    const alerts = {
      store: catalog.alerts,
      source,
      clock: systemClock,
      logger,
      ...config.alerts,
      externalUrl: config.alerts.externalUrl || address,
      tenants: async () => (await catalog.listTenants()).map((t) => t.name),
      paused: async (tenant: string) => (await catalog.settings(tenant)).paused !== null,
    };
    for (const s of alertServices(owner ? { ...alerts, owner } : alerts)) jobs.add(s);
  }
  await jobs.start();

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      stopRetention();
      await jobs.stop();
      // Stop taking requests and let those in flight finish (their appends are answered).
      await app.close().catch(() => undefined);
      await log.close();
      await storeThread.stop();
      await catalog.close();
      quotas.close();
      await tracing.shutdown();
      unlock();
    })());
  return { app, roles, url: address, created, close };
}

export function banner(running: Running, config: Readonly<Config>): string {
  const { url, created } = running;
  const where =
    config.log.url === 'embedded' && config.store.url === 'embedded'
      ? `data in ${config.dataDir}, ${config.partitions} partitions, log fsync: ${config.log.fsync}`
      : `log ${redactUrl(config.log.url)}, store ${redactUrl(config.store.url)}, catalog ${redactUrl(config.catalog.url)}, ${config.partitions} partitions`;
  const what = running.roles.length === ALL_ROLES.length ? 'sluice is up' : `sluice ${running.roles.join(', ')} is up`;
  const lines = [`${what} on ${url}  (${where})`, ''];
  if (created) {
    lines.push(
      'Created the tenant "default". Its keys are shown this once; keep them:',
      `  write key: ${created.writeKey}`,
      `  read key:  ${created.readKey}`,
      `  admin key: ${created.adminKey}   (status: GET ${url}/v1/status)`,
      '',
      'Send an event:',
      `  curl -X POST ${url}/v1/events -H "Authorization: Bearer ${created.writeKey}" \\`,
      `       -d '{"type":"checkout","key":"user-42","properties":{"amount":12.5}}'`,
      'Count them per minute:',
      `  curl -X POST ${url}/v1/query -H "Authorization: Bearer ${created.readKey}" \\`,
      `       -d '{"event":"checkout","from":"-1h","to":"now","interval":"1m"}'`,
    );
  } else if (running.roles.length === ALL_ROLES.length) {
    lines.push('Tenant "default" exists (its keys were printed when it was created).', 'New tenant and keys: sluice tenant create NAME');
  }
  lines.push('', `Health: ${url}/healthz  ${url}/readyz      Stop: Ctrl-C (drains, nothing is lost)`);
  return lines.join('\n');
}

