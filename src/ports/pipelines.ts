/**
 * The transform pipeline's storage: one versioned document of steps per tenant (see
 * src/transform/document.ts for the document). Versions are numbered from 1 and never
 * change once written; version 0 means "no pipeline" (no steps). Writing a version is
 * compare-and-set on the current version when asked, recorded in the audit log in the same
 * transaction, and moves the catalog's epoch (Catalog.epoch) so that every worker process
 * picks the new version up within `events.schemaRefreshMs`.
 */
export interface PipelineStore {
  /** The tenant's newest version; null when it never wrote one (run no steps, version 0). */
  current(tenant: string): Promise<PipelineVersion | null>;

  /** One version; null when the tenant has no such version. */
  get(tenant: string, version: number): Promise<PipelineVersion | null>;

  /** The tenant's versions, newest first, at most `limit` (1–1000). */
  list(tenant: string, limit: number): Promise<PipelineVersion[]>;

  /**
   * Writes `steps` as version current+1. With `expectedVersion` (0 for "none yet"), refused
   * with SLUICE_ERR_CONFLICT (field `expected_version`) when the current version differs.
   * `audit(before)` gives the audit entry's detail from the previous version's steps (null
   * when there was none); it is written in the same transaction.
   */
  put(tenant: string, input: PipelinePut): Promise<PipelineVersion>;

  /**
   * The tenant's redaction salt (hex): made at random on first use and kept, so that a
   * hashed field keeps its value across versions, replays and processes.
   */
  salt(tenant: string): Promise<string>;
}

export interface PipelinePut {
  steps: unknown[];
  /** Key id of who wrote it. */
  actor: string;
  expectedVersion?: number;
  audit(before: unknown[] | null): unknown;
}

export interface PipelineVersion {
  tenant: string;
  version: number;
  steps: unknown[];
  createdAt: number;
  createdBy: string;
}
