import { createHash } from 'node:crypto';

/**
 * FNV-1a, 32 bits, over the UTF-16 code units of `tenant \0 key`. Stable across processes,
 * versions and backends: changing it would move keys between partitions and break
 * per-key ordering for events already in the log.
 */
export function partitionOf(tenant: string, key: string, partitions: number): number {
  let h = 0x811c9dc5;
  const s = tenant + '\u0000' + key;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

/** JSON with object keys sorted at every level, so equal values encode to equal text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) out += ',';
    out += JSON.stringify(keys[i]) + ':' + canonicalJson(obj[keys[i]!]);
  }
  return out + '}';
}

/**
 * The idempotency key of an event that came without one: a hash of what identifies the
 * semantic event (tenant, type, key, event time, canonical properties). The event time is
 * the producer's `ts`; an event without `ts` is identified by its receive time instead, so
 * two distinct events that look alike are never merged. A producer that wants retries to
 * be safe sends `idempotency_key` or `ts`.
 */
export function deriveIdempotencyKey(
  tenant: string,
  type: string,
  key: string,
  ts: number,
  properties: Record<string, unknown>,
): string {
  const h = createHash('sha256');
  h.update(tenant).update('\u0000').update(type).update('\u0000').update(key).update('\u0000');
  h.update(String(ts)).update('\u0000').update(canonicalJson(properties));
  return 'd_' + h.digest('base64url').slice(0, 32);
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * The key a replayed record is deduplicated by: its idempotency key and its replay
 * generation, so that one replay of a dead letter appends once however often it is retried,
 * while the live key stays as it was (a producer retrying the original is still a duplicate).
 */
export function replayDedupeKey(idempotencyKey: string, generation: number): string {
  return `${idempotencyKey}\u0000replay:${generation}`;
}
