import type { LogEntry, LogRecord } from '../core/types.js';
import { resolveEmptied } from '../ops/dlq-groups.js';
import type { BackfillSpec } from '../ports/backfill.js';
import type { DeadLetterRow } from '../ports/dead-letters.js';
import type { EventPosition, Store, VersionOf } from '../ports/store.js';
import { replay, type ReplayDeps } from '../ops/replay.js';
import { cohortPoint } from './cohort.js';
import { repaired, type Rollout, type Withdrawing } from './machine.js';

/**
 * Rollback with repair for a pipeline version, a tenant's or the operator's: what the
 * candidate produced while it was live is re-derived with the active version, exactly once
 * and with the same keys.
 *
 * 1. The raw events the candidate stored are found (a tenant's version: the tenant's events
 *    with `pipeline_version` = N; an operator version: every tenant's events with
 *    `operator_version` = N, tenant by tenant) and their positions saved in the rollout
 *    (`repair.withdrawing`), before anything changes.
 * 2. The records at those positions are read from the log, a chunk at a time. Only those
 *    the log still holds are withdrawn from the store (events, per-minute counts, the key
 *    ledger where the store keeps one; one transaction per tenant and chunk) and appended
 *    again as replays of one generation per rollout: the log deduplicates (key, generation),
 *    so a repair that crashed and runs again appends each once. The workers run the live
 *    version over them.
 * 3. An event past the log's retention cannot be re-derived: it keeps the candidate's output
 *    (withdrawing it would lose it) and is counted in `past_retention`.
 * 4. The candidate's dead letters (its `dead_letter` steps and failures, whose message names
 *    the version: "(pipeline version N)" or "(operator pipeline version N)") are replayed
 *    from their dead letters (ops/replay.ts), in every tenant it ran for.
 * 5. Every view of each tenant concerned is rebuilt over its withdrawn events' times (a
 *    backfill), so that views end as if the candidate had never run.
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

/** Whether a rollout's repair is this module's: a pipeline version, the tenant's or the operator's. */
export function isPipelineRepair(r: Rollout): boolean {
  return 'pipeline_version' in r.change || 'operator_pipeline_version' in r.change;
}

/** The version a repair takes back, the pipeline it belongs to, and the tenants it ran for. */
interface Target {
  version: number;
  of: VersionOf;
  /** How its dead letters and the decision name it ("pipeline version N" / "operator pipeline version N"). */
  name: string;
  tenants(): Promise<string[]>;
}

function targetOf(deps: PipelineRepairDeps, r: Rollout): Target | null {
  if ('pipeline_version' in r.change) {
    const version = r.change.pipeline_version;
    return { version, of: 'pipeline', name: `pipeline version ${version}`, tenants: async () => [r.tenant] };
  }
  if ('operator_pipeline_version' in r.change) {
    const version = r.change.operator_pipeline_version;
    return { version, of: 'operator', name: `operator pipeline version ${version}`, tenants: async () => (await deps.catalog.listTenants()).map((t) => t.name) };
  }
  return null;
}

/**
 * Step 1 when not yet done: answers the rollout with `repair.withdrawing` set, to be saved
 * before `finishPipelineRepair` runs (null: nothing to record, the rollout is unchanged).
 * An operator version's positions name their tenant.
 */
export async function planPipelineRepair(deps: PipelineRepairDeps, r: Rollout, now: number): Promise<Rollout | null> {
  const target = targetOf(deps, r);
  if (r.repair?.status !== 'pending' || !target || r.repair.withdrawing) return null;
  const withdrawing: Withdrawing[] = [];
  for (const tenant of await target.tenants()) {
    for (const x of await deps.store.producedBy(tenant, target.version, target.of)) {
      withdrawing.push(target.of === 'operator' ? [x.partition, x.offset, x.ts, tenant] : [x.partition, x.offset, x.ts]);
    }
  }
  return { ...r, repair: { ...r.repair, withdrawing }, updated_at: now };
}

/** Steps 2–5 for a rollout whose positions are saved. Answers the rollout with its repair done. */
export async function finishPipelineRepair(deps: PipelineRepairDeps, r: Rollout, now: number): Promise<Rollout> {
  const target = targetOf(deps, r);
  if (r.repair?.status !== 'pending' || !target || !r.repair.withdrawing) return r;
  const { version, of } = target;
  const byTenant = new Map<string, EventPosition[]>();
  const byPartition = new Map<number, number[]>();
  const tsOf = new Map<string, number>();
  for (const [partition, offset, ts, tenant = r.tenant] of r.repair.withdrawing) {
    let list = byTenant.get(tenant);
    if (!list) byTenant.set(tenant, (list = []));
    list.push({ partition, offset, ts });
    let offsets = byPartition.get(partition);
    if (!offsets) byPartition.set(partition, (offsets = []));
    offsets.push(offset);
    tsOf.set(`${partition}:${offset}`, ts);
  }

  const generation = repairGeneration(r.id);
  let found = 0;
  for (const [partition, offsets] of byPartition) {
    for (let i = 0; i < offsets.length; i += APPEND_CHUNK) {
      const records = await deps.log.readAt(partition, offsets.slice(i, i + APPEND_CHUNK));
      if (records.length === 0) continue;
      // Only what the log still holds is taken out and derived again.
      const held = new Map<string, EventPosition[]>();
      for (const rec of records) {
        let list = held.get(rec.tenant);
        if (!list) held.set(rec.tenant, (list = []));
        list.push({ partition, offset: rec.offset, ts: tsOf.get(`${partition}:${rec.offset}`) ?? rec.ts });
      }
      for (const [tenant, positions] of held) await deps.store.withdraw(tenant, version, positions, of);
      await deps.log.append(records.map((rec) => rederived(rec, generation)));
      found += records.length;
    }
  }

  const tenants = await target.tenants();
  let replayed = 0;
  for (const tenant of tenants) replayed += await replayDeadLetters(deps, tenant, `(${target.name})`, r.repair.from ?? 0, now);

  for (const [tenant, positions] of byTenant) {
    if (positions.length === 0) continue;
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of positions) {
      lo = Math.min(lo, x.ts);
      hi = Math.max(hi, x.ts);
    }
    const from = Math.floor(lo / 60_000) * 60_000;
    const to = Math.floor(hi / 60_000) * 60_000 + 60_000;
    for (const v of await deps.store.views.list(tenant)) await deps.startBackfill({ view: v.name, tenant, from, to, rate: 0 });
  }

  const { withdrawing: planned, ...rest } = r.repair;
  // Counts so far, with those of an earlier sweep.
  const total = { stored: (rest.rederived_stored ?? 0) + found, dead: (rest.rederived_dead ?? 0) + replayed, past: 0 };
  // What still holds the candidate's output: the events past retention (kept), and any a batch
  // the candidate began before the routes changed committed after step 1 (sweep again at the next pass).
  const saved = new Set(planned.map(([partition, offset, , tenant = r.tenant]) => `${tenant}:${partition}:${offset}`));
  for (const tenant of tenants) {
    for (const x of await deps.store.producedBy(tenant, version, of)) {
      if (!saved.has(`${tenant}:${x.partition}:${x.offset}`)) {
        return { ...r, repair: { ...rest, rederived_stored: total.stored, rederived_dead: total.dead }, updated_at: now };
      }
      total.past++;
    }
  }
  // A tenant's version keeps the words its decisions always had ("events version N stored").
  const [active, stored] = of === 'operator' ? ['operator version', target.name] : ['version', `version ${version}`];
  const reason =
    `re-derived with the active ${active}: ${total.stored} events ${stored} stored` +
    (total.past > 0 ? ` (${total.past} more are past the log's retention and keep ${stored}'s output)` : '') +
    `, ${total.dead} it dead-lettered`;
  const { rederived_stored: _s, rederived_dead: _d, ...done } = rest;
  return repaired({ ...r, repair: done }, now, { repaired: total.stored + total.dead, past_retention: total.past }, reason);
}

/** Replays a tenant's open dead letters since `from` whose message ends with `suffix` (the candidate's); answers how many were replayed. */
async function replayDeadLetters(deps: ReplayDeps, tenant: string, suffix: string, from: number, now: number): Promise<number> {
  const ids: string[] = [];
  const signatures = new Set<string>();
  let cursor: string | null = null;
  do {
    const page: { entries: DeadLetterRow[]; cursor: string | null } = await deps.catalog.deadLetters.list(tenant, { from, to: now + 1, status: ['open'] }, PAGE, cursor);
    for (const e of page.entries) if (e.message.endsWith(suffix)) {
      ids.push(e.idempotencyKey);
      signatures.add(e.signature);
    }
    cursor = page.cursor;
  } while (cursor);
  let replayed = 0;
  for (let i = 0; i < ids.length; i += PAGE) {
    const report = await replay(deps, tenant, { filter: { ids: ids.slice(i, i + PAGE) }, limit: PAGE, rate: 0, dryRun: false });
    replayed += report.replayed + report.duplicates;
  }
  // The groups the repair emptied are resolved, as an operator's replay resolves them.
  await resolveEmptied(deps.catalog, tenant, signatures, 'rollout repair');
  return replayed;
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
