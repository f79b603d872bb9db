import { SluiceError } from './errors.js';

/**
 * The lifecycle of a group of dead letters (one error signature):
 *
 *   open ──► acknowledged ──► resolved | ignored
 *     └──────────────────────► resolved | ignored
 *   acknowledged | resolved | ignored ──► open   (reopened: the fix did not hold, new entries)
 *
 * `acknowledged`: someone owns it and works on it; `resolved`: fixed (a replay that took every
 * entry of the group resolves it); `ignored`: known and accepted. A group that was never
 * touched is `open`. Each change is kept in the group's history with who, when and a note.
 */
export type GroupStatus = 'open' | 'acknowledged' | 'resolved' | 'ignored';
export const GROUP_STATUSES: readonly GroupStatus[] = ['open', 'acknowledged', 'resolved', 'ignored'];

const NEXT: Record<GroupStatus, readonly GroupStatus[]> = {
  open: ['acknowledged', 'resolved', 'ignored'],
  acknowledged: ['open', 'resolved', 'ignored'],
  resolved: ['open'],
  ignored: ['open'],
};

export interface GroupChange {
  at: number;
  actor: string;
  status: GroupStatus;
  owner: string | null;
  note: string | null;
}

export interface GroupState {
  signature: string;
  status: GroupStatus;
  /** Set by an operator; null: the default owner (see ops/dlq-groups.ts). */
  owner: string | null;
  /** Oldest first. */
  history: GroupChange[];
}

/** Changes a group's history keeps (the newest; the audit log keeps every one). */
export const MAX_GROUP_HISTORY = 100;

/** The state after `change`; throws SLUICE_ERR_CONFLICT (field `status`) for a move the lifecycle does not have. */
export function applyGroupChange(
  before: GroupState,
  change: { status?: GroupStatus; owner?: string | null; note?: string | null },
  actor: string,
  at: number,
): GroupState {
  const status = change.status ?? before.status;
  if (status !== before.status && !NEXT[before.status].includes(status)) {
    throw new SluiceError(
      'SLUICE_ERR_CONFLICT',
      `the group is ${before.status}; from there it can become ${NEXT[before.status].join(' or ')}, not ${status}`,
      { field: 'status', details: { status: before.status } },
    );
  }
  const owner = change.owner === undefined ? before.owner : change.owner;
  // The newest MAX_GROUP_HISTORY changes: the group is rewritten whole on each change, and an
  // unbounded history made every change slower (1.95 MB after 926 notes) on the HTTP thread.
  const history = [...before.history, { at, actor, status, owner, note: change.note ?? null }].slice(-MAX_GROUP_HISTORY);
  return { ...before, status, owner, history };
}
