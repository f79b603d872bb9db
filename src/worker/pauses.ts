import { systemClock, type Clock } from '../core/clock.js';
import type { Catalog } from '../ports/catalog.js';
import type { Logger } from '../core/service.js';
import type { SchemaRegistry } from '../schema/registry.js';
import type { DeadLetterBreaker } from './breaker.js';

/**
 * The dead-letter breaker's effects on tenants, for one worker process: `outcome` feeds the
 * breaker with a batch's results and pauses the tenant in the catalog when it trips;
 * `pausedWhy` is the `hold` stage's question (is this tenant paused, and why).
 *
 * A resume (`settings.resumedAt`) starts the breaker's window afresh, in every worker: what
 * was recorded before it (the failures that tripped the breaker, and those of batches in
 * flight when it tripped) would otherwise pause the tenant again on its first good events
 * after the fix. It also drops the cached pipelines (`onResume`): a fix pushed just before
 * the resume must be the version the held events meet.
 */
export class TenantPauses {
  /** Per tenant, the resume its breaker window started after. */
  private readonly windows = new Map<string, number | undefined>();
  private readonly clock: Clock;

  constructor(
    private readonly deps: {
      catalog: Catalog;
      /** Tenant settings, cached and refreshed with the catalog's epoch. */
      registry: SchemaRegistry;
      /** Null when the breaker is off: nothing ever pauses. */
      breaker: DeadLetterBreaker | null;
      /**
       * Called when this worker first sees a tenant's resume: drops what it cached of the
       * tenant that the fix may have changed (its pipeline), so the held events replayed now
       * meet the fixed version, not the one that tripped the breaker (a cache is otherwise
       * refreshed only every events.schemaRefreshMs).
       */
      onResume?: (tenant: string) => void;
      clock?: Clock;
      logger?: Logger;
    },
  ) {
    this.clock = deps.clock ?? systemClock;
  }

  /** The reason a tenant is paused, or null when it is not. */
  readonly pausedWhy = async (tenant: string): Promise<string | null> => {
    let s = await this.deps.registry.settings(tenant);
    if (s.paused) {
      // Confirmed uncached: a resume replays the held events at once, and they must not be
      // held again by a worker that has not yet seen the resume.
      s = await this.deps.catalog.settings(tenant);
      if (!s.paused) this.deps.registry.invalidate();
    }
    if (this.windows.get(tenant) !== s.resumedAt) {
      this.windows.set(tenant, s.resumedAt);
      this.deps.breaker?.reset(tenant);
      this.deps.onResume?.(tenant);
    }
    return s.paused?.reason ?? null;
  };

  /**
   * Feeds the breaker with `ok` records that passed and `failed` pipeline failures; pauses the
   * tenant when it trips, and answers the pause's reason then (else null).
   */
  readonly outcome = async (tenant: string, ok: number, failed: number): Promise<string | null> => {
    const ratio = this.deps.breaker?.record(tenant, ok, failed) ?? null;
    if (ratio === null) return null;
    const reason = `${Math.round(ratio * 100)}% of its last events were dead-lettered by the pipeline; fix the cause, then resume the tenant`;
    await this.deps.catalog.updateSettings(tenant, { paused: { since: this.clock.now(), reason } }, 'breaker');
    this.deps.registry.invalidate();
    this.deps.logger?.error({ tenant, reason }, 'dead-letter breaker open: tenant paused; its events are held until `sluice tenant resume`');
    return reason;
  };
}
