/**
 * The schema registry's storage: versioned JSON Schemas per tenant and event type, each with
 * an owner. Publishing is compare-and-set on the version, recorded in the audit log in the
 * same transaction, and bumps the catalog's epoch (Catalog.epoch) so that every process
 * drops its compiled validators at once.
 */
export interface SchemaStore {
  /** The newest version of a type's schema; null when the type has none. */
  latest(tenant: string, type: string): Promise<SchemaVersion | null>;

  /** Every version of a type's schema, oldest first. */
  versions(tenant: string, type: string): Promise<SchemaVersion[]>;

  /** The newest version of every type of a tenant, by type. */
  list(tenant: string): Promise<SchemaVersion[]>;

  /**
   * Publishes `schema` as version latest+1. Refused with SLUICE_ERR_CONFLICT when the newest
   * version is not `expectedVersion` (someone published meanwhile); the audit entry (who,
   * when, the diff) is written in the same transaction.
   */
  publish(tenant: string, type: string, input: PublishInput): Promise<SchemaVersion>;
}

export interface SchemaVersion {
  tenant: string;
  type: string;
  version: number;
  owner: string;
  /** The JSON Schema (2020-12) of the event's `properties`. */
  schema: Record<string, unknown>;
  createdAt: number;
  /** Key id of who published it. */
  createdBy: string;
  /** Why a breaking version was forced, when it was. */
  forcedReason: string | null;
}

export interface PublishInput {
  schema: Record<string, unknown>;
  owner: string;
  actor: string;
  expectedVersion: number;
  forcedReason?: string | null;
  /** Stored with the audit entry. */
  diff: unknown;
}
