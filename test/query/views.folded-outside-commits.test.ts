import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { FOLD_ROWS } from '../../src/backends/duckdb/view-folds.js';
import type { LogRecord } from '../../src/core/types.js';
import { parseQuery, parseView, type QuerySpec } from '../../src/core/query.js';
import { tmpDir } from '../helpers/tmp.js';
import { viewTableDdl as sharedViewTableDdl } from '../../src/backends/sql/views.js';

/**
 * The embedded store keeps views outside the raw commit (src/backends/duckdb/view-folds.ts): a
 * commit keeps a tenant's rows pending, fold steps add them to each view later, and queries
 * read a view's table together with its pending rows. Folding is driven by hand here
 * (`autoFold: false`), so that every answer is asked at a known state: before any fold, part
 * way, after all, across a restart, and around a build's swap. Each must be the same answer,
 * exactly (the sketches merge the same registers and bins either way), and equal to raw.
 */

const T0 = Date.UTC(2026, 10, 24, 9, 0);
const VIEW = {
  event: 'checkout',
  dimensions: ['properties.region'],
  measures: ['count', 'sum:amount', 'min:amount', 'max:amount', 'avg:amount', 'uniq:key', 'p50:latency_ms', 'p99:latency_ms'],
  grain: '1m',
};
const QUERIES: Record<string, unknown>[] = [
  { interval: '1h', measures: ['count', 'sum:amount', 'avg:amount'] },
  { interval: '15m', group_by: ['properties.region'], measures: ['count', 'min:amount', 'max:amount'] },
  { interval: null, group_by: ['properties.region'], measures: ['count', 'uniq:key', 'p50:latency_ms', 'p99:latency_ms'] },
];

interface Ev {
  type: 'checkout' | 'refund';
  key: number;
  minute: number;
  region: string;
  amount: number;
  latency: number;
}
const evArb: fc.Arbitrary<Ev> = fc.record({
  type: fc.constantFrom('checkout', 'checkout', 'refund'),
  key: fc.integer({ min: 0, max: 300 }),
  minute: fc.integer({ min: 0, max: 179 }),
  region: fc.constantFrom('eu', 'us', 'apac'),
  amount: fc.integer({ min: -50, max: 500 }),
  latency: fc.integer({ min: 1, max: 5_000 }),
});

function records(tenant: string, evs: Ev[], partition: number, from: number): LogRecord[] {
  return evs.map((e, i) => ({
    tenant,
    type: e.type,
    key: `user-${e.key}`,
    idempotencyKey: `${tenant}-${partition}-${from + i}`,
    ts: T0 + e.minute * 60_000,
    receivedAt: Date.now(),
    partition,
    origin: 'live',
    properties: JSON.stringify({ region: e.region, amount: e.amount, latency_ms: e.latency }),
    context: '{}',
    offset: from + i,
    attempt: 1,
  }));
}

const stores: DuckdbStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function open(file: string): Promise<DuckdbStore> {
  const s = new DuckdbStore({ file, autoFold: false });
  await s.connect();
  stores.push(s);
  return s;
}

function spec(tenant: string, body: Record<string, unknown>): QuerySpec {
  return parseQuery({ event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 3 * 3_600_000).toISOString(), ...body }, tenant, Date.now(), { maxBuckets: 10_000, maxRows: 10_000 });
}

/** Every query's rows through the view (sorted, as JSON), after checking the view answered. */
async function answers(store: DuckdbStore, tenant: string): Promise<string[]> {
  const out: string[] = [];
  for (const body of QUERIES) {
    const a = await store.query(spec(tenant, body), 10_001);
    expect(a.source).toBe('view:orders');
    out.push(JSON.stringify(a.rows.map((r) => JSON.stringify(r)).sort()));
  }
  return out;
}

async function rawCounts(store: DuckdbStore, tenant: string): Promise<string> {
  const a = await store.query({ ...spec(tenant, { interval: '1h', measures: ['count', 'sum:amount'] }), source: 'raw' } as QuerySpec, 10_001);
  return JSON.stringify(a.rows.map((r) => JSON.stringify(r)).sort());
}

async function ready(store: DuckdbStore, tenant: string): Promise<void> {
  await store.views.put(tenant, parseView('orders', VIEW), 'api');
  const s = await store.backfills.start({ view: 'orders', tenant, from: null, to: null, rate: 0 });
  for (let st = s; st.status === 'running'; ) st = await store.backfills.step(s.id, 1000);
}

describe('views folded outside the raw commit (DuckDB)', () => {
  it('views.an-answer-with-rows-not-yet-folded-equals-the-answer-once-they-are-folded-part-way-and-all', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    let run = 0;
    // Offsets go on across runs: the store skips what it has applied.
    let offset = 1;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(evArb, { minLength: 1, maxLength: 150 }), { minLength: 1, maxLength: 5 }), fc.nat({ max: 3 }), async (batches, partial) => {
        const tenant = `t${run++}`;
        await ready(store, tenant);
        // A second tenant with a view of its own commits in the same batches.
        const other = `${tenant}-other`;
        await ready(store, other);
        const first = offset;
        for (const evs of batches) {
          const mine = records(tenant, evs, 0, offset);
          const theirs = records(other, evs.slice(0, 10), 0, offset + mine.length);
          offset += mine.length + theirs.length;
          await store.commit({ records: [...mine, ...theirs], partitions: [{ partition: 0, token: 1, upTo: offset - 1 }] });
        }
        // A redelivery changes nothing, folded or not.
        await store.commit({ records: records(tenant, batches[0]!, 0, first).slice(0, 5), partitions: [{ partition: 0, token: 1, upTo: offset - 1 }] });

        expect(store.pendingViewRows).toBeGreaterThan(0);
        const unfolded = await answers(store, tenant);
        await store.foldViews(partial);
        expect(await answers(store, tenant)).toEqual(unfolded);
        await store.foldViews();
        expect(store.pendingViewRows).toBe(0);
        expect(await answers(store, tenant)).toEqual(unfolded);
        // And the count and sum through the view are raw's, exactly.
        const viaView = await store.query(spec(tenant, { interval: '1h', measures: ['count', 'sum:amount'] }), 10_001);
        expect(JSON.stringify(viaView.rows.map((r) => JSON.stringify(r)).sort())).toBe(await rawCounts(store, tenant));
      }),
      process.env.PROPERTY_RUNS ? { numRuns: Number(process.env.PROPERTY_RUNS) } : { numRuns: 15, seed: 20261130 },
    );
  });

  it('views.rows-pending-at-a-stop-are-read-after-the-restart-and-folded-once', async () => {
    const file = path.join(tmpDir(), 'store.duckdb');
    let store = await open(file);
    await ready(store, 'acme');
    const evs: Ev[] = Array.from({ length: 500 }, (_, i) => ({ type: 'checkout', key: i % 97, minute: i % 120, region: ['eu', 'us'][i % 2]!, amount: i, latency: 1 + (i % 300) }));
    await store.commit({ records: records('acme', evs, 2, 1), partitions: [{ partition: 2, token: 1, upTo: 500 }] });
    const before = await answers(store, 'acme');
    await store.close();

    store = await open(file);
    expect(store.pendingViewRows).toBe(500);
    expect(await answers(store, 'acme')).toEqual(before);
    await store.foldViews();
    expect(store.pendingViewRows).toBe(0);
    expect(await answers(store, 'acme')).toEqual(before);
    await store.close();

    // Folded before the stop: nothing is pending after it, and nothing is counted twice.
    store = await open(file);
    expect(store.pendingViewRows).toBe(0);
    expect(await answers(store, 'acme')).toEqual(before);
  });

  it('views.tables-made-with-a-primary-key-are-rewritten-without-it-at-open-and-answer-the-same', async () => {
    const file = path.join(tmpDir(), 'store.duckdb');
    let store = await open(file);
    await ready(store, 'acme');
    const evs: Ev[] = Array.from({ length: 600 }, (_, i) => ({ type: 'checkout', key: i % 97, minute: i % 120, region: ['eu', 'us', 'apac'][i % 3]!, amount: i, latency: 1 + (i % 300) }));
    await store.commit({ records: records('acme', evs.slice(0, 400), 1, 1), partitions: [{ partition: 1, token: 1, upTo: 400 }] });
    await store.foldViews();
    const tableOf = async (st: DuckdbStore) => ((await st.views.list('acme'))[0] as unknown as { table: string }).table;
    const tbl = await tableOf(store);
    await store.close();
    stores.length = 0;

    // The view's table as an earlier version made it: with its key as a PRIMARY KEY (an ART index).
    const db = await DuckDBInstance.create(file);
    const c = await db.connect();
    await c.run(sharedViewTableDdl('keyed', parseView('orders', VIEW), true));
    await c.run(`INSERT INTO keyed SELECT * FROM ${tbl}`);
    await c.run(`DROP TABLE ${tbl}`);
    await c.run(`ALTER TABLE keyed RENAME TO ${tbl}`);
    const keys = async (cc: typeof c) => (await cc.runAndReadAll(`SELECT count(*) FROM duckdb_constraints() WHERE table_name = '${tbl}' AND constraint_type = 'PRIMARY KEY'`)).getRows()[0]![0];
    expect(Number(await keys(c))).toBe(1);
    c.closeSync();
    db.closeSync();

    store = await open(file);
    expect(await tableOf(store)).toBe(tbl);
    // Folds and queries after the rewrite: the view still counts each event once and equals raw.
    await store.commit({ records: records('acme', evs.slice(400), 1, 401), partitions: [{ partition: 1, token: 1, upTo: 600 }] });
    await store.foldViews();
    const viaView = await store.query(spec('acme', { interval: '1h', measures: ['count', 'sum:amount'] }), 10_001);
    expect(viaView.source).toBe('view:orders');
    expect(JSON.stringify(viaView.rows.map((r) => JSON.stringify(r)).sort())).toBe(await rawCounts(store, 'acme'));
    await store.close();
    stores.length = 0;

    const again = await DuckDBInstance.create(file);
    const c2 = await again.connect();
    expect(Number(await keys(c2))).toBe(0);
    c2.closeSync();
    again.closeSync();
  });

  it('views.a-build-that-finishes-while-rows-are-pending-counts-each-event-once', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    const evs = (n: number, from: number): Ev[] => Array.from({ length: n }, (_, i) => ({ type: 'checkout', key: from + i, minute: (from + i) % 170, region: 'eu', amount: 1, latency: 10 }));
    // Before the view: raw only, for the build.
    await store.commit({ records: records('acme', evs(300, 0), 1, 1), partitions: [{ partition: 1, token: 1, upTo: 300 }] });
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    const b = await store.backfills.start({ view: 'orders', tenant: 'acme', from: null, to: null, rate: 0 });
    // Committed after the build began (beyond its snapshot) and not folded when the swap comes;
    // one of them lies in the future, outside the build's range, so the swap does not replace it.
    const later = records('acme', evs(200, 300), 1, 301);
    later[0]!.ts = Date.now() + 3_600_000 * 24 * 365;
    await store.commit({ records: later, partitions: [{ partition: 1, token: 1, upTo: 500 }] });
    expect(store.pendingViewRows).toBe(200);
    for (let st = b; st.status === 'running'; ) st = await store.backfills.step(b.id, 1000);
    expect(store.pendingViewRows).toBe(0);
    const total = async () => {
      const q = { ...spec('acme', { interval: null, measures: ['count'] }), to: Math.floor(Date.now() / 3_600_000 + 24 * 400) * 3_600_000 };
      const v = await store.query(q, 10);
      const r = await store.query({ ...q, source: 'raw' }, 10);
      expect(v.source).toBe('view:orders');
      return [v.rows[0]![0], r.rows[0]![0]];
    };
    expect(await total()).toEqual([500, 500]);
    await store.commit({ records: records('acme', evs(50, 500), 1, 501), partitions: [{ partition: 1, token: 1, upTo: 550 }] });
    expect(await total()).toEqual([550, 550]);
    await store.foldViews();
    expect(await total()).toEqual([550, 550]);
  });

  it('views.a-rebuild-of-part-of-the-range-while-rows-are-pending-counts-each-event-once', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    const evs = (n: number, from: number, minute: number): Ev[] => Array.from({ length: n }, (_, i) => ({ type: 'checkout', key: from + i, minute, region: 'eu', amount: 2, latency: 10 }));
    await ready(store, 'acme');
    await store.commit({ records: records('acme', evs(100, 0, 10), 1, 1), partitions: [{ partition: 1, token: 1, upTo: 100 }] });
    await store.foldViews();
    // Pending when the rebuild of the first hour only starts, and finishes: one in that hour, one after.
    await store.commit({ records: [...records('acme', evs(30, 100, 20), 1, 101), ...records('acme', evs(40, 130, 150), 1, 131)], partitions: [{ partition: 1, token: 1, upTo: 170 }] });
    const b = await store.backfills.start({ view: 'orders', tenant: 'acme', from: T0, to: T0 + 3_600_000, rate: 0 });
    await store.commit({ records: records('acme', evs(5, 170, 30), 1, 171), partitions: [{ partition: 1, token: 1, upTo: 175 }] });
    for (let st = b; st.status === 'running'; ) st = await store.backfills.step(b.id, 1000);
    const both = async () => {
      const q = spec('acme', { interval: '1h', measures: ['count', 'sum:amount'] });
      const v = await store.query(q, 10);
      const r = await store.query({ ...q, source: 'raw' }, 10);
      expect(v.source).toBe('view:orders');
      return [JSON.stringify(v.rows), JSON.stringify(r.rows)];
    };
    const [view, raw] = await both();
    expect(view).toBe(raw);
    expect(JSON.parse(raw)).toEqual([[T0, 135, 270], [T0 + 2 * 3_600_000, 40, 80]]);
    await store.foldViews();
    expect(await both()).toEqual([raw, raw]);
  });

  it('views.pending-rows-gain-the-columns-events-gained-by-a-migration', async () => {
    const file = path.join(tmpDir(), 'store.duckdb');
    let store = await open(file);
    await ready(store, 'acme');
    await store.close();
    // As if view_pending had been made before events gained operator_version.
    const db = await DuckDBInstance.create(file);
    const c = await db.connect();
    await c.run('ALTER TABLE view_pending DROP COLUMN operator_version');
    c.closeSync();
    db.closeSync();
    store = await open(file);
    const evs: Ev[] = Array.from({ length: 20 }, (_, i) => ({ type: 'checkout', key: i, minute: 1, region: 'eu', amount: 1, latency: 1 }));
    await store.commit({ records: records('acme', evs, 0, 1), partitions: [{ partition: 0, token: 1, upTo: 20 }] });
    await store.foldViews();
    expect((await store.query(spec('acme', { interval: null, measures: ['count'] }), 10)).rows).toEqual([[20]]);
  });

  it('views.a-fold-step-folds-at-most-FOLD_ROWS-rows-of-one-view-and-takes-tenants-in-turn', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    await ready(store, 'big');
    await ready(store, 'small');
    const many: Ev[] = Array.from({ length: 2_000 }, (_, i) => ({ type: 'checkout', key: i, minute: i % 100, region: 'eu', amount: 1, latency: 5 }));
    let offset = 1;
    const commits = Math.ceil((FOLD_ROWS * 2) / many.length) + 1;
    for (let k = 0; k < commits; k++) {
      await store.commit({ records: records('big', many, 3, offset), partitions: [{ partition: 3, token: 1, upTo: offset + many.length - 1 }] });
      offset += many.length;
    }
    await store.commit({ records: records('small', many.slice(0, 10), 4, 1), partitions: [{ partition: 4, token: 1, upTo: 10 }] });
    const pending = store.pendingViewRows;
    expect(pending).toBe(commits * many.length + 10);
    // Two steps: one of big's (at most FOLD_ROWS rows), then small's, whose turn comes next.
    await store.foldViews(2);
    const left = store.pendingViewRows;
    expect(pending - left).toBeLessThanOrEqual(FOLD_ROWS + 10);
    expect(pending - left).toBeGreaterThanOrEqual(10);
    const small = await store.query({ ...spec('small', { interval: null, measures: ['count'] }) }, 10);
    expect(small.rows).toEqual([[10]]);
    await store.foldViews();
    expect(store.pendingViewRows).toBe(0);
    const big = await store.query({ ...spec('big', { interval: null, measures: ['count'] }) }, 10);
    expect(big.rows).toEqual([[commits * many.length]]);
  });
});
