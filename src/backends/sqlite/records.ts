import type { Fault, LogRecord, Origin } from '../../core/types.js';

/** How log records sit in SQLite rows: their key, their columns, their traceparent. */

/** Offsets per partition: a record's key is `p * OFFSET_SPAN + o` (see the migrations). */
export const OFFSET_SPAN = 2 ** 40;

export function recordId(partition: number, offset: number): number {
  return partition * OFFSET_SPAN + offset;
}

/**
 * The columns of a record as the range read returns them (`.raw()`: an array per row, in this
 * order): p, o, tenant, type, key, idem, ts, received_at, origin, properties, context, trace,
 * fault, gen. Arrays instead of one object per row, and each record built with one literal:
 * 1.6 µs a record against 3.8-4.5 µs for objects spread into the record (400,000 rows of
 * 5,000, better-sqlite3 12, 2 cores).
 */
export type RecordRow = [
  p: number, o: number, tenant: string, type: string, key: string, idem: string, ts: number, receivedAt: number,
  origin: string, properties: string, context: string, trace: Buffer | null, fault: string | null, gen: number | null,
];

export const RANGE_SQL = `SELECT id >> 40 AS p, id & ${OFFSET_SPAN - 1} AS o, tenant, type, key, idem, ts, received_at, origin, properties, context, trace, fault, gen
  FROM records WHERE id BETWEEN ? AND ? ORDER BY id`;

/**
 * A W3C traceparent (`00-<trace id>-<span id>-<flags>`, 55 characters) as 25 bytes: it is
 * written into every record, and the smaller row is a measurably faster append.
 */
export function packTraceparent(traceparent: string | undefined): Buffer | null {
  if (!traceparent || traceparent.length !== 55 || !traceparent.startsWith('00-')) return null;
  const b = Buffer.from(traceparent.slice(3, 35) + traceparent.slice(36, 52) + traceparent.slice(53, 55), 'hex');
  return b.length === 25 ? b : null;
}

// Consecutive records mostly come from the same request: decode each distinct value once.
let lastPacked: Buffer | null = null;
let lastUnpacked = '';

function unpackTraceparent(b: Buffer): string {
  if (lastPacked && b.equals(lastPacked)) return lastUnpacked;
  const hex = b.toString('hex');
  lastPacked = b;
  lastUnpacked = `00-${hex.slice(0, 32)}-${hex.slice(32, 48)}-${hex.slice(48, 50)}`;
  return lastUnpacked;
}

export function toRecord(r: RecordRow, attempt: number, suspect: boolean): LogRecord {
  const rec: LogRecord = {
    partition: r[0],
    offset: r[1],
    tenant: r[2],
    type: r[3],
    key: r[4],
    idempotencyKey: r[5],
    ts: r[6],
    receivedAt: r[7],
    origin: r[8] as Origin,
    properties: r[9],
    context: r[10],
    attempt,
  };
  if (r[11] !== null) rec.trace = unpackTraceparent(r[11]);
  if (r[12] !== null) rec.fault = JSON.parse(r[12]) as Fault;
  if (r[13] !== null) rec.replay = r[13];
  if (suspect) rec.suspect = suspect;
  return rec;
}
