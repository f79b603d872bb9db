import { SluiceError } from '../core/errors.js';
import type { PublishInput, SchemaVersion } from '../ports/schemas.js';

/** What both schema stores (SQLite, PostgreSQL) share: the row, the version check and the audit entry. */

export interface SchemaRow {
  tenant: string;
  type: string;
  version: number;
  owner: string;
  body: string;
  created_at: number;
  created_by: string;
  forced_reason: string | null;
}

export function toVersion(r: SchemaRow): SchemaVersion {
  return {
    tenant: r.tenant,
    type: r.type,
    version: Number(r.version),
    owner: r.owner,
    schema: JSON.parse(r.body) as Record<string, unknown>,
    createdAt: Number(r.created_at),
    createdBy: r.created_by,
    forcedReason: r.forced_reason,
  };
}

/**
 * The row of the next version, read in the transaction that inserts it; refused when someone
 * published meanwhile (the newest version is not the one the publisher saw).
 */
export function nextVersion(tenant: string, type: string, current: number, input: PublishInput, now: number): SchemaRow {
  if (current !== input.expectedVersion) {
    throw new SluiceError(
      'SLUICE_ERR_CONFLICT',
      `schema "${type}" is at version ${current}, not ${input.expectedVersion}: someone published meanwhile; check again and retry`,
      { field: 'expected_version' },
    );
  }
  return {
    tenant,
    type,
    version: current + 1,
    owner: input.owner,
    body: JSON.stringify(input.schema),
    created_at: now,
    created_by: input.actor,
    forced_reason: input.forcedReason ?? null,
  };
}

/** The audit entry of a publish. */
export function publishAudit(row: SchemaRow, input: PublishInput): { tenant: string; actor: string; action: string; subject: string; detail: string } {
  return {
    tenant: row.tenant,
    actor: input.actor,
    action: 'schema.publish',
    subject: row.type,
    detail: JSON.stringify({ version: row.version, owner: row.owner, forced_reason: row.forced_reason, diff: input.diff }),
  };
}
