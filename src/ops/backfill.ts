import { backoffDelay, sleep } from '../core/backoff.js';
import { coerceError } from '../core/errors.js';
import { redactValues } from '../core/redact.js';
import type { Logger } from '../obs/logger.js';
import type { BackfillSpec, BackfillState } from '../ports/backfill.js';
import type { Store } from '../ports/store.js';

/**
 * Runs backfills in the background, one at a time, in chunks, next to live processing
 * (in `sluice up`, in the store thread). Throttled: after each chunk it waits at least as
 * long as the chunk took, so live commits keep at least half of the store's time, and
 * longer when a rate is set. Backfills still running when the process stopped are resumed
 * at start, from their cursor.
 */
export class BackfillRunner {
  private readonly pending: { id: string; rate: number }[] = [];
  private active: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly opts: { logger?: Logger; signal: AbortSignal; chunkEvents?: number },
  ) {}

  async start(spec: BackfillSpec): Promise<BackfillState> {
    const state = await this.store.backfills.start(spec);
    this.opts.logger?.info({ backfill: state.id, view: state.view, tenant: state.tenant, total: state.total }, 'backfill started');
    this.enqueue(state.id, spec.rate);
    return state;
  }

  /** Picks up the backfills a stopped process left running. */
  async resume(): Promise<void> {
    for (const s of await this.store.backfills.list()) {
      if (s.status === 'running' && !this.pending.some((p) => p.id === s.id)) {
        this.opts.logger?.info({ backfill: s.id, done: s.done, total: s.total }, 'backfill resumed');
        this.enqueue(s.id, s.rate);
      }
    }
  }

  list(tenant: string): Promise<BackfillState[]> {
    return this.store.backfills.list(tenant);
  }

  /** Resolves when every queued backfill has ended (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.active) await this.active;
  }

  private enqueue(id: string, rate: number): void {
    this.pending.push({ id, rate });
    this.active ??= this.drain().finally(() => {
      this.active = null;
    });
  }

  private async drain(): Promise<void> {
    for (let job = this.pending.shift(); job && !this.opts.signal.aborted; job = this.pending.shift()) await this.run(job.id, job.rate);
  }

  private async run(id: string, rate: number): Promise<void> {
    const chunk = Math.max(1_000, Math.min(this.opts.chunkEvents ?? 200_000, rate > 0 ? rate : Infinity));
    let failures = 0;
    while (!this.opts.signal.aborted) {
      const started = performance.now();
      let s: BackfillState;
      try {
        s = await this.store.backfills.step(id, chunk);
        failures = 0;
      } catch (e: unknown) {
        // The engine may quote a row's value: the view's error and the log get it without.
        const message = redactValues(coerceError(e).message);
        if (++failures >= 5) {
          this.opts.logger?.error({ backfill: id, err: message }, 'backfill failed');
          await this.store.backfills.fail(id, message).catch(() => undefined);
          return;
        }
        this.opts.logger?.warn({ backfill: id, err: message }, 'backfill step failed; retrying');
        await sleep(backoffDelay(failures, 500, 10_000), this.opts.signal).catch(() => undefined);
        continue;
      }
      if (s.status !== 'running') {
        this.opts.logger?.info({ backfill: id, events: s.done, seconds: ((s.finishedAt ?? Date.now()) - s.startedAt) / 1000 }, 'backfill done');
        return;
      }
      const took = performance.now() - started;
      const wait = Math.max(took, rate > 0 ? (chunk / rate) * 1000 - took : 0);
      await sleep(wait, this.opts.signal).catch(() => undefined);
    }
  }
}
