import type { DeadLetter, LogRecord } from '../core/types.js';
import type { Catalog } from '../ports/catalog.js';
import type { SchemaRegistry } from '../schema/registry.js';
import type { DeadLetterBreaker } from './breaker.js';
import { enrich, type EnrichOptions } from './enrich.js';

/**
 * What a worker does with a batch before the store commit: it sorts each record into
 *
 * - dead: delivered too often (poison), judged at ingest (a fault: schema violation,
 *   unknown type, too late), or failed permanently by an enricher;
 * - held: its tenant is paused by the dead-letter breaker (kept, replayed on resume);
 * - live: enriched, to be committed.
 *
 * and feeds the breaker with the pipeline's own failures.
 */
export interface TriageDeps {
  catalog: Catalog;
  /** Tenant settings (paused or not), cached and refreshed with the catalog's epoch. */
  registry: SchemaRegistry;
  enrich: EnrichOptions;
  breaker: DeadLetterBreaker | null;
  maxAttempts: number;
  /** The breaker tripped for a tenant and it is now paused. Must not throw. */
  onPause?: (tenant: string, reason: string) => void;
}

/** The dead letter of a record delivered `maxAttempts` times without completing. */
export function poisonLetter(r: LogRecord): DeadLetter {
  return { record: r, reason: 'poison', message: `delivered ${r.attempt} times without completing; the consumer crashed or timed out on it each time` };
}

export interface Sorted {
  live: LogRecord[];
  dead: DeadLetter[];
  held: DeadLetter[];
}

export class Triage {
  /** Per tenant, the resume (`resumedAt`) its breaker window started after. */
  private readonly windows = new Map<string, number | undefined>();

  constructor(private readonly deps: TriageDeps) {}

  /** `retrying` runs a stage again while it fails transiently (the consumer's backoff). */
  async sort(records: readonly LogRecord[], signal: AbortSignal, retrying: <T>(fn: () => Promise<T>) => Promise<T>): Promise<Sorted> {
    const dead: DeadLetter[] = [];
    const held: DeadLetter[] = [];
    const candidates: LogRecord[] = [];
    const failures = new Map<string, number>();
    for (const r of records) {
      if (r.attempt >= this.deps.maxAttempts) {
        dead.push(poisonLetter(r));
        failures.set(r.tenant, (failures.get(r.tenant) ?? 0) + 1);
      } else if (r.fault) {
        const { reason, message, path, schemaVersion } = r.fault;
        dead.push({ record: r, reason, message, path, ...(schemaVersion === undefined ? {} : { schemaVersion }) });
      } else candidates.push(r);
    }
    const paused = new Map<string, string>();
    for (const tenant of new Set(records.map((r) => r.tenant))) {
      let s = await retrying(() => this.deps.registry.settings(tenant));
      if (s.paused) {
        // Confirmed uncached: a resume replays the held events at once, and they must not be
        // held again by a worker that has not yet seen the resume.
        s = await retrying(() => this.deps.catalog.settings(tenant));
        if (s.paused) paused.set(tenant, s.paused.reason);
        else this.deps.registry.invalidate();
      }
      this.freshWindowAfterResume(tenant, s.resumedAt);
    }
    const toEnrich: LogRecord[] = [];
    for (const r of candidates) {
      const why = paused.get(r.tenant);
      if (why === undefined) toEnrich.push(r);
      else held.push({ record: r, reason: 'held', message: `held while the tenant is paused: ${why}` });
    }
    const enriched = toEnrich.length === 0 ? { records: [], failed: [] } : await retrying(() => enrich(toEnrich, this.deps.enrich, signal));
    for (const f of enriched.failed) {
      dead.push({ record: f.record, reason: 'enrich_failed', message: f.message });
      failures.set(f.record.tenant, (failures.get(f.record.tenant) ?? 0) + 1);
    }
    const ok = new Map<string, number>();
    for (const r of enriched.records) ok.set(r.tenant, (ok.get(r.tenant) ?? 0) + 1);
    // A paused tenant's failures (poison from before the pause) do not weigh on the window
    // that starts at its resume.
    for (const tenant of new Set([...ok.keys(), ...failures.keys()])) {
      if (!paused.has(tenant)) await this.outcome(tenant, ok.get(tenant) ?? 0, failures.get(tenant) ?? 0);
    }
    return { live: enriched.records, dead, held };
  }

  /**
   * A resume starts the breaker's window afresh, in every worker: what was recorded before it
   * (the failures that tripped the breaker, and those of batches in flight when it tripped)
   * would otherwise pause the tenant again on its first good events after the fix.
   */
  private freshWindowAfterResume(tenant: string, resumedAt: number | undefined): void {
    if (this.windows.get(tenant) === resumedAt) return;
    this.windows.set(tenant, resumedAt);
    this.deps.breaker?.reset(tenant);
  }

  /** Feeds the breaker; pauses the tenant when it trips. */
  async outcome(tenant: string, ok: number, failed: number): Promise<void> {
    const ratio = this.deps.breaker?.record(tenant, ok, failed) ?? null;
    if (ratio === null) return;
    const reason = `${Math.round(ratio * 100)}% of its last events were dead-lettered by the pipeline; fix the cause, then resume the tenant`;
    await this.deps.catalog.updateSettings(tenant, { paused: { since: Date.now(), reason } }, 'breaker');
    this.deps.registry.invalidate();
    this.deps.onPause?.(tenant, reason);
  }
}
