import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { configured, openCatalog, ownsDataDir } from '../backends/registry.js';
import { SluiceError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import type { Config } from '../config/schema.js';
import { cliCommand } from '../config/load.js';
import { isolatedPipelineTests } from './pipeline-tests.js';
import { buildApp } from '../http/app.js';
import { Quotas } from '../ingest/quotas.js';
import { createLogger, resolveLogFormat } from '../obs/logger.js';
import { startTracing } from '../obs/tracing.js';
import type { NewTenant } from '../ports/catalog.js';
import { StoreThread } from './store-thread-client.js';
import { WORKER_GROUP } from '../worker/workers.js';
import type { AddressInfo } from 'node:net';
import { listenObservability } from '../http/obs-listener.js';
import { lockDataDir } from './data-dir-lock.js';
import { ALL_ROLES, consumes, isAllRoles, servedApis, type Role } from './roles.js';
import { Services } from '../core/service.js';
import { alertServices } from '../alerts/service.js';
import { storeSource } from '../alerts/source.js';
import { SeriesCache } from '../alerts/series-cache.js';
import { systemClock } from '../core/clock.js';
import { backlogAtStart } from './backlog-at-start.js';

export interface Running {
  app: FastifyInstance;
  roles: readonly Role[];
  url: string;
  /** The observability listener's URL (obs.metricsAddress), or null when there is none. */
  obsUrl: string | null;
  /** The default tenant's keys when this start created it; null otherwise. */
  created: NewTenant | null;
  /** The catalog's tenants at start (names, up to 6), for the banner; empty for role processes. */
  tenants: string[];
  /** Resolves true once the store thread is ready (consumers started), false after `ms`. */
  ready(ms: number): Promise<boolean>;
  /** Lets consumers held by `holdConsumers` process records. Idempotent. */
  begin(): void;
  /** Drains and stops everything. Idempotent; must not throw. */
  close(): Promise<void>;
}

export { ALL_ROLES, type Role } from './roles.js';

/**
 * `sluice up`: every role in one process on the embedded default. The HTTP thread
 * validates and appends to the log (group commits, one fsync each); the store thread
 * consumes the log and commits to DuckDB. So the HTTP path never waits for the store, and
 * both cores work.
 */
export async function up(config: Readonly<Config>, roles: readonly Role[] = ALL_ROLES, options: { holdConsumers?: boolean } = {}): Promise<Running> {
  const all = isAllRoles(roles);
  // The embedded log and store have one writer: the process that holds the data directory.
  const ownsDir = ownsDataDir(config);
  if (!all && ownsDir) {
    throw new SluiceError(
      'SLUICE_ERR_CONFIG',
      `sluice ${roles.join(', ')} runs beside other processes and needs a shared log and store: --log nats://host:4222 --store postgres://user@host:5432/db (on one machine with the embedded files, run sluice up)`,
    );
  }
  // Everything started is stopped in reverse order, on close or when a later start fails.
  const services = new Services();
  const unlock = ownsDir ? lockDataDir(config.dataDir) : () => undefined;
  services.adopt('data-directory lock', unlock);
  // Resolved here, where stderr may be a terminal; the store thread is told the result.
  const logFormat = resolveLogFormat(config.logFormat);
  config = { ...config, logFormat };
  const logger = createLogger(config.logLevel, 'sluice', logFormat);
  const tracing = await startTracing(config, 'http');
  services.adopt('tracing', () => tracing.shutdown());
  // The store thread hosts the store (queries, status) and, in a worker, the consumers.
  const storeThread = new StoreThread(config, logger, { consume: consumes(roles), hold: options.holdConsumers === true, ownLabels: !servedApis(roles).ingest });
  try {
    const logBackend = configured(config, 'log');
    const log = await logBackend.create(config, { onFlush: () => storeThread.notify(), logger });
    services.adopt('log', () => log.close());
    // What the log's engine needs beside it (the embedded log: free the leases of a process
    // that died, at start; prune acked records past their retention).
    for (const s of logBackend.services?.(log, { logger }) ?? []) services.add(s);
    const catalog = await openCatalog(config);
    services.adopt('catalog', () => catalog.close());
    // On a shared log (NATS), the events this process accepts may be processed by workers of
    // other processes, which report nothing to it, and its own workers process other processes'
    // events: its per-tenant backlog follows the worker group's committed offsets instead.
    const quotas = Quotas.fromConfig(config, { processedElsewhere: !ownsDir });
    services.adopt('quotas', () => quotas.close());
    if (!quotas.releasedByOffsets) storeThread.onProcessed = (counts) => quotas.processed(counts);
    // The backlog a previous process left counts against each tenant's cap too.
    if (roles.includes('ingest')) {
      const { byTenant, heads } = await backlogAtStart(log, WORKER_GROUP, { clock: systemClock, logger });
      quotas.inherit(byTenant, heads);
    }
    services.add({ name: 'store thread', start: () => storeThread.start(), stop: () => storeThread.stop(), health: () => ({ ok: true }) });
    const app = buildApp({
      config,
      log,
      catalog,
      quotas,
      reader: storeThread,
      logger,
      serve: servedApis(roles),
      pipelineTests: isolatedPipelineTests(),
      observability: { remote: () => storeThread.metrics(), onTenantLabel: (t) => storeThread.labelTenants([t]), tracer: tracing.tracer },
    });
    // Stop taking requests and let those in flight finish (their appends are answered), before the log closes.
    services.adopt('http', () => app.close().then(() => undefined, () => undefined));
    await services.start();
    // The consumers of this process first ack what the store had already applied (a crash
    // between commit and ack): those records are never processed again, so the count above
    // would keep them for ever. Counted again once the consumers have started.
    // (Released by offsets, nothing needs counting again: those acks pass the offsets too.)
    if (roles.includes('ingest') && roles.includes('worker') && !quotas.releasedByOffsets) {
      void storeThread
        .whenReady(60_000)
        .then(async (ready) => {
          if (ready) quotas.resetBacklog(await log.backlogByTenant(WORKER_GROUP));
        })
        .catch(() => undefined);
    }
    // Bind before anything is created: a port in use must not leave a tenant whose keys were never shown.
    const address = await app.listen({ host: config.host, port: config.port }).catch((e: unknown) => {
      throw listenError(e, config);
    });
    // Metrics and health on an address of their own (loopback by default in deploy/).
    const obs = config.obs.metricsAddress ? await listenObservability(app, config.obs.metricsAddress) : null;
    if (obs) services.adopt('metrics listener', () => new Promise<void>((r) => obs.close(() => r())));
    const obsUrl = obs ? urlOf(obs.address() as AddressInfo) : null;
    // Alert evaluation and delivery run beside the query API; scaled out, the one holding the catalog's lease works.
    if (config.alerts.enabled && roles.includes('query')) {
      // The evaluation keeps each query's per-minute series between passes (alerts/series-cache.ts).
      const source = storeSource(storeThread, log, () => systemClock.now(), {
        deadLetters: catalog.deadLetters,
        cache: new SeriesCache({ now: () => systemClock.now() }),
        // One scan reads all of a tenant's series (a first pass: a query's work per series).
        scanTimeoutMs: config.alerts.evaluateIntervalMs,
        ingest: (tenant, from, to) => catalog.alerts.ingestMinutes(tenant, from, to),
        conservationWindowMs: config.obs.conservationWindowMs,
      });
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
      for (const service of alertServices(owner ? { ...alerts, owner } : alerts)) services.add(service);
      await services.start();
    }
    // Role processes share a catalog: tenants are made with `sluice tenant create`, not at start.
    // Created after the bind and printed at once by the caller; a crash in between loses the
    // keys of a tenant that has received nothing, and the banner then says how to issue new ones.
    // The first start (a catalog without tenants) creates "default"; a catalog that has tenants
    // (made with `sluice tenant create`, or shared on PostgreSQL) gets none it did not ask for.
    const tenants = all ? (await catalog.listTenants()).map((t) => t.name) : [];
    const created = !all || tenants.length > 0 ? null : await catalog.createTenant('default');
    let closing: Promise<void> | null = null;
    const close = (): Promise<void> => (closing ??= services.stop());
    return { app, roles, url: address, obsUrl, created, tenants: tenants.slice(0, 6), ready: (ms) => storeThread.whenReady(ms), begin: () => storeThread.begin(), close };
  } catch (e: unknown) {
    await services.stop();
    throw e;
  }
}

export function banner(running: Running, config: Readonly<Config>): string {
  const { url, created } = running;
  const where =
    config.log.url === 'embedded' && config.store.url === 'embedded'
      ? `data in ${config.dataDir}, ${config.partitions} partitions, log fsync: ${config.log.fsync}`
      : `log ${redactUrl(config.log.url)}${config.log.url === 'embedded' ? '' : ` (stream ${config.log.stream})`}, store ${redactUrl(config.store.url)}, catalog ${config.catalog.url === 'embedded' ? `embedded in ${config.dataDir}` : redactUrl(config.catalog.url)}, ${config.partitions} partitions`;
  const what = running.roles.length === ALL_ROLES.length ? 'sluice is up' : `sluice ${running.roles.join(', ')} is up`;
  const lines = [`${what} on ${url}  (${where})`];
  // Role processes share their keys and tenants through the catalog: an embedded one is this
  // machine's data directory only, and a process elsewhere (or with another --data-dir) knows
  // none of them (every key answered 401).
  if (running.roles.length < ALL_ROLES.length && config.catalog.url === 'embedded') {
    lines.push(`The catalog (tenants, keys, schemas) is the file in ${config.dataDir}: every process of this deployment must use the same one; across machines, --catalog postgres://…`);
  }
  lines.push('');
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
    const dir = config.log.url === 'embedded' && config.dataDir !== './data' ? ` --data-dir ${config.dataDir}` : '';
    const name = running.tenants.includes('default') ? 'default' : (running.tenants[0] ?? 'NAME');
    lines.push(
      running.tenants.includes('default')
        ? 'Tenant "default" exists; its keys were printed when it was created.'
        : `Tenants: ${running.tenants.slice(0, 5).join(', ')}${running.tenants.length > 5 ? ', …' : ''}; their keys were printed when each was created.`,
      `Lost them? Issue new ones: ${cliCommand()} key create ${name} --scope write${dir}   (or --scope read, --scope admin)`,
      `Another tenant and its keys: ${cliCommand()} tenant create NAME${dir}`,
    );
  }
  const obs = running.obsUrl ?? url;
  if (lines.at(-1) !== '') lines.push('');
  lines.push(
    `Health: ${obs}/healthz  ${obs}/readyz  Metrics: ${obs}/metrics${running.obsUrl ? '' : ' (loopback clients only)'}`,
    `Stop: Ctrl-C, or kill ${process.pid} (pid ${process.pid}; drains, nothing is lost)`,
  );
  return lines.join('\n');
}

/** Why the server could not listen, and what to do about it. */
function listenError(e: unknown, config: Readonly<Config>): unknown {
  const code = (e as { code?: string }).code;
  const where = `${config.host}:${config.port}`;
  if (code === 'EADDRINUSE') {
    return new SluiceError('SLUICE_ERR_CONFIG', `${where} is in use (another sluice, or another server): stop it, or pick another port with --port ${config.port + 1} (or SLUICE_PORT)`, { cause: e });
  }
  if (code === 'EACCES') return new SluiceError('SLUICE_ERR_CONFIG', `not allowed to listen on ${where}: pick a port above 1023 with --port (or SLUICE_PORT)`, { cause: e });
  if (code === 'EADDRNOTAVAIL') return new SluiceError('SLUICE_ERR_CONFIG', `${config.host} is not an address of this machine: pick another with --host (or SLUICE_HOST)`, { cause: e });
  return e;
}

/**
 * Runs a server process until SIGINT or SIGTERM: starts the roles, waits until the store
 * thread is ready (so its start-up log lines come first), then prints the banner last.
 */
export async function serve(config: Readonly<Config>, roles: readonly Role[]): Promise<number> {
  // The consumers take their leases (and log it), then wait until the banner is out.
  const running = await up(config, roles, { holdConsumers: true });
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = (): void => {
      stopping = true;
      process.stderr.write('\nsluice: draining (in-flight requests and the batch in hand), then stopping\n');
      void running.close().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await Promise.race([running.ready(10_000), stopped]);
  if (!stopping) {
    process.stdout.write(banner(running, config) + '\n');
    running.begin();
  }
  await stopped;
  return 0;
}


function urlOf(a: AddressInfo): string {
  return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}
