import { coerceError } from '../core/errors.js';
import type { Logger } from '../obs/logger.js';
import type { Catalog } from '../ports/catalog.js';
import type { Store } from '../ports/store.js';
import type { ViewSource, ViewState } from '../ports/views.js';
import type { ViewDef } from '../core/query.js';
import type { BackfillRunner } from './backfill.js';

/**
 * Declaring views and getting them built: a new or changed view is put in the store
 * (state building) and its backfill is started at once; builds that a stopped process
 * left unstarted are started at start-up; views declared in the configuration are
 * declared for every tenant.
 */
export class ViewBuilds {
  /** Tenants whose configured views this process declared already. */
  private readonly declared = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly runner: BackfillRunner,
    private readonly opts: { logger?: Logger } = {},
  ) {}

  /** Declares a view and starts its build when it is new or changed; `maxApi` as for Views.put (query.viewsPerTenant). */
  async put(tenant: string, def: ViewDef, source: ViewSource, maxApi?: number): Promise<ViewState> {
    const { view, changed } = await this.store.views.put(tenant, def, source, maxApi);
    // The same definition again: nothing to do, unless its build never started (a start that
    // failed) or failed; then putting it again is how to retry.
    if (!changed && view.build !== null && view.status !== 'failed') return view;
    this.opts.logger?.info({ tenant, view: def.name, version: view.version }, 'view declared; building it from raw events');
    const build = await this.runner.start({ view: def.name, tenant, from: null, to: null, rate: 0 });
    return { ...view, build: build.id };
  }

  /** Starts the build of every view left in state building without a running backfill. */
  async resume(tenants: readonly string[]): Promise<void> {
    const running = new Set((await this.store.backfills.list()).filter((b) => b.status === 'running').map((b) => b.id));
    for (const tenant of tenants) {
      for (const v of await this.store.views.list(tenant)) {
        if (v.status !== 'building' || (v.build !== null && running.has(v.build))) continue;
        try {
          await this.runner.start({ view: v.name, tenant, from: null, to: null, rate: 0 });
        } catch (e: unknown) {
          this.opts.logger?.warn({ tenant, view: v.name, err: coerceError(e).message }, 'could not start the build of a view');
        }
      }
    }
  }

  /**
   * Declares the configuration's views for every tenant not declared yet in this process
   * (unchanged ones are left alone); called at start and then periodically, so that a tenant
   * created while the server runs gets them too. Returns every tenant.
   */
  async declare(catalog: Catalog, defs: readonly ViewDef[]): Promise<string[]> {
    const tenants = (await catalog.listTenants()).map((t) => t.name);
    for (const tenant of tenants) {
      if (this.declared.has(tenant)) continue;
      for (const def of defs) await this.put(tenant, def, 'config');
      this.declared.add(tenant);
    }
    return tenants;
  }
}
