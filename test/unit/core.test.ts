import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/core/backoff.js';
import { validateEvent } from '../../src/core/event.js';
import { canonicalJson, deriveIdempotencyKey, partitionOf } from '../../src/core/hash.js';
import { parseQueryTime, parseRfc3339 } from '../../src/core/time.js';
import { fillBuckets } from '../../src/http/series.js';
import { parseQuery } from '../../src/core/query.js';
import { countsSql, minuteCounts } from '../../src/backends/duckdb/sql.js';

const limits = { maxEventBytes: 32_768, maxDepth: 32 };

describe('core', () => {
  it('partitionOf.is-stable-and-spreads-keys', () => {
    expect(partitionOf('acme', 'user-1', 16)).toBe(partitionOf('acme', 'user-1', 16));
    // Pinned: changing the hash would move keys between partitions of existing logs.
    expect(partitionOf('acme', 'user-1', 16)).toBe(PINNED_PARTITION);
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[partitionOf('acme', `user-${i}`, 16)]++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });

  it('deriveIdempotencyKey.ignores-property-order-but-not-content', () => {
    const a = deriveIdempotencyKey('t', 'x', 'k', 1, { a: 1, b: { c: 2, d: 3 } });
    expect(deriveIdempotencyKey('t', 'x', 'k', 1, { b: { d: 3, c: 2 }, a: 1 })).toBe(a);
    expect(deriveIdempotencyKey('t', 'x', 'k', 2, { a: 1, b: { c: 2, d: 3 } })).not.toBe(a);
    expect(deriveIdempotencyKey('u', 'x', 'k', 1, { a: 1, b: { c: 2, d: 3 } })).not.toBe(a);
    expect(canonicalJson({ b: [2, { z: 1, a: 0 }], a: null })).toBe('{"a":null,"b":[2,{"a":0,"z":1}]}');
  });

  it('parseRfc3339.accepts-zones-and-fractions-and-refuses-impossible-dates', () => {
    expect(parseRfc3339('2026-11-24T10:00:00Z')).toBe(Date.UTC(2026, 10, 24, 10));
    expect(parseRfc3339('2026-11-24T12:00:00.5+02:00')).toBe(Date.UTC(2026, 10, 24, 10, 0, 0, 500));
    expect(parseRfc3339('2024-02-29t23:59:59.123456789-05:30')).toBe(Date.UTC(2024, 2, 1, 5, 29, 59, 123));
    expect(parseRfc3339('2026-11-24 10:00:00z')).toBe(Date.UTC(2026, 10, 24, 10));
    for (const bad of [
      '2026-02-30T00:00:00Z', '2025-02-29T00:00:00Z', '2026-11-24', '2026-11-24T25:00:00Z', '2026-11-24T10:00:00', 'now', '1732442400',
      '2026-11-24T10:00:00.Z', '2026-11-24T10:00:00.1234567891Z', '2026-11-24T10:00:00+0200', '2026-11-24T10:00:00+02:00x',
      '2026-1x-24T10:00:00Z', '2026-11-24T10:60:00Z', '+2026-11-24T10:00:00Z', '2026-11-24T10:00:00+24:00',
    ]) {
      expect(parseRfc3339(bad), bad).toBeNull();
    }
    expect(parseQueryTime('-24h', 100_000_000)).toBe(100_000_000 - 86_400_000);
    expect(parseQueryTime('now', 5)).toBe(5);
    expect(parseQueryTime('-1y', 5)).toBeNull();
  });

  it('backoffDelay.grows-exponentially-within-the-cap-with-full-jitter', () => {
    expect(backoffDelay(0, 100, 5_000, () => 0.999)).toBe(99);
    expect(backoffDelay(3, 100, 5_000, () => 0.999)).toBe(799);
    expect(backoffDelay(30, 100, 5_000, () => 0.999)).toBe(4995);
    expect(backoffDelay(3, 100, 5_000, () => 0)).toBe(0);
  });

  it('validateEvent.fills-server-fields-and-derives-a-key-from-event-time', () => {
    const v = validateEvent({ type: 'checkout', key: 'u1', ts: '2026-11-24T10:00:00Z', properties: { amount: 3 } }, 'acme', 999, 16, limits);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.entry).toMatchObject({ tenant: 'acme', type: 'checkout', key: 'u1', ts: Date.UTC(2026, 10, 24, 10), receivedAt: 999, origin: 'live', properties: '{"amount":3}', context: '{}' });
    expect(v.entry.idempotencyKey).toMatch(/^d_/);
    const noTs = validateEvent({ type: 'checkout' }, 'acme', 1234, 16, limits);
    expect(noTs.ok && noTs.entry.ts).toBe(1234);
    const given = validateEvent({ type: 'checkout', idempotency_key: 'mine' }, 'acme', 1, 16, limits);
    expect(given.ok && given.entry.idempotencyKey).toBe('mine');
  });

  it('validateEvent.measures-size-in-utf8-bytes', () => {
    // 17,000 characters but 34,000 bytes: over the 32 KiB limit.
    const v = validateEvent({ type: 'a', properties: { s: 'é'.repeat(17_000) } }, 't', 1, 16, limits);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.rejection.code).toBe('event_too_large');
    expect(validateEvent({ type: 'a', properties: { s: 'e'.repeat(17_000) } }, 't', 1, 16, limits).ok).toBe(true);
  });
});

describe('query building', () => {
  it('parseQuery.covers-whole-buckets-and-defaults-to-counts-per-hour-over-the-last-day', () => {
    const now = Date.UTC(2026, 10, 24, 10, 30, 15);
    const limits = { maxBuckets: 10_000, maxRows: 10_000 };
    const q = parseQuery({ event: 'x', from: '2026-11-24T10:07:30Z', to: 'now', interval: '1m' }, 'acme', now, limits);
    expect(q).toMatchObject({ tenant: 'acme', event: 'x', from: Date.UTC(2026, 10, 24, 10, 7), to: Date.UTC(2026, 10, 24, 10, 31), interval: '1m' });
    expect(parseQuery({}, 'acme', now, limits)).toMatchObject({ event: null, interval: '1h', from: Date.UTC(2026, 10, 23, 10), to: Date.UTC(2026, 10, 24, 11) });
    const rows = fillBuckets({ interval: '1m', from: Date.UTC(2026, 10, 24, 10, 7), to: Date.UTC(2026, 10, 24, 10, 10) }, [[Date.UTC(2026, 10, 24, 10, 8), 4]], [0]);
    expect(rows).toEqual([
      ['2026-11-24T10:07:00.000Z', 0],
      ['2026-11-24T10:08:00.000Z', 4],
      ['2026-11-24T10:09:00.000Z', 0],
    ]);
  });

  it('sql.is-parameterized-and-never-contains-request-values', () => {
    const evil = "x'; DROP TABLE events; --";
    const s = countsSql({ tenant: evil, type: evil, from: 0, to: 1, interval: '1h' });
    expect(s.sql).not.toContain(evil);
    expect(s.params).toContain(evil);
    const m = minuteCounts([
      { tenant: evil, type: 'a', ts: 61_000 } as never,
      { tenant: evil, type: 'a', ts: 119_000 } as never,
      { tenant: evil, type: 'b', ts: 1_000 } as never,
    ]);
    expect(m.sql).not.toContain(evil);
    expect(m.params).toEqual([evil, 'a', 60_000, 2, evil, 'b', 0, 1]);
  });
});

const PINNED_PARTITION = 12;
