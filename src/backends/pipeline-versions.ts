import { randomBytes } from 'node:crypto';
import { SluiceError } from '../core/errors.js';
import type { PipelineVersion } from '../ports/pipelines.js';

/** What the SQLite and PostgreSQL pipeline stores share: the row, the version check, the salt. */

export interface PipelineRow {
  tenant: string;
  version: number;
  steps: string;
  created_at: number;
  created_by: string;
}

export function toPipelineVersion(r: PipelineRow): PipelineVersion {
  return { tenant: r.tenant, version: Number(r.version), steps: JSON.parse(r.steps) as unknown[], createdAt: Number(r.created_at), createdBy: r.created_by };
}

/** Throws SLUICE_ERR_CONFLICT when `expected` is given and is not `current`. */
export function checkExpectedVersion(tenant: string, current: number, expected: number | undefined): void {
  if (expected === undefined || expected === current) return;
  throw new SluiceError(
    'SLUICE_ERR_CONFLICT',
    expected > current
      ? `the pipeline of ${tenant} is at version ${current}, not ${expected}: no version ${expected} exists yet; read it (GET /v1/pipeline, or sluice pipeline show) and send expected_version ${current}`
      : `the pipeline of ${tenant} is at version ${current}, not ${expected}: someone changed it meanwhile; read it again (GET /v1/pipeline, or sluice pipeline show), reapply your change and send expected_version ${current}`,
    { field: 'expected_version', details: { current_version: current } },
  );
}

export function newSalt(): string {
  return randomBytes(32).toString('hex');
}

export function noSuchVersion(version: number): SluiceError {
  return new SluiceError('SLUICE_ERR_NOT_FOUND', `the pipeline has no version ${version}; GET /v1/pipeline/versions lists them`, { field: 'version' });
}
