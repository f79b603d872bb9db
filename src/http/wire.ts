import type { LogEntry } from '../core/types.js';
import type { BackfillState } from '../ports/backfill.js';
import type { DeadLetterRow } from '../ports/dead-letters.js';
import type { StoredEvent } from '../ports/store.js';

/**
 * Wire formats: how the API shows sluice's records. Times are RFC 3339 strings in UTC;
 * field names are snake_case; payloads stored as JSON text are parsed back (and shown as the
 * stored text if they do not parse).
 */

const iso = (ms: number): string => new Date(ms).toISOString();

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** An event as the API shows it, from the log (live tail) or the store (search, lineage). */
export function wireEvent(e: Pick<LogEntry, 'type' | 'key' | 'idempotencyKey' | 'ts' | 'receivedAt' | 'origin' | 'properties' | 'context'>) {
  return {
    type: e.type,
    key: e.key,
    idempotency_key: e.idempotencyKey,
    ts: iso(e.ts),
    received_at: iso(e.receivedAt),
    origin: e.origin,
    properties: parseJson(e.properties),
    context: parseJson(e.context),
  };
}

export function wireStored(e: StoredEvent) {
  return { ...wireEvent(e), stored_at: iso(e.storedAt), partition: e.partition, offset: e.offset, pipeline_version: e.pipelineVersion, operator_version: e.operatorVersion };
}

/** A dead letter as `GET /v1/dlq` and the lineage of `GET /v1/events/:key` show it. */
export function wireDeadLetter(r: DeadLetterRow) {
  let payload: unknown = r.payload;
  try {
    payload = JSON.parse(r.payload) as unknown;
  } catch {
    // Shown as stored.
  }
  return {
    idempotency_key: r.idempotencyKey,
    type: r.type,
    reason: r.reason,
    message: r.message,
    path: r.path,
    schema_version: r.schemaVersion,
    signature: r.signature,
    status: r.status,
    attempts: r.attempts,
    replays: r.replays,
    origin: r.origin,
    partition: r.partition,
    offset: r.offset,
    received_at: iso(r.receivedAt),
    first_seen: iso(r.firstSeen),
    last_seen: iso(r.lastSeen),
    payload,
  };
}

/** A backfill's progress: done of total, rate (events/s) and ETA (seconds, null when unknown). */
export function wireBackfill(s: BackfillState, now = Date.now()) {
  const seconds = Math.max(0.001, ((s.finishedAt ?? now) - s.startedAt) / 1000);
  const rate = s.done / seconds;
  return {
    id: s.id,
    view: s.view,
    status: s.status,
    from: new Date(s.from).toISOString(),
    to: new Date(s.to).toISOString(),
    done: s.done,
    total: s.total,
    percent: s.total === 0 ? 100 : Math.min(100, Math.round((s.done / s.total) * 1000) / 10),
    events_per_second: Math.round(rate),
    eta_seconds: s.status === 'running' && rate > 0 ? Math.round((s.total - s.done) / rate) : null,
    started_at: new Date(s.startedAt).toISOString(),
    finished_at: s.finishedAt === null ? null : new Date(s.finishedAt).toISOString(),
    error: s.error,
  };
}
