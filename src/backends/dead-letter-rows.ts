import { SluiceError } from '../core/errors.js';
import { foldPath, messageTemplate } from '../core/signature.js';
import type { DeadLetter } from '../core/types.js';
import type { DeadLetterFilter, DeadLetterGroup, DeadLetterRow, DeadLetterStatus } from '../ports/dead-letters.js';

/**
 * What both dead-letter stores (SQLite, PostgreSQL) share: the table's columns, the filter as
 * a WHERE clause, the page cursor, and how a group is put together. The engines differ only
 * in placeholders and in how they upsert.
 */

export const ACTIVE: readonly DeadLetterStatus[] = ['open', 'held'];

/** The event as the producer sent it, rebuilt from the record (its ts is the corrected event time). */
export function payloadOf(d: DeadLetter): string {
  const r = d.record;
  return JSON.stringify({
    type: r.type,
    key: r.key,
    ts: new Date(r.ts).toISOString(),
    idempotency_key: r.idempotencyKey,
    properties: JSON.parse(r.properties) as unknown,
    context: JSON.parse(r.context) as unknown,
  });
}

export function toRow(r: Record<string, unknown>): DeadLetterRow {
  return {
    tenant: r.tenant as string,
    type: r.type as string,
    idempotencyKey: r.idem as string,
    reason: r.reason as string,
    message: r.message as string,
    path: r.path as string,
    schemaVersion: r.schema_version === null || r.schema_version === undefined ? null : Number(r.schema_version),
    signature: r.signature as string,
    status: r.status as DeadLetterStatus,
    attempts: Number(r.attempts),
    replays: Number(r.replays),
    partition: Number(r.p),
    offset: Number(r.o),
    receivedAt: Number(r.received_at),
    firstSeen: Number(r.first_seen),
    lastSeen: Number(r.last_seen),
    origin: r.origin as string,
    payload: r.payload as string,
  };
}

/**
 * A WHERE clause for a filter; values are always bound, never spliced. `bind` takes a value
 * and returns its placeholder (`?` in SQLite, `$n` in PostgreSQL).
 */
export function whereOf(tenant: string, f: DeadLetterFilter, bind: (v: unknown) => string): string {
  const list = (vs: readonly unknown[]) => vs.map(bind).join(', ');
  const parts = [`tenant = ${bind(tenant)}`, `status IN (${list(f.status ?? ACTIVE)})`];
  if (f.ids && f.ids.length > 0) parts.push(`idem IN (${list(f.ids)})`);
  if (f.type !== undefined) parts.push(`type = ${bind(f.type)}`);
  if (f.reason !== undefined) parts.push(`reason = ${bind(f.reason)}`);
  if (f.signature !== undefined) parts.push(`signature = ${bind(f.signature)}`);
  if (f.from !== undefined) parts.push(`last_seen >= ${bind(f.from)}`);
  if (f.to !== undefined) parts.push(`last_seen < ${bind(f.to)}`);
  return parts.join(' AND ');
}

/** Entries after the cursor, in the list's order (newest first). */
export function afterCursor(cursor: string, bind: (v: unknown) => string): string {
  const [lastSeen, idem] = decodeCursor(cursor);
  return `(last_seen < ${bind(lastSeen)} OR (last_seen = ${bind(lastSeen)} AND idem < ${bind(idem)}))`;
}

export const LIST_ORDER = 'ORDER BY last_seen DESC, idem DESC';

/** A page of at most `n` from `rows` (fetched n + 1), with the cursor of the next page. */
export function pageOf(rows: DeadLetterRow[], n: number): { entries: DeadLetterRow[]; cursor: string | null } {
  const more = rows.length > n;
  if (more) rows.pop();
  return { entries: rows, cursor: more ? encodeCursor(rows[rows.length - 1]!) : null };
}

export function clampLimit(limit: number, max: number): number {
  return Math.max(1, Math.min(limit, max));
}

function encodeCursor(row: DeadLetterRow): string {
  return Buffer.from(JSON.stringify([row.lastSeen, row.idempotencyKey])).toString('base64url');
}

function decodeCursor(cursor: string): [number, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // Falls through to the error.
  }
  throw new SluiceError('SLUICE_ERR_INVALID_QUERY', 'the cursor is not one this server gave out; start again without it', { field: 'cursor' });
}

/** A group as the port returns it, from its aggregate row and its newest samples. */
export function groupOf(
  g: { signature: string; reason: string; path: string; n: number; first_seen: number; last_seen: number; types: string[] },
  samples: DeadLetterRow[],
): DeadLetterGroup {
  return {
    signature: g.signature,
    reason: g.reason,
    path: foldPath(g.path),
    template: samples[0] ? messageTemplate(samples[0].message) : '',
    count: Number(g.n),
    firstSeen: Number(g.first_seen),
    lastSeen: Number(g.last_seen),
    types: [...g.types].sort(),
    samples,
  };
}
