import type { GroupState, GroupStatus } from '../core/dlq-lifecycle.js';

/** What the SQLite and PostgreSQL dead-letter stores share for group lifecycles. */

export interface GroupRow {
  signature: string;
  status: string;
  owner: string | null;
  history: string;
}

export function toGroupState(r: GroupRow): GroupState {
  return { signature: r.signature, status: r.status as GroupStatus, owner: r.owner, history: JSON.parse(r.history) as GroupState['history'] };
}

export function untouchedGroup(signature: string): GroupState {
  return { signature, status: 'open', owner: null, history: [] };
}
