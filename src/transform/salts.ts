import type { PipelineStore } from '../ports/pipelines.js';

/**
 * Tenants' redaction salts (see PipelineStore.salt), read from the catalog once per tenant and
 * kept for the life of the process: a salt is made once and never changed, so no epoch drops
 * it. A failed read is not kept: the next call reads again.
 */
export class SaltCache {
  private readonly salts = new Map<string, Promise<string>>();

  constructor(private readonly pipelines: Pick<PipelineStore, 'salt'>) {}

  /** The tenant's salt (hex). Rejects (transient) when the catalog cannot be read. Bound: may be passed as a function. */
  readonly of = (tenant: string): Promise<string> => {
    let s = this.salts.get(tenant);
    if (!s) {
      s = this.pipelines.salt(tenant);
      s.catch(() => this.salts.delete(tenant));
      this.salts.set(tenant, s);
    }
    return s;
  };
}
