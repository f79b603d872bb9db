import { coerceError } from '../core/errors.js';
import type { EventLimits, TimePolicy } from '../core/event.js';
import { sleep } from '../core/backoff.js';
import type { Fault, LogEntry } from '../core/types.js';
import type { Catalog } from '../ports/catalog.js';
import type { DeadLetterFilter, DeadLetterRow } from '../ports/dead-letters.js';
import type { Log } from '../ports/log.js';
import { judge } from '../ingest/accept.js';
import type { SchemaRegistry } from '../schema/registry.js';

/**
 * Replay: dead letters re-validated against the current schemas and re-injected through the
 * live path (the log, then the workers), tagged `origin: replay`, with their original
 * idempotency keys and receive times.
 *
 * Exactly once: each replay of an entry is a new generation; the log deduplicates on (key,
 * generation), and the entry is marked replayed only after its append is durable. A replay
 * that crashes between the two is finished by the next one (the append comes back a
 * duplicate, the mark is written). Replaying entries already replayed matches nothing.
 * An entry that fails again stays open with its new reason.
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
}

export interface ReplayReport {
  matched: number;
  replayed: number;
  /** Already re-injected by an earlier, interrupted replay of the same generation. */
  duplicates: number;
  failed: number;
  /** Changed by someone else meanwhile (replayed or discarded); left alone. */
  skipped: number;
  failures: { idempotency_key: string; reason: string; message: string; path: string }[];
  /** Pass it back to continue; null when every matching entry was seen. */
  cursor: string | null;
  dry_run: boolean;
}

const CHUNK = 1_000;

export async function replay(deps: ReplayDeps, tenant: string, req: ReplayRequest): Promise<ReplayReport> {
  // Only open and held entries replay: a replayed entry going again would be a second copy.
  const status = (req.filter.status ?? ['open', 'held']).filter((s) => s === 'open' || s === 'held');
  const page =
    status.length === 0 ? { entries: [], cursor: null } : await deps.catalog.deadLetters.list(tenant, { ...req.filter, status }, req.limit, req.cursor);
  const report: ReplayReport = { matched: page.entries.length, replayed: 0, duplicates: 0, failed: 0, skipped: 0, failures: [], cursor: page.cursor, dry_run: req.dryRun };
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
      const outcome = await rejudge(deps, tenant, row);
      if ('entry' in outcome) {
        ready.push({ row, entry: outcome.entry });
        continue;
      }
      report.failed++;
      if (report.failures.length < 20) report.failures.push({ idempotency_key: row.idempotencyKey, ...outcome.fault });
      refailed.push({ idempotencyKey: row.idempotencyKey, fault: outcome.fault });
    }
    if (!req.dryRun) await deps.catalog.deadLetters.refail(tenant, refailed);
    if (req.dryRun) {
      report.replayed += ready.length;
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
): Promise<{ entry: LogEntry } | { fault: Fault }> {
  let payload: unknown;
  try {
    payload = JSON.parse(row.payload) as unknown;
  } catch (e: unknown) {
    return { fault: { reason: 'schema_violation', message: `the stored payload is not JSON: ${coerceError(e).message}`, path: '' } };
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
