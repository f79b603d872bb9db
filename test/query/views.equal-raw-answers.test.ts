import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { DD_ALPHA } from '../../src/backends/duckdb/query-sql.js';
import type { LogRecord } from '../../src/core/types.js';
import type { Store } from '../../src/ports/store.js';
import { parseQuery, parseView, columnsOf, type QuerySpec } from '../../src/core/query.js';
import { PostgresStore } from '../../src/backends/postgres/store.js';
import { POSTGRES_URL, postgresAvailable, uniqueName, dropSchema } from '../helpers/services.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * For random event sets, a query answered from a view equals the same query answered from
 * raw events: counts and sums exactly (sums up to float rounding), distinct counts within
 * 5% (HyperLogLog, 2^12 registers) and percentiles within the sketch's relative accuracy.
 * Half of each set is committed before the view exists (the backfill builds it), half after
 * (the commit maintains it), with redelivered batches in between.
 */

const T0 = Date.UTC(2026, 10, 24, 9, 0);
const REGIONS = ['eu', 'us', 'apac', null, undefined, 5] as const;

interface Ev {
  type: 'checkout' | 'refund';
  key: number;
  minute: number;
  second: number;
  region: (typeof REGIONS)[number];
  amount: number | string | null | undefined;
  latency: number | undefined;
}

const evArb: fc.Arbitrary<Ev> = fc.record({
  type: fc.constantFrom('checkout', 'refund'),
  key: fc.integer({ min: 0, max: 400 }),
  minute: fc.integer({ min: 0, max: 179 }),
  second: fc.integer({ min: 0, max: 59 }),
  region: fc.constantFrom(...REGIONS),
  amount: fc.oneof(fc.integer({ min: -50, max: 500 }), fc.double({ min: -1000, max: 1000, noNaN: true }), fc.constant('12.5'), fc.constant('n/a'), fc.constant(null), fc.constant(undefined)),
  latency: fc.oneof(fc.double({ min: 0.01, max: 50_000, noNaN: true }), fc.integer({ min: -20, max: 20 }), fc.constant(undefined)),
});

function toRecords(tenant: string, evs: Ev[], startOffset: number, partition: number): LogRecord[] {
  return evs.map((e, i) => {
    const properties: Record<string, unknown> = {};
    if (e.region !== undefined) properties.region = e.region;
    if (e.amount !== undefined) properties.amount = e.amount;
    if (e.latency !== undefined) properties.latency_ms = e.latency;
    const offset = startOffset + i;
    return {
      tenant,
      type: e.type,
      key: `user-${e.key}`,
      idempotencyKey: `${tenant}-${offset}`,
      ts: T0 + e.minute * 60_000 + e.second * 1000,
      receivedAt: Date.now(),
      partition,
      origin: 'live',
      properties: JSON.stringify(properties),
      context: JSON.stringify({ app: e.key % 2 ? 'web' : 'ios' }),
      offset,
      attempt: 1,
    };
  });
}

const VIEW = {
  event: 'checkout',
  dimensions: ['properties.region', 'context.app'],
  measures: ['count', 'sum:amount', 'min:amount', 'max:amount', 'uniq:key', 'p50:latency_ms', 'p95:latency_ms', 'p99:latency_ms'],
  grain: '1m',
};

const QUERIES: Record<string, unknown>[] = [
  { interval: '1h', measures: ['count', 'sum:amount'] },
  { interval: '15m', group_by: ['properties.region'], measures: ['count', 'min:amount', 'max:amount', 'avg:amount'] },
  { interval: null, group_by: ['properties.region', 'context.app'], measures: ['count', 'uniq:key', 'p50:latency_ms', 'p95:latency_ms', 'p99:latency_ms'] },
  { interval: null, measures: ['count', 'uniq:key', 'p95:latency_ms', 'sum:amount'] },
  { interval: '1h', filters: [{ field: 'properties.region', op: 'in', value: ['eu', 'us'] }], measures: ['count', 'p50:latency_ms'] },
  { interval: '1h', filters: [{ field: 'properties.region', op: 'neq', value: 'eu' }], group_by: ['context.app'], measures: ['count'] },
  { interval: null, filters: [{ field: 'properties.region', op: 'exists', value: false }], measures: ['count', 'sum:amount'] },
  { interval: '1m', filters: [{ field: 'properties.region', op: 'eq', value: 5 }], measures: ['count'] },
];

function close(view: unknown, raw: unknown, measure: string): boolean {
  if (view === null || raw === null) return view === raw;
  if (typeof view !== 'number' || typeof raw !== 'number') return view === raw;
  if (measure === 'count') return view === raw;
  if (measure.startsWith('uniq:')) return Math.abs(view - raw) <= Math.max(1, 0.05 * raw);
  if (/^p\d/.test(measure)) return Math.abs(view - raw) <= DD_ALPHA * Math.abs(raw) + 1e-9;
  return Math.abs(view - raw) <= 1e-9 * Math.max(1, Math.abs(raw));
}

/** The stores that maintain views: DuckDB always, PostgreSQL when it is there (always in CI). */
const stores: { name: string; open(): Promise<Store>; drop?(): Promise<void> }[] = [
  { name: 'duckdb', open: async () => new DuckdbStore({ file: path.join(tmpDir(), 'store.duckdb') }) },
];
if (await postgresAvailable()) {
  const schema = uniqueName('sluice_test');
  stores.push({
    name: 'postgres',
    open: async () => new PostgresStore({ url: `${POSTGRES_URL}?schema=${schema}` }),
    drop: () => dropSchema(schema),
  });
}

describe.each(stores)('views answer what raw events answer: $name', (backend) => {
  let store: Store;
  let run = 0;
  beforeAll(async () => {
    store = await backend.open();
    await store.connect();
  });
  afterAll(async () => {
    await store.close();
    await backend.drop?.();
  });

  async function build(tenant: string): Promise<void> {
    const s = await store.backfills.start({ view: 'orders', tenant, from: null, to: null, rate: 0 });
    for (let st = s; st.status === 'running'; ) st = await store.backfills.step(s.id, 1000);
  }

  it('views.equal-raw-answers-for-random-event-sets', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(evArb, { minLength: 1, maxLength: 400 }), fc.integer({ min: 0, max: 400 }), async (evs, cut) => {
        const tenant = `t${run++}`;
        const before = evs.slice(0, Math.min(cut, evs.length));
        const after = evs.slice(before.length);
        const a = toRecords(tenant, before, 1, 0);
        const b = toRecords(tenant, after, 1, 1);
        if (a.length) await store.commit({ records: a, partitions: [{ partition: 0, token: 1, upTo: a.length }] });
        const put = await store.views.put(tenant, parseView('orders', VIEW), 'api');
        expect(put.view.status).toBe('building');
        await build(tenant);
        expect((await store.views.list(tenant))[0]!.status).toBe('ready');
        if (b.length) {
          await store.commit({ records: b.slice(0, Math.ceil(b.length / 2)), partitions: [{ partition: 1, token: 1, upTo: Math.ceil(b.length / 2) }] });
          // A redelivery of what was committed, plus the rest: the view must not count it twice.
          await store.commit({ records: b, partitions: [{ partition: 1, token: 1, upTo: b.length }] });
        }
        for (const body of QUERIES) {
          const spec = parseQuery({ event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 3 * 3_600_000).toISOString(), ...body }, tenant, Date.now(), {
            maxBuckets: 10_000,
            maxRows: 10_000,
          });
          const fromView = await store.query(spec, 10_001);
          const fromRaw = await store.query({ ...spec, source: 'raw' } as QuerySpec, 10_001);
          expect(fromView.source).toBe('view:orders');
          expect(fromRaw.source).toBe('raw');
          const cols = columnsOf(spec);
          const keyCount = cols.length - spec.measures.length;
          const key = (r: unknown[]) => JSON.stringify(r.slice(0, keyCount));
          const rawByKey = new Map(fromRaw.rows.map((r) => [key(r), r]));
          expect(fromView.rows.map(key).sort()).toEqual([...rawByKey.keys()].sort());
          for (const r of fromView.rows) {
            const raw = rawByKey.get(key(r))!;
            for (let i = keyCount; i < cols.length; i++) {
              if (!close(r[i], raw[i], cols[i]!)) {
                throw new Error(`${JSON.stringify(body)}: ${cols[i]} of ${key(r)} is ${r[i]} from the view, ${raw[i]} from raw events`);
              }
            }
          }
        }
      }),
      // Fixed inputs in the test suite; PROPERTY_RUNS=N explores N new ones.
      process.env.PROPERTY_RUNS ? { numRuns: Number(process.env.PROPERTY_RUNS) } : { numRuns: 25, seed: 20261124 },
    );
  });

  it('backfill.progress-counts-the-events-the-view-reads-not-the-whole-tenant', async () => {
    const tenant = 'progress';
    const evs: Ev[] = Array.from({ length: 40 }, (_, i) => ({ type: i < 12 ? 'checkout' : 'refund', key: i, minute: i, second: 0, region: 'eu', amount: i, latency: 1 }));
    const records = toRecords(tenant, evs, 1, 5);
    await store.commit({ records, partitions: [{ partition: 5, token: 1, upTo: records.length }] });
    await store.views.put(tenant, parseView('orders', VIEW), 'api');
    const s = await store.backfills.start({ view: 'orders', tenant, from: null, to: null, rate: 0 });
    // The view reads checkouts only: 12 of the tenant's 40 events.
    expect(s.total).toBe(12);
    let st = s;
    while (st.status === 'running') st = await store.backfills.step(s.id, 5);
    expect(st).toMatchObject({ status: 'done', done: 12, total: 12 });
    // counts_1m reads every event of the tenant.
    expect((await store.backfills.start({ view: 'counts_1m', tenant, from: null, to: null, rate: 0 })).total).toBe(40);
  });

  it('views.percentiles-are-exact-when-a-bin-holds-one-value', async () => {
    const tenant = 'single';
    const records = toRecords(tenant, Array.from({ length: 10 }, (_, i) => ({ type: 'checkout' as const, key: i, minute: 5, second: i, region: 'eu' as const, amount: 1, latency: i < 9 ? 12.5 : 800 })), 1, 3);
    await store.views.put(tenant, parseView('orders', VIEW), 'api');
    await build(tenant);
    await store.commit({ records, partitions: [{ partition: 3, token: 1, upTo: records.length }] });
    const spec = parseQuery({ event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 3_600_000).toISOString(), interval: null, measures: ['p50:latency_ms', 'p95:latency_ms', 'p99:latency_ms'] }, tenant, Date.now(), {
      maxBuckets: 10_000,
      maxRows: 10_000,
    });
    const view = await store.query(spec, 10);
    expect(view.source).toBe('view:orders');
    expect(view.rows).toEqual([[12.5, 800, 800]]);
    expect((await store.query({ ...spec, source: 'raw' }, 10)).rows).toEqual([[12.5, 800, 800]]);
  });

  it('views.sums-past-the-largest-double-never-fail-a-commit-or-a-query', async () => {
    const tenant = 'huge';
    await store.views.put(tenant, parseView('orders', VIEW), 'api');
    await build(tenant);
    const records = toRecords(tenant, [1.5e308, 1.6e308, -1e308].map((amount, i) => ({ type: 'checkout' as const, key: i, minute: 1, second: i, region: 'eu' as const, amount, latency: 1 })), 1, 4);
    // Stored, not dead-lettered: a view's arithmetic must never refuse an event.
    expect((await store.commit({ records, partitions: [{ partition: 4, token: 1, upTo: records.length }] })).stored).toBe(3);
    const spec = parseQuery({ event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 3_600_000).toISOString(), interval: null, measures: ['count', 'sum:amount', 'avg:amount', 'max:amount'] }, tenant, Date.now(), {
      maxBuckets: 10_000,
      maxRows: 10_000,
    });
    for (const answer of [await store.query(spec, 10), await store.query({ ...spec, source: 'raw' }, 10)]) {
      const [[count, sum, avg, max]] = answer.rows as [number, number | null, number | null, number][];
      expect(count).toBe(3);
      expect(max).toBe(1.6e308);
      // Past the largest double: Infinity (DuckDB) or clamped to the largest double (PostgreSQL).
      expect(sum === Infinity || sum === Number.MAX_VALUE).toBe(true);
      expect(avg === Infinity || (typeof avg === 'number' && avg > 1e307)).toBe(true);
    }
  });

  it('views.distinct-counts-and-percentiles-stay-within-their-documented-error-at-scale', async () => {
    const tenant = 'big';
    const n = 50_000;
    const records: LogRecord[] = [];
    for (let i = 0; i < n; i++) {
      records.push({
        ...toRecords(tenant, [{ type: 'checkout', key: (i * 7919) % 20_000, minute: i % 180, second: i % 60, region: 'eu', amount: i % 100, latency: Math.exp((i % 997) / 80) }], i + 1, 2)[0]!,
      });
    }
    await store.views.put(tenant, parseView('orders', VIEW), 'api');
    await build(tenant);
    await store.commit({ records, partitions: [{ partition: 2, token: 1, upTo: n }] });
    const spec = parseQuery(
      { event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 3 * 3_600_000).toISOString(), interval: null, measures: ['uniq:key', 'p50:latency_ms', 'p99:latency_ms'] },
      tenant,
      Date.now(),
      { maxBuckets: 10_000, maxRows: 10_000 },
    );
    const view = await store.query(spec, 10);
    const raw = await store.query({ ...spec, source: 'raw' }, 10);
    const [[uniqV, p50V, p99V]] = view.rows as number[][];
    const [[uniqR, p50R, p99R]] = raw.rows as number[][];
    expect(uniqR).toBe(20_000);
    // 1.04/sqrt(4096) = 1.6% standard error; 5% is three standard errors.
    expect(Math.abs(uniqV! - uniqR!) / uniqR!).toBeLessThan(0.05);
    expect(Math.abs(p50V! - p50R!) / p50R!).toBeLessThanOrEqual(DD_ALPHA + 1e-12);
    expect(Math.abs(p99V! - p99R!) / p99R!).toBeLessThanOrEqual(DD_ALPHA + 1e-12);
  });
});
