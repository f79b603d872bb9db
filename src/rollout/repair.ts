import type { DeadLetterRow } from '../ports/dead-letters.js';
import { resolveEmptied } from '../ops/dlq-groups.js';
import { replay, type ReplayDeps } from '../ops/replay.js';
import { repaired, type Rollout } from './machine.js';

const PAGE = 10_000;

/**
 * Rollback with repair for a schema version's enforcement: the events its enforcement
 * dead-lettered while it was live (schema_violation against that version, from `repair.from`
 * on) are re-derived with the active version: replayed from their dead letters through the
 * log (exactly once, same idempotency keys; see ops/replay.ts), and judged at ingest against
 * the schema that is enforced again. A dead letter keeps its event whole, so nothing of it is
 * past the log's retention.
 *
 * Call it once the live routes no longer send keys to the candidate (the controller's pass
 * after the rollback). A batch a worker began under the candidate's route may dead-letter
 * after that: while a pass replays anything, the repair stays pending (its count so far in
 * `rederived_dead`) and sweeps again at the next pass; the first pass that replays nothing
 * more answers the rollout with its repair done and the decision recorded.
 */
export async function repairRollout(deps: ReplayDeps, r: Rollout, now: number): Promise<Rollout> {
  if (r.repair?.status !== 'pending' || r.repair.from === null) return r;
  if (!('schema' in r.change)) return repaired(r, now, { repaired: 0, past_retention: 0 }, 'nothing to re-derive for this change kind yet');
  const { type, version } = r.change.schema;
  const ids: string[] = [];
  const signatures = new Set<string>();
  let cursor: string | null = null;
  do {
    const page: { entries: DeadLetterRow[]; cursor: string | null } = await deps.catalog.deadLetters.list(
      r.tenant,
      { type, reason: 'schema_violation', from: r.repair.from, to: now + 1, status: ['open'] },
      PAGE,
      cursor,
    );
    for (const e of page.entries) if (e.schemaVersion === version) {
      ids.push(e.idempotencyKey);
      signatures.add(e.signature);
    }
    cursor = page.cursor;
  } while (cursor);
  let done = 0;
  let failed = 0;
  for (let i = 0; i < ids.length; i += PAGE) {
    const report = await replay(deps, r.tenant, { filter: { ids: ids.slice(i, i + PAGE) }, limit: PAGE, rate: 0, dryRun: false });
    done += report.replayed + report.duplicates;
    failed += report.failed;
  }
  // The groups the repair emptied are resolved, as an operator's replay resolves them.
  await resolveEmptied(deps.catalog, r.tenant, signatures, `rollout ${r.id} repair`);
  const { rederived_dead: before = 0, ...rest } = r.repair;
  if (done > 0) return { ...r, repair: { ...rest, rederived_dead: before + done }, updated_at: now };
  const reason = `re-derived ${before} events dead-lettered by version ${version}'s enforcement with the active schema${failed > 0 ? `; ${failed} fail the active schema too and stay dead-lettered` : ''}`;
  return repaired({ ...r, repair: rest }, now, { repaired: before, past_retention: 0 }, reason);
}

/**
 * Rollback with repair for the operator-level enrichment document (`{"enrich": …}`): it
 * re-derives nothing. Its candidate dead-letters nothing of its own, and the events it
 * enriched keep their enrichment. (An operator pipeline version is repaired as a tenant's
 * pipeline version is, in every tenant: see repair-pipeline.ts.)
 */
export function finishEnrichRollout(r: Rollout, now: number): Rollout {
  if (r.repair?.status !== 'pending' || r.repair.from === null || !('enrich' in r.change)) return r;
  // The built-in enrichers dead-letter nothing (the plugins, the same on both sides, may): nothing to replay.
  return repaired(r, now, { repaired: 0, past_retention: 0 }, 'enrichment: every tenant is back on the live enrichment; events stored while the candidate was live keep its enrichment (not re-derived)');
}
