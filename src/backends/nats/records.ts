import { createHash } from 'node:crypto';
import { replayDedupeKey } from '../../core/hash.js';
import type { Fault, LogEntry, Origin } from '../../core/types.js';

/** How log records sit in JetStream messages: their dedupe id and their bytes. */

/** The dedupe id of an entry: what makes two appends the same event (tenant, key, replay generation). */
export function msgIdOf(e: LogEntry): string {
  const key = e.replay === undefined ? e.idempotencyKey : replayDedupeKey(e.idempotencyKey, e.replay);
  return createHash('sha256').update(e.tenant).update('\u0000').update(key).digest('base64url');
}

/** The wire form of a record: JSON with short names; properties and context stay the producer's text. */
interface WireEntry {
  t: string;
  y: string;
  k: string;
  i: string;
  ts: number;
  r: number;
  o: Origin;
  p: string;
  c: string;
  tr?: string;
  f?: Fault;
  g?: number;
}

const encoder = new TextEncoder();

export function encodeEntry(e: LogEntry): Uint8Array {
  const w: WireEntry = { t: e.tenant, y: e.type, k: e.key, i: e.idempotencyKey, ts: e.ts, r: e.receivedAt, o: e.origin, p: e.properties, c: e.context };
  if (e.trace !== undefined) w.tr = e.trace;
  if (e.fault !== undefined) w.f = e.fault;
  if (e.replay !== undefined) w.g = e.replay;
  return encoder.encode(JSON.stringify(w));
}

/** A record's entry; its partition is the subject it was read from. */
export function decodeEntry(data: Uint8Array): Omit<LogEntry, 'partition'> {
  const w = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as WireEntry;
  return {
    tenant: w.t,
    type: w.y,
    key: w.k,
    idempotencyKey: w.i,
    ts: w.ts,
    receivedAt: w.r,
    origin: w.o,
    properties: w.p,
    context: w.c,
    ...(w.tr === undefined ? {} : { trace: w.tr }),
    ...(w.f === undefined ? {} : { fault: w.f }),
    ...(w.g === undefined ? {} : { replay: w.g }),
  };
}
