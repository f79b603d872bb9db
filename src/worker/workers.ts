import type { Tracer } from '@opentelemetry/api';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Config } from '../config/schema.js';
import { backoffDelay } from '../core/backoff.js';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { coerceError, SluiceError } from '../core/errors.js';
import type { Logger } from '../obs/logger.js';
import type { StoreMetrics } from '../obs/metrics.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { Store } from '../ports/store.js';
import { SchemaRegistry } from '../schema/registry.js';
import { OPERATOR_SCOPE } from '../core/operator.js';
import { PipelineRegistry } from '../transform/registry.js';
import { DeadLetterBreaker } from './breaker.js';
import { Consumer, storeSinks, type ConsumerSinks } from './consumer.js';
import { loadEnrichers } from './enrich.js';
import { enrichStage, hold, judge, type Stage } from './pipeline.js';
import { TenantPauses } from './pauses.js';
import { operatorTransformStage, transformStage } from './transform.js';

/** The live consumer group: the one whose commits queries see. */
export const WORKER_GROUP = 'workers';

export interface Workers {
  consumers: Consumer[];
  notify(): void;
  stop(): Promise<void>;
}

/**
 * Connects the store (retrying with backoff: a store that is down at start delays
 * processing, never ingest) and starts `config.worker.consumers` consumers of the group.
 */
export async function startWorkers(
  config: Readonly<Config>,
  deps: {
    log: Log;
    store: Store;
    catalog: Catalog;
    logger?: Logger;
    metrics?: StoreMetrics;
    tenantLabel?: (tenant: string) => string;
    tracer?: Tracer;
    /** Events of a tenant finished (stored or dead-lettered): ingest's backlog accounting. */
    onProcessed?: (tenant: string, n: number) => void;
    /** Why the store cannot be opened yet (readiness reports it). */
    onUnavailable?: (reason: string) => void;
    /** The consumer group (WORKER_GROUP by default). */
    group?: string;
    /** Leases, backoff, idle polls and the breaker's pause time (the system clock by default). */
    clock?: Clock;
    /** The consumers process records once this settles (see ConsumerOptions.begin). */
    begin?: Promise<void>;
    /** The group's stage list from the live one (a rollout's cohort route, a shadow group's candidate run). */
    stages?: (live: Stage[]) => Stage[];
    /** Where the group writes (the store and the catalog's dead letters by default). */
    sinks?: ConsumerSinks;
    /** false: the group does not feed the dead-letter breaker (a shadow group never pauses a tenant). */
    breaker?: boolean;
    /** The built-in enrichers' switches in effect (the configuration's by default; the catalog's operator-level document over them in `up`). */
    enrichFlags?: () => Promise<{ anonymizeIp: boolean; userAgent: boolean }>;
  },
  signal?: AbortSignal,
): Promise<Workers> {
  const { log, store, catalog, logger, metrics } = deps;
  const label = deps.tenantLabel ?? ((t: string) => t);
  const clock = deps.clock ?? systemClock;
  for (let attempt = 0; ; attempt++) {
    try {
      await store.connect(signal);
      if (attempt > 0) logger?.info({ store: store.name }, 'store reachable again');
      break;
    } catch (e: unknown) {
      if (signal?.aborted) throw e;
      const delay = backoffDelay(attempt, 200, 10_000);
      logger?.warn({ store: store.name, err: coerceError(e).message, retryInMs: delay }, 'store unreachable; retrying');
      deps.onUnavailable?.(coerceError(e).message);
      await clock.sleep(delay, signal);
    }
  }
  // The live group only: a group with sinks of its own (a shadow) writes nowhere it could skip.
  if (!deps.sinks) await refuseAppliedPastHeads(log, store, deps.group ?? WORKER_GROUP);
  const w = config.worker;
  const registry = new SchemaRegistry(catalog, { refreshMs: config.events.schemaRefreshMs });
  const pipelines = new PipelineRegistry(catalog, { refreshMs: config.events.schemaRefreshMs, now: () => clock.now() });
  const pauses = new TenantPauses({
    catalog,
    registry,
    breaker: config.breaker.enabled && deps.breaker !== false ? new DeadLetterBreaker(config.breaker) : null,
    onResume: (tenant) => {
      // The tenant's own pipeline, and the operator's (run for every tenant before its own).
      pipelines.forget(tenant);
      pipelines.forget(OPERATOR_SCOPE);
    },
    clock,
    logger,
  });
  const plugins = await loadEnrichers(config.enrich.plugins);
  const flags = deps.enrichFlags ?? (async () => ({ anonymizeIp: config.enrich.anonymizeIp, userAgent: config.enrich.userAgent }));
  const live: Stage[] = [
    judge(w.maxAttempts),
    hold(pauses.pausedWhy),
    enrichStage(async () => ({ ...(await flags()), plugins })),
    operatorTransformStage(() => pipelines.operator(), (tenant) => pipelines.saltOf(tenant)),
    transformStage((tenant) => pipelines.forTenant(tenant)),
  ];
  const stages = deps.stages ? deps.stages(live) : live;
  // A worker with a stable id (a systemd instance, a pod name) takes its predecessor's leases
  // back at once after a crash, instead of waiting for them to expire.
  const base = w.id ? `${os.hostname()}-${w.id}` : `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const consumers: Consumer[] = [];
  let lastRetryLog = 0;
  // One log line per change of the leases, not one per partition: a start takes 16 at once.
  const leaseChanges = { taken: [] as number[], lost: [] as number[] };
  let leaseTimer: TimerHandle | null = null;
  const logLeases = (): void => {
    if (leaseTimer) clock.clearTimeout(leaseTimer);
    leaseTimer = null;
    const { taken, lost } = leaseChanges;
    if (taken.length === 0 && lost.length === 0) return;
    const sort = (a: number[]) => a.splice(0).sort((x, y) => x - y);
    logger?.info({ owner: base, taken: sort(taken), lost: sort(lost) }, 'leases changed');
  };
  for (let i = 0; i < w.consumers; i++) {
    const owner = `${base}-${i}`;
    consumers.push(
      new Consumer(log, deps.sinks ?? storeSinks(store, catalog.deadLetters), {
        group: deps.group ?? WORKER_GROUP,
        owner,
        partitions: log.capabilities.partitions,
        readBatch: w.readBatch,
        commitBatch: w.commitBatch,
        maxAttempts: w.maxAttempts,
        leaseTtlMs: w.leaseTtlMs,
        pollMs: w.pollMs,
        idleMaxMs: w.idleMaxMs,
        tracer: deps.tracer,
        clock,
        stages,
        onOutcome: pauses.outcome,
        begin: deps.begin,
        onEvent: (e) => {
          switch (e.kind) {
            case 'lease':
              logger?.debug({ owner, partition: e.partition }, e.held ? 'lease taken' : 'lease lost');
              (e.held ? leaseChanges.taken : leaseChanges.lost).push(e.partition);
              leaseTimer ??= clock.setTimeout(logLeases, 100);
              metrics?.leases.inc(e.held ? 1 : -1);
              return;
            case 'retry':
              metrics?.retries.inc();
              if (clock.now() - lastRetryLog > 5_000) {
                lastRetryLog = clock.now();
                logger?.warn({ owner, err: e.error, retryInMs: e.delayMs, trace_id: e.traceId }, 'transient failure; retrying');
              }
              return;
            case 'committed':
              for (const [tenant, n] of e.storedByTenant) deps.onProcessed?.(tenant, n);
              if (!metrics) return;
              metrics.commitDuration.observe(e.seconds);
              metrics.commitRecords.inc(e.records);
              if (e.skipped > 0) metrics.redelivered.inc(e.skipped);
              for (const [tenant, n] of e.storedByTenant) metrics.stored.inc({ tenant: label(tenant) }, n);
              return;
            case 'dead-lettered':
              deps.onProcessed?.(e.tenant, 1);
              metrics?.deadLettered.inc({ tenant: label(e.tenant), reason: e.reason });
              return;
            case 'busy':
              metrics?.busy.inc(e.seconds);
          }
        },
      }),
    );
  }
  for (const c of consumers) c.start();
  await Promise.all(consumers.map((c) => c.firstLeases));
  logLeases();
  return {
    consumers,
    notify: () => consumers.forEach((c) => c.notify()),
    /** Must not throw. */
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
    },
  };
}

/**
 * Refuses to consume (SLUICE_ERR_DATA_DAMAGED, field `dataDir`) when the store has applied an
 * offset past the head of its partition on a log whose heads never go back: the log is not the
 * one the store was filled from (lost, deleted, restored from an older copy). Consuming would
 * skip the new log's records up to the store's offsets as already applied: acknowledged,
 * never stored.
 */
async function refuseAppliedPastHeads(log: Log, store: Store, group: string): Promise<void> {
  if (!log.capabilities.headsNeverGoBack) return;
  const applied = await store.appliedOffsets();
  if (applied.size === 0) return;
  const heads = new Map((await log.positions(group)).map((p) => [p.partition, p.head]));
  const ahead = [...applied].filter(([p, offset]) => offset > (heads.get(p) ?? 0));
  if (ahead.length === 0) return;
  const [p, offset] = ahead[0]!;
  const message = `the store has applied offset ${offset} of partition ${p}, but the log's head there is ${heads.get(p) ?? 0} (${ahead.length} partition${ahead.length === 1 ? '' : 's'} so): the log is not the one the store was filled from (lost, deleted, or restored from an older copy). Restore the log (sluice.db with its -wal and -offsets files) from the same backup as the store; or, to start afresh, move the whole data directory aside. Events acknowledged since this log was made are in it: keep a copy of it before either.`;
  // Remembered in the log: once new appends pass the store's offsets, the comparison alone
  // would no longer see it, and the records up to them would be skipped as applied.
  await log.markUnusable?.(message);
  throw new SluiceError('SLUICE_ERR_DATA_DAMAGED', message, { field: 'dataDir' });
}
