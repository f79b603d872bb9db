import { OPERATOR_SCOPE } from '../core/operator.js';

/**
 * Cohorts: which entity keys of a tenant take the candidate. A key's point is a hash of
 * (rollout id, tenant, key) into [0, 10 000); the key is in the cohort at share `s` percent
 * when its point is below `s × 100`. So cohorts are sticky (the same key always lands on the
 * same point) and monotonic (a key in at 1% is in at 25%: the bound only grows). The rollout
 * id salts the hash so that successive rollouts do not always try the same keys first.
 *
 * The hash is FNV-1a 32 bits (as the partitioner's, src/core/hash.ts) with a different
 * input, so the cohort is not correlated with the partition.
 */
export const COHORT_POINTS = 10_000;

export function cohortPoint(rolloutId: string, tenant: string, key: string): number {
  let h = 0x811c9dc5;
  const s = rolloutId + '\u0000' + tenant + '\u0000' + key;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // FNV's low bits mix poorly for short inputs: fold the high half in before the modulo.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return (h >>> 0) % COHORT_POINTS;
}

/** True when `key` takes the candidate at `share` percent (0–100). */
export function inCohort(rolloutId: string, tenant: string, key: string, share: number): boolean {
  if (share <= 0) return false;
  if (share >= 100) return true;
  return cohortPoint(rolloutId, tenant, key) < Math.round(share * 100);
}

/**
 * Operator-wide rollouts route whole tenants: a tenant takes the candidate when it is named
 * by the cohort step, or when its point (the hash of rollout id and tenant name, as a key's
 * above with the operator's scope in place of a tenant) is below `share × 100`. Named tenants
 * stay in at every later share, and the hash cohort only grows: sticky and monotonic.
 */
export function tenantInCohort(rolloutId: string, tenant: string, share: number, named: readonly string[]): boolean {
  if (named.includes(tenant)) return true;
  return inCohort(rolloutId, OPERATOR_SCOPE, tenant, share);
}
