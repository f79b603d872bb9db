import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import type { LogRecord } from '../../src/core/types.js';
import { parseQuery, parseView, type QuerySpec } from '../../src/core/query.js';
import { typedBackfillName } from '../../src/ports/typed-columns.js';
import { until } from '../helpers/pipeline.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Views folded outside the raw commit (src/backends/duckdb/view-folds.ts), at the edges: a
 * commit that fails part way, a rebuild of part of a view's range while it is not ready, and a
 * query asked just before a build's table replaces the view's. Each answer through the view
 * must be raw's.
 */

const T0 = Date.UTC(2026, 10, 24, 9, 0);
const VIEW = { event: 'checkout', dimensions: ['properties.region'], measures: ['count', 'sum:amount'], grain: '1m' };

function records(tenant: string, n: number, partition: number, from: number, minute = (i: number) => i % 120, properties?: (i: number) => string): LogRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    tenant,
    type: 'checkout',
    key: `user-${from + i}`,
    idempotencyKey: `${tenant}-${partition}-${from + i}`,
    ts: T0 + minute(i) * 60_000,
    receivedAt: Date.now(),
    partition,
    origin: 'live',
    properties: properties ? properties(i) : JSON.stringify({ region: i % 2 ? 'eu' : 'us', amount: 1 }),
    context: '{}',
    offset: from + i,
    attempt: 1,
  }));
}

const stores: DuckdbStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function open(file: string, opts: Partial<ConstructorParameters<typeof DuckdbStore>[0]> = {}): Promise<DuckdbStore> {
  const s = new DuckdbStore({ file, autoFold: false, ...opts });
  await s.connect();
  stores.push(s);
  return s;
}

function spec(tenant: string, body: Record<string, unknown> = {}): QuerySpec {
  return parseQuery(
    { event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 3 * 3_600_000).toISOString(), interval: null, measures: ['count', 'sum:amount'], ...body },
    tenant,
    Date.now(),
    { maxBuckets: 10_000, maxRows: 10_000 },
  );
}

async function build(store: DuckdbStore, tenant: string, from: number | null = null, to: number | null = null): Promise<void> {
  const s = await store.backfills.start({ view: 'orders', tenant, from, to, rate: 0 });
  for (let st = s; st.status === 'running'; ) st = await store.backfills.step(s.id, 1000);
}

/** The view's answer and raw's, after checking the view answered. */
async function both(store: DuckdbStore, tenant: string): Promise<[unknown, unknown]> {
  const v = await store.query(spec(tenant), 10);
  const r = await store.query({ ...spec(tenant), source: 'raw' }, 10);
  expect(v.source).toBe('view:orders');
  return [v.rows, r.rows];
}

/** Closes `store` without the checkpoint a clean stop makes: the next open replays the write-ahead log, as after a crash. */
async function unflushedStop(store: DuckdbStore): Promise<void> {
  const { writer } = store as unknown as { writer: { run(sql: string): Promise<unknown> } };
  await writer.run('PRAGMA disable_checkpoint_on_shutdown');
  await store.close();
}

describe('view folds at the edges (DuckDB)', () => {
  it('views.a-commit-refused-for-a-row-its-views-cannot-read-leaves-nothing-behind-for-the-next-commit', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    await build(store, 'acme');
    // A tenant without views in the same commit: its rows take the staging table too.
    const bad = [...records('acme', 10, 0, 1, undefined, (i) => (i === 3 ? '{not json' : JSON.stringify({ region: 'eu', amount: 1 }))), ...records('other', 5, 0, 11)];
    await expect(store.commit({ records: bad, partitions: [{ partition: 0, token: 1, upTo: 15 }] })).rejects.toThrow(/not JSON/);
    await store.commit({ records: records('acme', 20, 0, 1), partitions: [{ partition: 0, token: 1, upTo: 20 }] });
    expect(await both(store, 'acme')).toEqual([[[20, 20]], [[20, 20]]]);
    expect((await store.rawStats('other')).events).toBe(0);
    await store.foldViews();
    expect(await both(store, 'acme')).toEqual([[[20, 20]], [[20, 20]]]);
  });

  it('views.a-rebuild-of-part-of-the-range-of-a-view-still-building-does-not-make-it-ready-with-the-rest-missing', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    // History before the view exists, over two hours.
    await store.commit({ records: records('acme', 200, 1, 1), partitions: [{ partition: 1, token: 1, upTo: 200 }] });
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    const whole = await store.backfills.start({ view: 'orders', tenant: 'acme', from: null, to: null, rate: 0 });
    await store.commit({ records: records('acme', 20, 1, 201, () => 5), partitions: [{ partition: 1, token: 1, upTo: 220 }] });
    // A rebuild of the first ten minutes (a pipeline repair rebuilds every view of the tenant
    // over its withdrawn events' times) supersedes the whole build.
    await build(store, 'acme', T0, T0 + 10 * 60_000);
    await expect(store.backfills.step(whole.id, 1000)).rejects.toThrow(/rebuilt by another backfill/);
    await store.foldViews();
    const v = await store.query(spec('acme'), 10);
    const r = await store.query({ ...spec('acme'), source: 'raw' }, 10);
    expect(r.rows).toEqual([[220, 220]]);
    // The rebuild was widened to the view's whole history: the view is ready, and raw's.
    expect(v.source).toBe('view:orders');
    expect(v.rows).toEqual(r.rows);
  });

  it('views.a-query-asked-before-a-whole-rebuild-takes-over-the-views-table-and-run-after-answers-raws', async () => {
    // One reader: a query asked while it is busy waits, planned against the view as it was.
    const file = path.join(tmpDir(), 'store.duckdb');
    const store = await open(file, { readers: 1, readersPerTenant: 1 });
    await store.commit({ records: records('acme', 100, 1, 1), partitions: [{ partition: 1, token: 1, upTo: 100 }] });
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    await build(store, 'acme');
    await store.commit({ records: records('acme', 30, 1, 101), partitions: [{ partition: 1, token: 1, upTo: 130 }] });
    // A rebuild of the whole history, while the view answers queries.
    const rebuild = await store.backfills.start({ view: 'orders', tenant: 'acme', from: null, to: null, rate: 0 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const pool = (store as unknown as { pool: { run(tenant: string, fn: () => Promise<void>): Promise<void> } }).pool;
    const busy = pool.run('someone-else', () => held);
    const asked = store.query(spec('acme'), 10);
    for (let st = rebuild; st.status === 'running'; ) st = await store.backfills.step(rebuild.id, 1000);
    release();
    await busy;
    const v = await asked;
    expect(v.source).toBe('view:orders');
    expect(v.rows).toEqual([[130, 130]]);
    expect(await both(store, 'acme')).toEqual([[[130, 130]], [[130, 130]]]);
    // And after a stop that left the swap in the write-ahead log only (as a crash would).
    await unflushedStop(store);
    expect(fs.statSync(`${file}.wal`).size).toBeGreaterThan(0);
    expect(await both(await open(file), 'acme')).toEqual([[[130, 130]], [[130, 130]]]);
  });

  it('views.events-withdrawn-while-pending-leave-the-view-once-their-range-is-rebuilt', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    await build(store, 'acme');
    const v1 = records('acme', 60, 0, 1).map((r) => ({ ...r, pipelineVersion: 1 }));
    const v2 = records('acme', 40, 0, 61, (i) => 30 + (i % 20)).map((r) => ({ ...r, pipelineVersion: 2 }));
    await store.commit({ records: [...v1, ...v2], partitions: [{ partition: 0, token: 1, upTo: 100 }] });
    // Part folded, part pending, when version 2 is withdrawn and its range rebuilt (a repair).
    await store.foldViews(0);
    const produced = await store.producedBy('acme', 2);
    expect(await store.withdraw('acme', 2, produced)).toBe(40);
    await build(store, 'acme', T0 + 30 * 60_000, T0 + 50 * 60_000);
    expect(await both(store, 'acme')).toEqual([[[60, 60]], [[60, 60]]]);
    await store.foldViews();
    expect(await both(store, 'acme')).toEqual([[[60, 60]], [[60, 60]]]);
  });

  it('builds.running-when-events-are-withdrawn-do-not-put-them-back-at-their-swap', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    const evs = records('acme', 40, 0, 1, (i) => i % 20).map((r, i) => ({ ...r, pipelineVersion: i < 20 ? 1 : 2 }));
    await store.commit({ records: evs, partitions: [{ partition: 0, token: 1, upTo: 40 }] });
    await store.typedColumns.declare('acme', 'checkout', ['region', 'amount']);
    const counts = await store.backfills.start({ view: 'counts_1m', tenant: 'acme', from: T0, to: T0 + 3_600_000, rate: 0 });
    const typed = await store.backfills.start({ view: typedBackfillName('checkout'), tenant: 'acme', from: null, to: null, rate: 0 });
    // A first chunk of each reads a minute's events, then version 2's are withdrawn (a repair).
    expect((await store.backfills.step(counts.id, 1)).status).toBe('running');
    expect((await store.backfills.step(typed.id, 1)).status).toBe('running');
    expect(await store.withdraw('acme', 2, await store.producedBy('acme', 2))).toBe(20);
    for (const b of [counts, typed]) for (let st = b; st.status === 'running'; ) st = await store.backfills.step(b.id, 1);
    const q = spec('acme', { measures: ['count', 'sum:properties.amount'] });
    const fromColumns = await store.query(q, 10);
    expect(fromColumns.typed).toBe(true);
    expect(fromColumns.rows).toEqual([[20, 20]]);
    const counted = await store.counts({ tenant: 'acme', type: null, from: T0, to: T0 + 3_600_000, interval: '1h' });
    expect(counted.reduce((n, r) => n + r.count, 0)).toBe(20);
  });

  it('views.a-query-asked-before-its-view-is-changed-or-removed-and-run-after-answers-raws', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'), { readers: 1, readersPerTenant: 1 });
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    await build(store, 'acme');
    await store.commit({ records: records('acme', 50, 1, 1), partitions: [{ partition: 1, token: 1, upTo: 50 }] });
    const pool = (store as unknown as { pool: { run(tenant: string, fn: () => Promise<void>): Promise<void> } }).pool;
    for (const change of [() => store.views.put('acme', parseView('orders', { ...VIEW, grain: '1h' }), 'api'), () => store.views.remove('acme', 'orders')]) {
      let release!: () => void;
      const busy = pool.run('someone-else', () => new Promise<void>((r) => (release = r)));
      const asked = store.query(spec('acme'), 10);
      await change();
      release();
      await busy;
      expect((await asked).rows).toEqual([[50, 50]]);
    }
  });

  it('views.rows-pending-and-part-folded-at-a-crash-are-counted-once-after-the-log-is-replayed', async () => {
    const file = path.join(tmpDir(), 'store.duckdb');
    let store = await open(file);
    await store.commit({ records: records('acme', 100, 1, 1), partitions: [{ partition: 1, token: 1, upTo: 100 }] });
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    await store.views.put('acme', parseView('by_region', { ...VIEW, grain: '1h' }), 'api');
    await build(store, 'acme');
    let offset = 101;
    for (let k = 0; k < 6; k++) {
      await store.commit({ records: [...records('acme', 40, 1, offset), ...records('plain', 10, 1, offset + 40)], partitions: [{ partition: 1, token: 1, upTo: offset + 49 }] });
      offset += 50;
      await store.foldViews(k % 3);
    }
    const before = await both(store, 'acme');
    expect(before).toEqual([[[340, 340]], [[340, 340]]]);
    await unflushedStop(store);
    expect(fs.statSync(`${file}.wal`).size).toBeGreaterThan(0);
    store = await open(file);
    expect(await both(store, 'acme')).toEqual(before);
    // Commits after the restart take sequences past every one given before it: folded once.
    await store.commit({ records: records('acme', 10, 1, offset), partitions: [{ partition: 1, token: 1, upTo: offset + 9 }] });
    await store.foldViews();
    expect(store.pendingViewRows).toBe(0);
    expect(await both(store, 'acme')).toEqual([[[350, 350]], [[350, 350]]]);
  });

  it('views.a-query-that-waited-for-a-reader-counts-the-events-committed-while-it-waited', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'), { readers: 1, readersPerTenant: 1 });
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    await build(store, 'acme');
    await store.commit({ records: records('acme', 50, 1, 1), partitions: [{ partition: 1, token: 1, upTo: 50 }] });
    await store.foldViews();
    const pool = (store as unknown as { pool: { run(tenant: string, fn: () => Promise<void>): Promise<void> } }).pool;
    let release!: () => void;
    const busy = pool.run('someone-else', () => new Promise<void>((r) => (release = r)));
    const asked = store.query(spec('acme'), 10);
    const raw = store.query({ ...spec('acme'), source: 'raw' }, 10);
    // Committed while both wait, and not folded: raw's answer counts them, so must the view's.
    await store.commit({ records: records('acme', 30, 1, 51), partitions: [{ partition: 1, token: 1, upTo: 80 }] });
    release();
    await busy;
    expect((await raw).rows).toEqual([[80, 80]]);
    expect((await asked).rows).toEqual([[80, 80]]);
  });

  it('views.rows-pending-at-a-stop-are-folded-after-the-restart-without-waiting-for-a-commit', async () => {
    const file = path.join(tmpDir(), 'store.duckdb');
    const first = await open(file);
    await first.views.put('acme', parseView('orders', VIEW), 'api');
    await build(first, 'acme');
    await first.commit({ records: records('acme', 50, 1, 1), partitions: [{ partition: 1, token: 1, upTo: 50 }] });
    await first.close();
    const store = await open(file, { autoFold: true });
    await until(() => store.pendingViewRows === 0, 10_000);
    expect(await both(store, 'acme')).toEqual([[[50, 50]], [[50, 50]]]);
  });

  it('views.a-whole-build-running-when-events-are-withdrawn-keeps-the-events-committed-since-it-began', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    const old = records('acme', 40, 0, 1, (i) => i % 20).map((r, i) => ({ ...r, pipelineVersion: i < 20 ? 1 : 2 }));
    await store.commit({ records: old, partitions: [{ partition: 0, token: 1, upTo: 40 }] });
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    const b = await store.backfills.start({ view: 'orders', tenant: 'acme', from: null, to: null, rate: 0 });
    // Live events past the build's range, then version 2's events are withdrawn mid-build.
    await store.commit({ records: records('acme', 10, 0, 41, () => 100), partitions: [{ partition: 0, token: 1, upTo: 50 }] });
    expect((await store.backfills.step(b.id, 1)).status).toBe('running');
    expect(await store.withdraw('acme', 2, await store.producedBy('acme', 2))).toBe(20);
    for (let st = b; st.status === 'running'; ) st = await store.backfills.step(b.id, 1000);
    await store.foldViews();
    const [view, raw] = await both(store, 'acme');
    // The build started over without the withdrawn events, and lost none of the live ones.
    expect(raw).toEqual([[30, 30]]);
    expect(view).toEqual(raw);
  });

  it('builds.a-withdraw-made-while-a-chunk-of-a-build-runs-loses-nothing-and-counts-nothing-twice', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    // Version 2's events in every minute: any chunk reads some of them.
    const n = 60_000;
    const evs = records('acme', n, 0, 1, (i) => i % 60).map((r, i) => ({ ...r, pipelineVersion: i % 4 === 0 ? 2 : 1 }));
    await store.commit({ records: evs, partitions: [{ partition: 0, token: 1, upTo: n }] });
    const b = await store.backfills.start({ view: 'counts_1m', tenant: 'acme', from: T0, to: T0 + 3_600_000, rate: 0 });
    const produced = await store.producedBy('acme', 2);
    expect((await store.backfills.step(b.id, 1_000)).status).toBe('running');
    // A long chunk and the withdraw at once: the chunk runs on the build's own connection.
    const [, withdrawn] = await Promise.all([store.backfills.step(b.id, n / 2), store.withdraw('acme', 2, produced.slice(0, 10))]);
    expect(withdrawn).toBe(10);
    for (let st = (await store.backfills.list('acme'))[0]!; st.status === 'running'; ) st = await store.backfills.step(b.id, n);
    const counted = await store.counts({ tenant: 'acme', type: null, from: T0, to: T0 + 3_600_000, interval: '1h' });
    expect(counted.reduce((k, r) => k + r.count, 0)).toBe(n - 10);
  });

  it('views.and-typed-columns-of-one-tenant-filled-by-the-same-commits-answer-raws', async () => {
    const store = await open(path.join(tmpDir(), 'store.duckdb'));
    await store.typedColumns.declare('acme', 'checkout', ['region', 'amount']);
    const typed = await store.backfills.start({ view: typedBackfillName('checkout'), tenant: 'acme', from: null, to: null, rate: 0 });
    for (let st = typed; st.status === 'running'; ) st = await store.backfills.step(typed.id, 1000);
    await store.views.put('acme', parseView('orders', VIEW), 'api');
    await build(store, 'acme');
    let offset = 1;
    for (let k = 0; k < 4; k++) {
      await store.commit({ records: [...records('acme', 25, 0, offset), ...records('other', 5, 0, offset + 25)], partitions: [{ partition: 0, token: 1, upTo: offset + 29 }] });
      offset += 30;
      await store.foldViews(1);
    }
    const q = spec('acme', { group_by: ['properties.region'], measures: ['count', 'sum:properties.amount'] });
    const view = await store.query(q, 10);
    const columns = await store.query({ ...q, source: 'raw' }, 10);
    const json = await store.query({ ...q, source: 'raw' }, 10, undefined, { typedColumns: false });
    expect(view.source).toBe('view:orders');
    expect(columns.typed).toBe(true);
    const sorted = (rows: unknown[][]) => rows.map((r) => JSON.stringify(r)).sort();
    expect(json.rows.reduce((n, r) => n + Number(r[1]), 0)).toBe(100);
    expect(sorted(view.rows)).toEqual(sorted(json.rows));
    expect(sorted(columns.rows)).toEqual(sorted(json.rows));
  });

  // A view table past one row group is copied in its order a piece at a time (one transaction
  // each: one copy of a whole table held every other commit for 330-380 ms), and a copy a
  // stopped process began is begun again at the next start.
  it('views.a-build-past-one-row-group-is-sorted-in-pieces-and-a-copy-cut-short-by-a-restart-begins-again', async () => {
    const file = path.join(tmpDir(), 'store.duckdb');
    let store = await open(file);
    const N = 140_000;
    for (let o = 1; o <= N; o += 20_000) await store.commit({ records: records('acme', 20_000, 0, o), partitions: [{ partition: 0, token: 1, upTo: o + 19_999 }] });
    // One row per key: 140,000 rows, past a row group (122,880).
    await store.views.put('acme', parseView('orders', { event: 'checkout', dimensions: ['key'], measures: ['count'], grain: '1m' }), 'api');
    const started = await store.backfills.start({ view: 'orders', tenant: 'acme', from: null, to: null, rate: 0 });
    let st = await store.backfills.step(started.id, 200_000); // the range's one chunk
    st = await store.backfills.step(started.id, 200_000); // the first piece of the copy
    expect(st.status).toBe('running');
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    store = await open(file);
    let steps = 0;
    for (; st.status === 'running'; steps++) st = await store.backfills.step(started.id, 200_000);
    expect(st.status).toBe('done');
    // Six pieces of about 25,000 rows, then the swap in the step of the last.
    expect(steps).toBe(Math.ceil(N / 25_000));
    const hourly = { measures: ['count'], interval: '1h' };
    const v = await store.query(spec('acme', hourly), 10);
    const r = await store.query({ ...spec('acme', hourly), source: 'raw' }, 10);
    expect(v.source).toBe('view:orders');
    expect(v.rows).toEqual(r.rows);
    expect(r.rows.reduce((n, row) => n + Number(row[1]), 0)).toBe(N);
  }, 120_000);
});
