import { SluiceError } from '../core/errors.js';

/**
 * Saved queries: a tenant's named queries (the body of `POST /v1/query`, kept as JSON), as
 * the console's Explore page lists, opens and shares them.
 *
 * Every call is scoped by tenant: an id of another tenant is "not found", never an error
 * that tells it exists. The query is stored as given; it is parsed again whenever it runs,
 * so a query saved under older rules fails then with a message that names the field.
 */
/** Saved queries a tenant may keep: each is listed whole by GET /v1/saved-queries (up to 16 KiB each). */
export const MAX_SAVED_QUERIES = 200;

/** 409 for a tenant at `max` saved queries. */
export function tooManySavedQueries(max: number): SluiceError {
  return new SluiceError('SLUICE_ERR_CONFLICT', `the tenant has ${max} saved queries, the limit: delete one it no longer needs (DELETE /v1/saved-queries/ID)`, { field: 'saved_queries' });
}

export interface SavedQueryStore {
  /** A tenant's saved queries, by name then id. Empty: none saved. */
  list(tenant: string): Promise<SavedQuery[]>;

  /** One saved query; null when the tenant has none with this id. */
  get(tenant: string, id: string): Promise<SavedQuery | null>;

  /**
   * Saves a new query (a fresh id) and records it in the audit log as `saved_query.create` by
   * `actor`. Throws SLUICE_ERR_CONFLICT when the tenant already has `max` (counted in the
   * same transaction as the insert, so concurrent saves cannot pass it).
   */
  create(tenant: string, input: SavedQueryInput, actor: string, max: number): Promise<SavedQuery>;

  /** Replaces a saved query's name and body (audit: `saved_query.update`); null when there is none with this id. */
  update(tenant: string, id: string, input: SavedQueryInput, actor: string): Promise<SavedQuery | null>;

  /** Deletes one (audit: `saved_query.delete`); false when there was none with this id. */
  remove(tenant: string, id: string, actor: string): Promise<boolean>;
}

export interface SavedQueryInput {
  /** 1-200 characters, shown in lists. */
  name: string;
  /** The body of `POST /v1/query`. */
  query: Record<string, unknown>;
}

export interface SavedQuery extends SavedQueryInput {
  /** 16 hex digits, made by the catalog. */
  id: string;
  tenant: string;
  /** Epoch ms. */
  createdAt: number;
  updatedAt: number;
  /** Key id (or "cli") of whoever saved it first. */
  createdBy: string;
}
