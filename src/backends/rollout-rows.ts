import { SluiceError } from '../core/errors.js';
import type { RolloutRecord } from '../ports/rollouts.js';

/** A row of the rollouts table, as both catalogs store it. */
export interface RolloutRow {
  id: string;
  tenant: string;
  kind: string;
  state: string;
  active: number | boolean;
  rev: number | string;
  created_at: number | string;
  updated_at: number | string;
  doc: string;
}

export function toRolloutRecord(r: RolloutRow): RolloutRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    kind: r.kind,
    state: r.state,
    active: r.active === true || r.active === 1,
    rev: Number(r.rev),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    doc: JSON.parse(r.doc) as unknown,
  };
}

/** 409 naming the active rollout (`id`, when it could be read) and what to do with it. */
export function activeRolloutExists(tenant: string, kind: string, id: string | undefined): SluiceError {
  const which = id ? `, ${id}` : '';
  const show = id ? `sluice rollout show ${id}` : 'GET /v1/rollouts';
  return new SluiceError(
    'SLUICE_ERR_CONFLICT',
    `tenant "${tenant}" already has an active rollout of a ${kind === 'schema' ? 'schema version' : kind.replace(/_/g, ' ')}${which}; promote, abort or wait for it (${show}) before starting another`,
  );
}
