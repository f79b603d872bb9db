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

/** The history note of a resolved group reopened by new open entries (no quotes: it is spliced into SQL). */
export const REOPEN_NOTE = 'new dead letters after it was resolved';
