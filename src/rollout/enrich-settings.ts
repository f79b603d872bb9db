import { EpochWatch } from '../core/epoch.js';
import { OPERATOR_SCOPE } from '../core/operator.js';
import type { Catalog } from '../ports/catalog.js';
import type { EnrichChange } from './document.js';
import type { Rollout } from './machine.js';

/** The built-in enrichers' switches (config `enrich.anonymizeIp`, `enrich.userAgent`). */
export interface EnrichFlags {
  anonymizeIp: boolean;
  userAgent: boolean;
}

/**
 * The operator-level enrichment document in the catalog: the change of the newest promoted
 * enrichment rollout (`{"change": {"enrich": {…}}}`, kept under the operator's scope); null
 * when none was ever promoted. Its rollout history is its version history.
 */
export async function liveEnrichDocument(catalog: Catalog): Promise<EnrichChange | null> {
  for (const rec of await catalog.rollouts.list(OPERATOR_SCOPE, 1000)) {
    if (rec.kind !== 'enrich' || rec.state !== 'promoted') continue;
    const change = (rec.doc as Rollout).change;
    if ('enrich' in change) return change.enrich;
  }
  return null;
}

/**
 * The workers' enrichment switches: the configuration file's, with the catalog's
 * operator-level document over them when there is one. Cached, and read again when the
 * catalog's epoch moves (a rollout that finishes moves it), checked at most every `refreshMs`:
 * a promoted document is in effect in every worker process within that time.
 *
 * The anonymisation at ingest (before the log, src/ingest/accept.ts) follows the
 * configuration file only: an address the configuration anonymises at the door stays so.
 */
export class EnrichSettings {
  private readonly watch: EpochWatch;
  private cached: Promise<EnrichFlags> | null = null;

  constructor(
    private readonly catalog: Catalog,
    private readonly base: EnrichFlags,
    opts: { refreshMs: number; now?: () => number },
  ) {
    this.watch = new EpochWatch(() => catalog.epoch(), opts, () => (this.cached = null));
  }

  /** The switches in effect. Throws (transient) when the catalog cannot be read at first. */
  flags = async (): Promise<EnrichFlags> => {
    await this.watch.check();
    if (!this.cached) {
      const p = (async () => ({ ...this.base, ...((await liveEnrichDocument(this.catalog)) ?? {}) }))();
      p.catch(() => (this.cached = null));
      this.cached = p;
    }
    return this.cached;
  };
}
