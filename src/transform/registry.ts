import { EpochWatch } from '../core/epoch.js';
import { OPERATOR_SCOPE } from '../core/operator.js';
import type { Catalog } from '../ports/catalog.js';
import { compileTransform, failingTransform, type Transform } from './run.js';
import { SaltCache } from './salts.js';

/**
 * A stored version that no longer compiles (it was checked when written; an upgrade of the
 * expression library could refuse it now) fails every event with `transform_failed`, which
 * trips the breaker, rather than retrying the batch for ever.
 */
export function compileStored(steps: unknown[], version: number): Transform {
  try {
    return compileTransform({ steps }, { stored: true });
  } catch (e: unknown) {
    const message = `version ${version} does not compile: ${(e as Error).message}; write a new version (PUT /v1/pipeline)`;
    return failingTransform(message);
  }
}

/**
 * The tenants' pipelines as the workers see them: per tenant, its current version compiled
 * once and its redaction salt, cached. Like the schema registry, the cache is dropped as a
 * whole when the catalog's epoch moves (a pipeline written in any process), checked at most
 * every `refreshMs` (`events.schemaRefreshMs`): a new version takes effect within that time
 * in every worker process.
 */
export interface TenantPipeline {
  /** 0 when the tenant has no pipeline. */
  version: number;
  /** null when the tenant has no pipeline (or no steps). */
  transform: Transform | null;
  salt: string;
}

export class PipelineRegistry {
  private readonly watch: EpochWatch;
  private readonly tenants = new Map<string, Promise<TenantPipeline>>();
  /** Redaction salts by tenant: made once and never changed, so kept across epochs. */
  private readonly salts: SaltCache;

  constructor(
    private readonly catalog: Catalog,
    private readonly opts: { refreshMs: number; now?: () => number },
  ) {
    this.watch = new EpochWatch(() => catalog.epoch(), opts, () => this.tenants.clear());
    this.salts = new SaltCache(catalog.pipelines);
  }

  invalidate(): void {
    this.tenants.clear();
    this.watch.expire();
  }

  /** Drops one tenant's cached pipeline: read again at its next use. */
  forget(tenant: string): void {
    this.tenants.delete(tenant);
  }

  private refresh(): Promise<void> {
    return this.watch.check();
  }

  /** The tenant's current pipeline. Throws (transient) when the catalog cannot be read. */
  async forTenant(tenant: string): Promise<TenantPipeline> {
    await this.refresh();
    let p = this.tenants.get(tenant);
    if (!p) {
      p = (async () => {
        const current = await this.catalog.pipelines.current(tenant);
        if (!current) return { version: 0, transform: null, salt: '' };
        const transform = current.steps.length === 0 ? null : compileStored(current.steps, current.version);
        return { version: current.version, transform, salt: transform ? await this.catalog.pipelines.salt(tenant) : '' };
      })();
      p.catch(() => this.tenants.delete(tenant));
      this.tenants.set(tenant, p);
    }
    return p;
  }

  /** The operator pipeline's live version (kept under OPERATOR_SCOPE), run for every tenant before its own. */
  operator(): Promise<TenantPipeline> {
    return this.forTenant(OPERATOR_SCOPE);
  }

  /** A tenant's redaction salt (see PipelineStore.salt), cached. */
  saltOf(tenant: string): Promise<string> {
    return this.salts.of(tenant);
  }
}
