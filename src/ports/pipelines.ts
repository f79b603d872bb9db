/**
 * The transform pipeline's storage: one versioned document of steps per tenant (see
 * src/transform/document.ts for the document). Versions are numbered from 1 and never
 * change once written; version 0 means "no pipeline" (no steps). One version is *live* (the
 * one the workers run); a version may be stored without being made live (a candidate that a
 * rollout takes live, src/rollout/), so the newest version is not always the live one.
 * Writing a version is compare-and-set on the live version when asked, recorded in the audit
 * log in the same transaction, and moves the catalog's epoch (Catalog.epoch) so that every
 * worker process picks the new live version up within `events.schemaRefreshMs`.
 */
export interface PipelineStore {
  /** The tenant's live version; null when none was ever made live (run no steps, version 0). */
  current(tenant: string): Promise<PipelineVersion | null>;

  /** One version; null when the tenant has no such version. */
  get(tenant: string, version: number): Promise<PipelineVersion | null>;

  /** The tenant's versions, newest first, at most `limit` (1–1000). */
  list(tenant: string, limit: number): Promise<PipelineVersion[]>;

  /**
   * Writes `steps` as version newest+1 and, unless `activate` is false, makes it live. With
   * `expectedVersion` (0 for "none yet"), refused with SLUICE_ERR_CONFLICT (field
   * `expected_version`) when the live version differs.
   * `audit(before)` gives the audit entry's detail from the previous version's steps (null
   * when there was none); it is written in the same transaction.
   */
  put(tenant: string, input: PipelinePut): Promise<PipelineVersion>;

  /**
   * Makes a stored version the live one (a rollout's promote), audited as `pipeline.activate`
   * with `detail`, moving the epoch. SLUICE_ERR_NOT_FOUND when the tenant has no such version.
   * Making the live version live again changes nothing and answers it.
   */
  activate(tenant: string, version: number, actor: string, detail: unknown): Promise<PipelineVersion>;

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
  /** False: store the version without making it live (default true). */
  activate?: boolean;
  /** The audit detail from the live version's steps (null when none is live). */
  audit(before: unknown[] | null): unknown;
}

export interface PipelineVersion {
  tenant: string;
  version: number;
  steps: unknown[];
  createdAt: number;
  createdBy: string;
}
