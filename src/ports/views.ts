import { SluiceError } from '../core/errors.js';
import type { ViewDef } from '../core/query.js';

/**
 * Views: declarative, read-optimized aggregates of a tenant's events (an event filter,
 * dimensions, mergeable measures and a grain), maintained by the store in the same
 * transaction as the raw rows, so a view never disagrees with the raw events.
 *
 * A new or changed view starts `building`: the store maintains it from then on, and a
 * backfill (ports/backfill.ts, view = the view's name) fills in the past; when the backfill
 * swaps its rows in, the view is `ready` and queries may be answered from it. Until then
 * queries read raw events. A build that fails leaves the view `failed` (still maintained
 * live); starting another backfill of it finishes the job.
 */
export type ViewStatus = 'building' | 'ready' | 'failed';

/** Who declared the view: the HTTP API (`PUT /v1/views/:name`) or the configuration. */
export type ViewSource = 'api' | 'config';

export interface ViewState {
  tenant: string;
  name: string;
  /** 1 for the first definition, +1 for every change. */
  version: number;
  def: ViewDef;
  status: ViewStatus;
  /** The backfill that builds (or last rebuilt) it. */
  build: string | null;
  source: ViewSource;
  createdAt: number;
  updatedAt: number;
  error: string | null;
}

/**
 * 409 for a tenant that has `declared` views from the API, the limit `max`
 * (query.viewsPerTenant), and asks for one more.
 */
export function tooManyViews(declared: number, max: number): SluiceError {
  return new SluiceError(
    'SLUICE_ERR_CONFLICT',
    `the tenant has ${declared} views, the limit (query.viewsPerTenant = ${max}): delete one it no longer needs (DELETE /v1/views/NAME), or ask the operator to raise the limit`,
    { field: 'query.viewsPerTenant' },
  );
}

export interface Views {
  /**
   * Creates or replaces a view of a tenant. The same definition again changes nothing
   * (`changed: false`). A changed one starts over in state `building`; the caller starts its
   * backfill. With `maxApi`, a new view from the API is refused (tooManyViews) when the tenant
   * already has that many from the API, counted in the same write as the insert, so that
   * concurrent declarations, from several processes too, cannot pass the limit.
   */
  put(tenant: string, def: ViewDef, source: ViewSource, maxApi?: number): Promise<{ view: ViewState; changed: boolean }>;
  /** Drops a view and its rows; false when there was none. */
  remove(tenant: string, name: string): Promise<boolean>;
  /** A tenant's views, by name. */
  list(tenant: string): Promise<ViewState[]>;
}
