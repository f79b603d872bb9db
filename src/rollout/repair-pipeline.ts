import type { LogEntry, LogRecord } from '../core/types.js';
import type { BackfillSpec } from '../ports/backfill.js';
import type { DeadLetterRow } from '../ports/dead-letters.js';
import type { EventPosition, Store } from '../ports/store.js';
import { replay, type ReplayDeps } from '../ops/replay.js';
import { cohortPoint } from './cohort.js';
import { repaired, type Rollout } from './machine.js';

/**
 * Rollback with repair for a pipeline version: what the candidate produced while it was live
 * is re-derived with the active version, exactly once and with the same keys.
 *
 * 1. The raw events the candidate stored (`pipeline_version` = N) are found and their
 *    positions saved in the rollout (`repair.withdrawing`), before anything changes.
 * 2. They are withdrawn from the store (events, per-minute counts, the key ledger where the
 *    store keeps one), in one transaction.
 * 3. The records at those positions are read from the log (those past its retention are
 *    counted, not re-derived) and appended again as replays of one generation per rollout:
 *    the log deduplicates (key, generation), so a repair that crashed and runs again
 *    appends each once. The workers run the live version over them.
 * 4. The candidate's dead letters (its `dead_letter` steps and failures, whose message names
 *    the version) are replayed from their dead letters (ops/replay.ts).
 * 5. Every view of the tenant is rebuilt over the withdrawn events' times (a backfill), so
 *    that views end as if the candidate had never run.
 * 6. If the candidate's events are still found (a batch it began before the routes changed
 *    committed after step 1), the repair stays pending and sweeps again at the next pass.
 *
 * Not repaired: events a candidate's `drop` step dropped (discarded dead letters, which
 * replay leaves alone).
 */
export interface PipelineRepairDeps extends ReplayDeps {
  store: Pick<Store, 'producedBy' | 'withdraw' | 'views'>;
  startBackfill(spec: BackfillSpec): Promise<unknown>;
}

const APPEND_CHUNK = 1_000;
const PAGE = 10_000;

/** The replay generation of a rollout's re-derived events: above any dead letter's replay count, one per rollout. */
export function repairGeneration(rolloutId: string): number {
  return 2 ** 30 + cohortPoint('repair', '', rolloutId);
}

/**
 * Step 1 when not yet done: answers the rollout with `repair.withdrawing` set, to be saved
 * before `finishPipelineRepair` runs (null: nothing to record, the rollout is unchanged).
 */
export async function planPipelineRepair(deps: PipelineRepairDeps, r: Rollout, now: number): Promise<Rollout | null> {
  if (r.repair?.status !== 'pending' || !('pipeline_version' in r.change) || r.repair.withdrawing) return null;
  const positions = await deps.store.producedBy(r.tenant, r.change.pipeline_version);
  return { ...r, repair: { ...r.repair, withdrawing: positions.map((x) => [x.partition, x.offset, x.ts]) }, updated_at: now };
}

/** Steps 2–5 for a rollout whose positions are saved. Answers the rollout with its repair done. */
export async function finishPipelineRepair(deps: PipelineRepairDeps, r: Rollout, now: number): Promise<Rollout> {
  if (r.repair?.status !== 'pending' || !('pipeline_version' in r.change) || !r.repair.withdrawing) return r;
  const version = r.change.pipeline_version;
  const positions: EventPosition[] = r.repair.withdrawing.map(([partition, offset, ts]) => ({ partition, offset, ts }));
  await deps.store.withdraw(r.tenant, version, positions);

  const generation = repairGeneration(r.id);
  const byPartition = new Map<number, number[]>();
  for (const x of positions) {
    let list = byPartition.get(x.partition);
    if (!list) byPartition.set(x.partition, (list = []));
    list.push(x.offset);
  }
  let found = 0;
  for (const [partition, offsets] of byPartition) {
    for (let i = 0; i < offsets.length; i += APPEND_CHUNK) {
      const records = await deps.log.readAt(partition, offsets.slice(i, i + APPEND_CHUNK));
      found += records.length;
      if (records.length > 0) await deps.log.append(records.map((rec) => rederived(rec, generation)));
    }
  }

  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { entries: DeadLetterRow[]; cursor: string | null } = await deps.catalog.deadLetters.list(r.tenant, { from: r.repair.from ?? 0, to: now + 1, status: ['open'] }, PAGE, cursor);
    for (const e of page.entries) if (e.message.endsWith(`(pipeline version ${version})`)) ids.push(e.idempotencyKey);
    cursor = page.cursor;
  } while (cursor);
  let replayed = 0;
  for (let i = 0; i < ids.length; i += PAGE) {
    const report = await replay(deps, r.tenant, { filter: { ids: ids.slice(i, i + PAGE) }, limit: PAGE, rate: 0, dryRun: false });
    replayed += report.replayed + report.duplicates;
  }

  if (positions.length > 0) {
    const from = Math.floor(Math.min(...positions.map((x) => x.ts)) / 60_000) * 60_000;
    const to = Math.floor(Math.max(...positions.map((x) => x.ts)) / 60_000) * 60_000 + 60_000;
    for (const v of await deps.store.views.list(r.tenant)) await deps.startBackfill({ view: v.name, tenant: r.tenant, from, to, rate: 0 });
  }

  const { withdrawing: _, ...rest } = r.repair;
  // Counts so far, with those of an earlier sweep.
  const total = { stored: (rest.rederived_stored ?? 0) + found, dead: (rest.rederived_dead ?? 0) + replayed, past: rest.past_retention + positions.length - found };
  // A batch the candidate began before the routes changed may have committed after the positions were read: sweep again at the next pass.
  if ((await deps.store.producedBy(r.tenant, version)).length > 0) {
    return { ...r, repair: { ...rest, rederived_stored: total.stored, rederived_dead: total.dead, past_retention: total.past }, updated_at: now };
  }
  const reason =
    `re-derived with the active version: ${total.stored} events version ${version} stored` +
    (total.past > 0 ? ` (${total.past} more are past the log's retention and keep version ${version}'s output)` : '') +
    `, ${total.dead} it dead-lettered`;
  const { rederived_stored: _s, rederived_dead: _d, ...done } = rest;
  return repaired({ ...r, repair: done }, now, { repaired: total.stored + total.dead, past_retention: total.past }, reason);
}

/** A record as it was appended, to go through the live pipeline again as a replay of `generation`. */
function rederived(r: LogRecord, generation: number): LogEntry {
  return {
    tenant: r.tenant,
    type: r.type,
    key: r.key,
    idempotencyKey: r.idempotencyKey,
    ts: r.ts,
    receivedAt: r.receivedAt,
    partition: r.partition,
    origin: 'replay',
    properties: r.properties,
    context: r.context,
    ...(r.trace ? { trace: r.trace } : {}),
    replay: generation,
  };
}
