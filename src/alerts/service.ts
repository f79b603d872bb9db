import { periodic, type Service } from '../app/service.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../obs/logger.js';
import type { AlertStore } from '../ports/alerts.js';
import { deliverDue } from './deliver.js';
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
}

/**
 * The alerts' two services: `alerts.evaluate` runs an evaluation pass every
 * `evaluateIntervalMs` (rules, states, group timers, queuing notifications), and
 * `alerts.deliver` delivers the outbox every `deliverIntervalMs` (so a notification queued by
 * a pass, or left by a process that died, goes out within a second, and retries follow their
 * backoff). One process per deployment runs them (see docs/alerts.md).
 */
export function alertServices(opts: AlertServiceOptions): (Service & { runNow(): Promise<void> })[] {
  const logger = opts.logger?.child({ component: 'alerts' });
  const evaluate = periodic(
    'alerts.evaluate',
    opts.evaluateIntervalMs,
    async () => {
      const r = await evaluatePass({
        store: opts.store,
        source: opts.source,
        clock: opts.clock,
        externalUrl: opts.externalUrl,
        onRuleError: (tenant, rule, e) => logger?.warn({ tenant, rule, err: e.message }, 'alert rule failed to evaluate'),
      });
      for (const t of r.transitions) logger?.info({ tenant: t.tenant, rule: t.rule, severity: t.severity, from: t.from, to: t.to, at: new Date(t.at).toISOString() }, 'alert state changed');
    },
    { clock: opts.clock, ...(logger ? { logger } : {}), runAtStart: true },
  );
  const deliver = periodic(
    'alerts.deliver',
    opts.deliverIntervalMs,
    async (signal) => {
      const r = await deliverDue({ store: opts.store, clock: opts.clock, signal });
      if (r.failed > 0) logger?.warn({ delivered: r.delivered, failed: r.failed }, 'alert notifications failed; will retry with backoff');
    },
    { clock: opts.clock, ...(logger ? { logger } : {}), runAtStart: true },
  );
  return [evaluate, deliver];
}
