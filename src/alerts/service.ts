import { randomUUID } from 'node:crypto';
import { periodic, type Service } from '../core/service.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../obs/logger.js';
import type { AlertStore } from '../ports/alerts.js';
import { receiverRefusal } from './receiver-address.js';
import { Deliverer, OUTBOX_RETENTION_MS, PRUNE_INTERVAL_MS, pruneDelivered } from './deliver.js';
import { evaluatePass } from './evaluator.js';
import type { AlertSource } from './source.js';

export interface AlertServiceOptions {
  store: AlertStore;
  source: AlertSource;
  clock: Clock;
  logger?: Logger;
  evaluateIntervalMs: number;
  deliverIntervalMs: number;
  externalUrl: string;
  /** The evaluation lease's time to live, ms: another process takes over within it. */
  leaseTtlMs: number;
  /** How long delivered notifications stay in the outbox, ms (default OUTBOX_RETENTION_MS, 120 h). */
  outboxRetentionMs?: number;
  /** Every tenant (built-in rules apply to each). */
  tenants?: () => Promise<string[]>;
  /** Whether the dead-letter breaker holds a tenant's events. */
  paused?: (tenant: string) => Promise<boolean>;
  /** Per delivery request, ms (default 10 s). */
  deliveryTimeoutMs?: number;
  /** Whether receivers may be on loopback and private networks (alerts.privateReceivers; see receiver-address.ts). */
  privateReceivers?: boolean;
  /** This process's identity for the lease (default: a random id). */
  owner?: string;
}

/**
 * The alerts' services: `alerts.evaluate` runs an evaluation pass every
 * `evaluateIntervalMs` (rules, states, group timers, queuing notifications),
 * `alerts.deliver` delivers the outbox every `deliverIntervalMs` (so a notification queued by
 * a pass, or left by a process that died, goes out within a second, and retries follow their
 * backoff; receivers are sent to concurrently, each in order, so a slow one delays only
 * itself: see Deliverer), and `alerts.prune` deletes, every 10 minutes, the notifications delivered more
 * than `outboxRetentionMs` ago (undelivered ones stay). Every query process runs them; only the holder of the evaluation lease (in the
 * catalog) does the work, renewing it at each run, so exactly one process evaluates and
 * delivers at a time and another takes over within `leaseTtlMs` when it dies. A takeover
 * finds the group states and the outbox as the last holder committed them: it queues nothing
 * twice and delivers what was left.
 */
export function alertServices(opts: AlertServiceOptions): (Service & { runNow(): Promise<void> })[] {
  const logger = opts.logger?.child({ component: 'alerts' });
  const owner = opts.owner ?? randomUUID();
  let held = false;
  const leased = async (): Promise<boolean> => {
    const now = await opts.store.lease(owner, opts.leaseTtlMs, opts.clock.now());
    if (now !== held) logger?.info({ owner }, now ? 'took the alert evaluation lease' : 'lost the alert evaluation lease; another process evaluates');
    held = now;
    return now;
  };
  const evaluate = periodic(
    'alerts.evaluate',
    opts.evaluateIntervalMs,
    async () => {
      if (!(await leased())) return;
      const r = await evaluatePass({
        store: opts.store,
        source: opts.source,
        clock: opts.clock,
        externalUrl: opts.externalUrl,
        ...(opts.tenants ? { tenants: opts.tenants } : {}),
        ...(opts.paused ? { paused: opts.paused } : {}),
        onRuleError: (tenant, rule, e) => logger?.warn({ tenant, rule, err: e.message }, 'alert rule failed to evaluate'),
      });
      for (const t of r.transitions) logger?.info({ tenant: t.tenant, rule: t.rule, severity: t.severity, from: t.from, to: t.to, at: new Date(t.at).toISOString() }, 'alert state changed');
    },
    { clock: opts.clock, ...(logger ? { logger } : {}), runAtStart: true },
  );
  // Each pass starts the receivers with due notifications and returns: a slow receiver holds only its own queue.
  const deliverer = new Deliverer({
    store: opts.store,
    clock: opts.clock,
    ...(opts.deliveryTimeoutMs !== undefined ? { timeoutMs: opts.deliveryTimeoutMs } : {}),
    refusal: (url) => receiverRefusal(url, opts.privateReceivers ?? true),
    onResult: (receiver, ok, tenant, failure) => {
      if (!failure) return;
      logger?.warn(
        { tenant, receiver, notification: failure.id, attempts: failure.attempts, err: failure.error, retry_at: new Date(failure.retryAt).toISOString() },
        'alert notifications failed; will retry with backoff',
      );
    },
    onError: (tenant, receiver, e) => logger?.warn({ tenant, receiver, err: e.message }, 'alert notifications could not be recorded; will retry'),
  });
  const periodicDeliver = periodic(
    'alerts.deliver',
    opts.deliverIntervalMs,
    async (signal) => {
      if (!(await leased())) return;
      await deliverer.pass(signal);
    },
    { clock: opts.clock, ...(logger ? { logger } : {}), runAtStart: true },
  );
  const deliver: Service & { runNow(): Promise<void> } = {
    ...periodicDeliver,
    // Stopping aborts the requests in flight (their notifications stay due) and waits for them.
    stop: async () => {
      await periodicDeliver.stop();
      await deliverer.idle();
    },
    runNow: async () => {
      await periodicDeliver.runNow();
      await deliverer.idle();
    },
  };
  const prune = periodic(
    'alerts.prune',
    PRUNE_INTERVAL_MS,
    async (signal) => {
      if (!(await leased())) return;
      const n = await pruneDelivered(opts.store, opts.clock, opts.outboxRetentionMs ?? OUTBOX_RETENTION_MS, signal);
      if (n > 0) logger?.info({ pruned: n }, 'pruned delivered alert notifications past their retention');
    },
    { clock: opts.clock, ...(logger ? { logger } : {}) },
  );
  return [evaluate, deliver, prune];
}
