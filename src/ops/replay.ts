import { coerceError } from '../core/errors.js';
import type { EventLimits, TimePolicy } from '../core/event.js';
import { sleep } from '../core/backoff.js';
import type { Fault, LogEntry } from '../core/types.js';
import type { Catalog } from '../ports/catalog.js';
import type { DeadLetterFilter, DeadLetterRow } from '../ports/dead-letters.js';
import type { Log } from '../ports/log.js';
import { judge } from '../ingest/accept.js';
import type { SchemaRegistry } from '../schema/registry.js';
import { compileTransform, failingTransform, type Transform } from '../transform/run.js';

/**
 * Replay: dead letters re-validated against the current schemas and re-injected through the
 * live path (the log, then the workers), tagged `origin: replay`, with their original
 * idempotency keys and receive times.
 *
 * Exactly once: each replay of an entry is a new generation; the log deduplicates on (key,
 * generation), and the entry is marked replayed only after its append is durable. A replay
 * that crashes between the two is finished by the next one (the append comes back a
 * duplicate, the mark is written). Replaying entries already replayed matches nothing.
 * An entry that fails validation again stays open with its new reason; one a patch cannot mend
 * keeps its own (the failure is in the report).
 */

export interface ReplayDeps {
  log: Log;
  catalog: Catalog;
  schemas: SchemaRegistry;
  limits: EventLimits;
  time: TimePolicy;
}

export interface ReplayRequest {
  filter: DeadLetterFilter;
  /** Entries to look at in this call (a page). */
  limit: number;
  cursor?: string | null;
  /** Events per second at most; 0 = as fast as the log takes them. */
  rate: number;
  dryRun: boolean;
  signal?: AbortSignal;
  /**
   * Steps applied to each entry before it is re-validated against today's schema (a fix
   * for a group of dead letters), with the tenant's redaction salt. The event that passes
   * is re-injected as patched; the workers then run the tenant's live pipeline over it as
   * over any event.
   */
  patch?: { transform: Transform; salt: string } | null;
  /** Told the error signature of each entry this call re-injected (to resolve emptied groups). */
  onReplayed?: (signature: string) => void;
  /**
   * Dry runs: the tenant's live pipeline, which the workers will run over each re-injected
   * event, so that the prediction counts what it would drop or dead-letter too.
   */
  live?: { transform: Transform; salt: string; version: number } | null;
}

export interface ReplayReport {
  matched: number;
  replayed: number;
  /** Already re-injected by an earlier, interrupted replay of the same generation. */
  duplicates: number;
  failed: number;
  /** Changed by someone else meanwhile (replayed or discarded); left alone. */
  skipped: number;
  /** The first 20 entries that failed again: the fault, with the schema version it was checked against (if any). */
  failures: { idempotency_key: string; reason: string; message: string; path: string; schema_version?: number }[];
  /** Pass it back to continue; null when every matching entry was seen. */
  cursor: string | null;
  dry_run: boolean;
  /** Dry runs: entries that would be re-injected. */
  would_pass?: number;
  /** Dry runs: entries that would fail again, grouped by reason and field, largest first. */
  would_fail?: WouldFail[];
}

export interface WouldFail {
  reason: string;
  /** JSON pointer inside the event's properties (`/amount`); "" for the event as a whole. */
  field: string;
  /** JSON pointer inside the event (`/properties/amount`). */
  path: string;
  count: number;
  /** Up to three entries of the group. */
  samples: { idempotency_key: string; message: string }[];
}

const CHUNK = 1_000;

export async function replay(deps: ReplayDeps, tenant: string, req: ReplayRequest): Promise<ReplayReport> {
  // Only open and held entries replay: a replayed entry going again would be a second copy.
  const status = (req.filter.status ?? ['open', 'held']).filter((s) => s === 'open' || s === 'held');
  const page =
    status.length === 0 ? { entries: [], cursor: null } : await deps.catalog.deadLetters.list(tenant, { ...req.filter, status }, req.limit, req.cursor);
  const report: ReplayReport = { matched: page.entries.length, replayed: 0, duplicates: 0, failed: 0, skipped: 0, failures: [], cursor: page.cursor, dry_run: req.dryRun };
  if (req.dryRun) {
    report.would_pass = 0;
    report.would_fail = [];
  }
  for (let i = 0; i < page.entries.length; i += CHUNK) {
    if (req.signal?.aborted) {
      // Not seen: the next call starts again at this page.
      report.cursor = req.cursor ?? null;
      break;
    }
    const started = Date.now();
    const chunk = page.entries.slice(i, i + CHUNK);
    const ready: { row: DeadLetterRow; entry: LogEntry }[] = [];
    const refailed: { idempotencyKey: string; fault: Fault }[] = [];
    for (const row of chunk) {
      // Steps run on the thread that answers every tenant (a patch, a dry run's live pipeline):
      // each entry's are bounded (one iteration budget per event, transform/iteration-cost.ts),
      // and other requests are served between entries, not only after the whole chunk (five
      // entries through a costly patch held every tenant's requests for 47 s).
      if (req.patch || (req.dryRun && req.live)) await new Promise<void>((r) => setImmediate(r));
      let outcome = await rejudge(deps, tenant, row, req.patch ?? null);
      if ('entry' in outcome && req.dryRun && req.live) outcome = throughLive(outcome.entry, req.live);
      if ('entry' in outcome) {
        ready.push({ row, entry: outcome.entry });
        continue;
      }
      report.failed++;
      if (req.dryRun) countFailure(report, row.idempotencyKey, outcome.fault);
      if (report.failures.length < 20) {
        const { schemaVersion, ...fault } = outcome.fault;
        report.failures.push({ idempotency_key: row.idempotencyKey, ...fault, ...(schemaVersion === undefined ? {} : { schema_version: schemaVersion }) });
      }
      // A patch that fails on an entry says nothing new about the entry: it keeps its reason.
      if (!outcome.patchFailed) refailed.push({ idempotencyKey: row.idempotencyKey, fault: outcome.fault });
    }
    if (!req.dryRun) await deps.catalog.deadLetters.refail(tenant, refailed);
    if (req.dryRun) {
      report.replayed += ready.length;
      report.would_pass = (report.would_pass ?? 0) + ready.length;
      continue;
    }
    // Durable in the log first; the mark second (a crash between is repaired by the next replay).
    const outcomes = await deps.log.append(ready.map((r) => r.entry));
    const marked = await deps.catalog.deadLetters.markReplayed(
      tenant,
      ready.map(({ row, entry }) => ({ idempotencyKey: row.idempotencyKey, generation: entry.replay! })),
    );
    for (let j = 0; j < ready.length; j++) {
      if (!marked[j]) report.skipped++;
      else if (outcomes[j]!.status === 'duplicate') report.duplicates++;
      else report.replayed++;
      if (marked[j]) req.onReplayed?.(ready[j]!.row.signature);
    }
    if (req.rate > 0) {
      const due = (chunk.length / req.rate) * 1000 - (Date.now() - started);
      if (due > 0) await sleep(due, req.signal).catch(() => undefined);
    }
  }
  return report;
}

/** The entry as a new log entry of the next replay generation, or why it fails again. */
async function rejudge(
  deps: ReplayDeps,
  tenant: string,
  row: DeadLetterRow,
  patch: ReplayRequest['patch'],
): Promise<{ entry: LogEntry } | { fault: Fault; patchFailed?: boolean }> {
  let payload: unknown;
  try {
    payload = JSON.parse(row.payload) as unknown;
  } catch (e: unknown) {
    return { fault: { reason: 'schema_violation', message: `the stored payload is not JSON: ${coerceError(e).message}`, path: '' } };
  }
  if (patch) {
    const p = payload as { type: string; key: string; ts: string; properties?: Record<string, unknown>; context?: Record<string, unknown> };
    const out = patch.transform.run({ type: p.type, key: p.key, ts: Date.parse(p.ts), properties: p.properties ?? {}, context: p.context ?? {} }, patch.salt);
    if (out.outcome === 'dropped') {
      return { fault: { reason: row.reason, message: `the patch drops it (step ${out.step}); discard it instead (POST /v1/dlq/discard)`, path: '' }, patchFailed: true };
    }
    if (out.outcome === 'dead_lettered') return { fault: { reason: out.reason!, message: `patch: ${out.message}`, path: '' }, patchFailed: true };
    payload = { ...p, properties: out.output!.properties, context: out.output!.context };
  }
  const judged = await judge(tenant, [payload], deps.log.capabilities.partitions, { limits: deps.limits, time: deps.time, schemas: deps.schemas, receivedAt: row.receivedAt }, 'replay');
  const entry = judged.entries[0];
  if (entry && !entry.fault) {
    entry.replay = row.replays + 1;
    return { entry };
  }
  if (entry?.fault) return { fault: entry.fault };
  const r = judged.rejected[0]!;
  return { fault: { reason: r.code === 'unknown_type' ? 'unknown_type' : 'schema_violation', message: r.message, path: r.path } };
}

/** What the workers' transform stage would do with a re-injected entry (see worker/transform.ts). */
function throughLive(entry: LogEntry, live: NonNullable<ReplayRequest['live']>): { entry: LogEntry } | { fault: Fault; patchFailed?: boolean } {
  const event = { type: entry.type, key: entry.key, ts: entry.ts, properties: JSON.parse(entry.properties) as Record<string, unknown>, context: JSON.parse(entry.context) as Record<string, unknown> };
  const out = live.transform.run(event, live.salt, true);
  if (out.outcome === 'stored') return { entry };
  const at = `pipeline version ${live.version}`;
  if (out.outcome === 'dropped') return { fault: { reason: 'dropped', message: `dropped by step ${out.step} (drop) of ${at}`, path: '' }, patchFailed: true };
  return { fault: { reason: out.reason!, message: `${out.message} (${at})`, path: '' }, patchFailed: true };
}

function countFailure(report: ReplayReport, idempotencyKey: string, fault: Fault): void {
  const groups = (report.would_fail ??= []);
  let g = groups.find((x) => x.reason === fault.reason && x.path === fault.path);
  if (!g) {
    g = { reason: fault.reason, field: fault.path.startsWith('/properties') ? fault.path.slice('/properties'.length) : fault.path, path: fault.path, count: 0, samples: [] };
    groups.push(g);
  }
  g.count++;
  if (g.samples.length < 3) g.samples.push({ idempotency_key: idempotencyKey, message: fault.message });
}

/** Most entries a dry run looks at: it predicts over the whole selection, not a page. */
export const DRY_RUN_MAX = 1_000_000;

/**
 * A dry run over the whole selection (every page), so that its prediction (`would_pass`,
 * `would_fail`) covers every entry a replay of the same filter would take, up to DRY_RUN_MAX.
 * Nothing is written.
 */
export async function dryRunAll(deps: ReplayDeps, tenant: string, req: Omit<ReplayRequest, 'dryRun' | 'cursor' | 'limit'>): Promise<ReplayReport> {
  // The workers will also run the tenant's live pipeline over what is re-injected.
  if (req.live === undefined) {
    const current = await deps.catalog.pipelines.current(tenant);
    if (current && current.steps.length > 0) {
      let transform: Transform | null = null;
      try {
        transform = compileTransform({ steps: current.steps }, { stored: true });
      } catch {
        // A stored version that no longer compiles fails every event in the workers anyway.
      }
      const salt = await deps.catalog.pipelines.salt(tenant);
      req = { ...req, live: transform ? { transform, salt, version: current.version } : { transform: failingTransform(`version ${current.version} does not compile`), salt, version: current.version } };
    }
  }
  const total: ReplayReport = { matched: 0, replayed: 0, duplicates: 0, failed: 0, skipped: 0, failures: [], cursor: null, dry_run: true, would_pass: 0, would_fail: [] };
  let cursor: string | null = null;
  do {
    const r = await replay(deps, tenant, { ...req, dryRun: true, limit: 10_000, cursor });
    total.matched += r.matched;
    total.replayed += r.replayed;
    total.failed += r.failed;
    total.would_pass! += r.would_pass ?? 0;
    for (const f of r.failures) if (total.failures.length < 20) total.failures.push(f);
    for (const g of r.would_fail ?? []) {
      const t = total.would_fail!.find((x) => x.reason === g.reason && x.path === g.path);
      if (!t) total.would_fail!.push(g);
      else {
        t.count += g.count;
        t.samples.push(...g.samples.slice(0, 3 - t.samples.length));
      }
    }
    cursor = r.cursor;
  } while (cursor && total.matched < DRY_RUN_MAX && !req.signal?.aborted);
  total.would_fail!.sort((a, b) => b.count - a.count);
  return total;
}
