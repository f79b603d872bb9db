import type { Catalog } from '../ports/catalog.js';
import { compileTransform, type Transform } from './run.js';

/**
 * A stored version that no longer compiles (it was checked when written; an upgrade of the
 * expression library could refuse it now) fails every event with `transform_failed`, which
 * trips the breaker, rather than retrying the batch for ever.
 */
function compileStored(steps: unknown[], version: number): Transform {
  try {
    return compileTransform({ steps });
  } catch (e: unknown) {
    const message = `version ${version} does not compile: ${(e as Error).message}; write a new version (PUT /v1/pipeline)`;
    return { steps: [], run: () => ({ outcome: 'dead_lettered', output: null, reason: 'transform_failed', message, changed: [] }) };
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
  private epoch = -1;
  private checkedAt = -Infinity;
  private checking: Promise<void> | null = null;
  private readonly tenants = new Map<string, Promise<TenantPipeline>>();

  constructor(
    private readonly catalog: Catalog,
    private readonly opts: { refreshMs: number; now?: () => number },
  ) {}

  invalidate(): void {
    this.tenants.clear();
    this.checkedAt = -Infinity;
  }

  private async refresh(): Promise<void> {
    const now = (this.opts.now ?? Date.now)();
    if (now - this.checkedAt < this.opts.refreshMs) return;
    this.checking ??= (async () => {
      try {
        const epoch = await this.catalog.epoch();
        if (epoch !== this.epoch) {
          this.invalidate();
          this.epoch = epoch;
        }
        this.checkedAt = now;
      } catch (e: unknown) {
        // The catalog is away (a PostgreSQL restart): the versions read at the last epoch are
        // still the best answer, so the workers go on with them and ask again after
        // refreshMs. Before a first epoch there is nothing to go on with (the batch retries).
        if (this.epoch === -1) throw e;
        this.checkedAt = now;
      } finally {
        this.checking = null;
      }
    })();
    await this.checking;
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
}
