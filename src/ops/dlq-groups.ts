import type { GroupState } from '../core/dlq-lifecycle.js';
import type { Catalog } from '../ports/catalog.js';
import type { DeadLetterGroup } from '../ports/dead-letters.js';

/**
 * The dead-letter workbench's view of groups: each group's lifecycle state, and its owner
 * when no one set one: the team owning the schema of the group's event type for a producer's
 * fault (it sent what the schema refuses, or what a `dead_letter` step rejects), the operator
 * for the pipeline's own faults (poison, enrich_failed, invalid_row, transform_failed, held).
 */
export const OPERATOR = 'operator';
const PIPELINE_FAULTS = new Set(['poison', 'enrich_failed', 'invalid_row', 'transform_failed', 'held']);

export interface GroupView {
  group: DeadLetterGroup;
  state: GroupState;
  owner: string | null;
}

export async function withStates(catalog: Catalog, tenant: string, groups: readonly DeadLetterGroup[]): Promise<GroupView[]> {
  const states = await catalog.deadLetters.groupStates(tenant, groups.map((g) => g.signature));
  const owners = new Map<string, string | null>();
  const ownerOfType = async (type: string) => {
    if (!owners.has(type)) owners.set(type, (await catalog.schemas.latest(tenant, type))?.owner ?? null);
    return owners.get(type)!;
  };
  const out: GroupView[] = [];
  for (const g of groups) {
    const state = states.get(g.signature) ?? { signature: g.signature, status: 'open' as const, owner: null, history: [] };
    const owner = state.owner ?? (PIPELINE_FAULTS.has(g.reason) ? OPERATOR : g.types[0] === undefined ? null : await ownerOfType(g.types[0]));
    out.push({ group: g, state, owner });
  }
  return out;
}

/**
 * After a replay (by an operator, or a rollout's repair) or a discard: each group of
 * `signatures` with no entry left open or held becomes `resolved` (unless it is already
 * resolved or ignored), by `actor`. Returns the signatures resolved.
 */
export async function resolveEmptied(catalog: Catalog, tenant: string, signatures: Iterable<string>, actor: string): Promise<string[]> {
  const resolved: string[] = [];
  const sigs = [...new Set(signatures)];
  const states = await catalog.deadLetters.groupStates(tenant, sigs);
  for (const signature of sigs) {
    const status = states.get(signature)?.status ?? 'open';
    if (status === 'resolved' || status === 'ignored') continue;
    const left = await catalog.deadLetters.list(tenant, { signature, status: ['open', 'held'] }, 1);
    if (left.entries.length > 0) continue;
    await catalog.deadLetters.updateGroup(tenant, signature, { status: 'resolved', note: 'no entry left open or held (replayed or discarded)' }, actor);
    resolved.push(signature);
  }
  return resolved;
}
