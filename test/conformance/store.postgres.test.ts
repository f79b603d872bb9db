import { afterAll, expect, it } from 'vitest';
import { entry } from '../helpers/entries.js';
import pg from 'pg';
import { PostgresStore } from '../../src/backends/postgres/store.js';
import { POSTGRES_URL, postgresAvailable, uniqueName } from '../helpers/services.js';
import { storeConformance } from './store-suite.js';
import { parseQuery, parseView } from '../../src/core/query.js';

const schemas: string[] = [];

if (await postgresAvailable()) {
  storeConformance('postgres', async () => {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const url = `${POSTGRES_URL}?schema=${schema}`;
    let store = new PostgresStore({ url });
    await store.connect();
    return {
      get store() {
        return store;
      },
      reopen: async () => {
        await store.close();
        store = new PostgresStore({ url });
        await store.connect();
        return store;
      },
      another: async () => {
        const other = new PostgresStore({ url });
        await other.connect();
        return other;
      },
    };
  });

  // Beyond the suite: the key ledger, which makes a producer's retry past the log's dedupe
  // window (short on NATS: the server keeps its ids in memory) count once.
  it('commit.skips-a-key-already-stored-at-another-position-and-counts-it-as-ended', async () => {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const store = new PostgresStore({ url: `${POSTGRES_URL}?schema=${schema}` });
    await store.connect();
    const first = { ...entry('t1', 1, 1), partition: 0, offset: 1, attempt: 1 };
    const retried = { ...first, offset: 900 };
    expect((await store.commit({ records: [first], partitions: [{ partition: 0, token: 1, upTo: 1 }] })).stored).toBe(1);
    expect(await store.commit({ records: [retried], partitions: [{ partition: 0, token: 1, upTo: 900 }] })).toEqual({ stored: 0, skipped: 1, storedByTenant: new Map() });
    expect(await store.rawStats('t1')).toEqual({ events: 1, distinctKeys: 1 });
    const minute = first.receivedAt - (first.receivedAt % 60_000);
    expect(await store.storedByMinute(minute, minute + 60_000)).toEqual([{ tenant: 't1', minute, n: 2 }]);
    await store.close();
  });

  // Beyond the suite: several processes share one PostgreSQL store. Two workers commit their
  // partitions while a third process declares a view and builds it; every event must be in
  // the view exactly once, whether the backfill's snapshot, its catch-up or a live commit
  // brought it.
  it('views.built-while-two-workers-commit-count-every-event-once', async () => {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const url = `${POSTGRES_URL}?schema=${schema}`;
    const [w1, w2, builder] = [new PostgresStore({ url }), new PostgresStore({ url }), new PostgresStore({ url })];
    for (const s of [w1, w2, builder]) await s.connect();
    const T = Date.UTC(2026, 10, 24, 10, 0);
    const batch = (partition: number, from: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        ...entry('acme', from + i, 1),
        partition,
        offset: from + i,
        attempt: 1,
        idempotencyKey: `p${partition}-${from + i}`,
        ts: T + ((from + i) % 120) * 30_000,
        properties: JSON.stringify({ amount: (from + i) % 7 }),
      }));
    // Each worker owns two partitions and commits 40 batches of 250, as fast as it can.
    const work = async (store: PostgresStore, partitions: number[]) => {
      for (let b = 0; b < 40; b++) {
        for (const p of partitions) {
          await store.commit({ records: batch(p, b * 250 + 1, 250), partitions: [{ partition: p, token: 1, upTo: (b + 1) * 250 }] });
        }
      }
    };
    const working = Promise.all([work(w1, [0, 2]), work(w2, [1, 3])]);
    await new Promise((r) => setTimeout(r, 300));
    await builder.views.put('acme', parseView('amounts', { event: 'checkout', dimensions: [], measures: ['count', 'sum:amount'], grain: '1m' }), 'api');
    const started = await builder.backfills.start({ view: 'amounts', tenant: 'acme', from: null, to: null, rate: 0 });
    for (let st = started; st.status === 'running'; ) st = await builder.backfills.step(started.id, 2_000);
    await working;
    const spec = parseQuery({ event: 'checkout', from: new Date(T - 3_600_000).toISOString(), to: new Date(T + 3 * 3_600_000).toISOString(), interval: null, measures: ['count', 'sum:amount'] }, 'acme', Date.now(), {
      maxBuckets: 10_000,
      maxRows: 10_000,
    });
    const view = await builder.query(spec, 10);
    const raw = await builder.query({ ...spec, source: 'raw' }, 10);
    console.log(`view built under two committing workers: view ${JSON.stringify(view.rows)}, raw ${JSON.stringify(raw.rows)}, backfill input ${started.total} of 40000`);
    expect(view.source).toBe('view:amounts');
    expect(raw.rows).toEqual([[40_000, expect.any(Number)]]);
    expect(view.rows).toEqual(raw.rows);
    for (const s of [w1, w2, builder]) await s.close();
  });

  // Beyond the suite: a rebuild of part of the range of a view not built yet (a pipeline
  // repair rebuilds every view of a tenant over a range) must not make it ready with the rest
  // of its history missing.
  it('views.a-rebuild-of-part-of-the-range-of-a-view-still-building-does-not-make-it-ready-with-the-rest-missing', async () => {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const store = new PostgresStore({ url: `${POSTGRES_URL}?schema=${schema}` });
    await store.connect();
    const T = Date.UTC(2026, 10, 24, 10, 0);
    const batch = (from: number, n: number, minute: (i: number) => number) =>
      Array.from({ length: n }, (_, i) => ({ ...entry('acme', from + i, 1), partition: 0, offset: from + i, attempt: 1, idempotencyKey: `k-${from + i}`, ts: T + minute(i) * 60_000, properties: JSON.stringify({ amount: 1 }) }));
    await store.commit({ records: batch(1, 200, (i) => i % 120), partitions: [{ partition: 0, token: 1, upTo: 200 }] });
    await store.views.put('acme', parseView('amounts', { event: 'checkout', dimensions: [], measures: ['count', 'sum:amount'], grain: '1m' }), 'api');
    const whole = await store.backfills.start({ view: 'amounts', tenant: 'acme', from: null, to: null, rate: 0 });
    await store.commit({ records: batch(201, 20, () => 5), partitions: [{ partition: 0, token: 1, upTo: 220 }] });
    const part = await store.backfills.start({ view: 'amounts', tenant: 'acme', from: T, to: T + 10 * 60_000, rate: 0 });
    for (let st = part; st.status === 'running'; ) st = await store.backfills.step(part.id, 1_000);
    await expect(store.backfills.step(whole.id, 1_000)).rejects.toThrow(/rebuilt by another backfill/);
    const spec = parseQuery({ event: 'checkout', from: new Date(T).toISOString(), to: new Date(T + 3 * 3_600_000).toISOString(), interval: null, measures: ['count', 'sum:amount'] }, 'acme', Date.now(), {
      maxBuckets: 10_000,
      maxRows: 10_000,
    });
    const view = await store.query(spec, 10);
    const raw = await store.query({ ...spec, source: 'raw' }, 10);
    expect(raw.rows).toEqual([[220, 220]]);
    expect(view.source).toBe('view:amounts');
    expect(view.rows).toEqual(raw.rows);
    await store.close();
  });

  // Beyond the suite: a rollback's withdraw while builds run. A build that had read the
  // withdrawn events before the withdraw must not put them back at its swap (counts_1m is not
  // rebuilt by the repair after it), and must keep the live events committed since it began.
  it('builds.running-when-events-are-withdrawn-do-not-put-them-back-at-their-swap', async () => {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const store = new PostgresStore({ url: `${POSTGRES_URL}?schema=${schema}` });
    await store.connect();
    const T = Date.UTC(2026, 10, 24, 10, 0);
    const batch = (from: number, n: number, minute: (i: number) => number, version: (i: number) => number) =>
      Array.from({ length: n }, (_, i) => ({
        ...entry('acme', from + i, 1),
        partition: 0,
        offset: from + i,
        attempt: 1,
        idempotencyKey: `k-${from + i}`,
        ts: T + minute(i) * 60_000,
        properties: JSON.stringify({ amount: 1 }),
        pipelineVersion: version(i),
      }));
    await store.commit({ records: batch(1, 40, (i) => i % 20, (i) => (i < 20 ? 1 : 2)), partitions: [{ partition: 0, token: 1, upTo: 40 }] });
    await store.views.put('acme', parseView('amounts', { event: 'checkout', dimensions: [], measures: ['count', 'sum:amount'], grain: '1m' }), 'api');
    const counts = await store.backfills.start({ view: 'counts_1m', tenant: 'acme', from: T, to: T + 3_600_000, rate: 0 });
    const view = await store.backfills.start({ view: 'amounts', tenant: 'acme', from: null, to: null, rate: 0 });
    // Live events past the view build's range, then a first chunk of each build, then version 2's events are withdrawn.
    await store.commit({ records: batch(41, 10, () => 100, () => 1), partitions: [{ partition: 0, token: 1, upTo: 50 }] });
    expect((await store.backfills.step(counts.id, 1)).status).toBe('running');
    expect((await store.backfills.step(view.id, 1)).status).toBe('running');
    expect(await store.withdraw('acme', 2, await store.producedBy('acme', 2))).toBe(20);
    for (const b of [counts, view]) for (let st = b; st.status === 'running'; ) st = await store.backfills.step(b.id, 1);
    const counted = await store.counts({ tenant: 'acme', type: null, from: T, to: T + 3 * 3_600_000, interval: '1h' });
    expect(counted.reduce((n, r) => n + r.count, 0)).toBe(30);
    const spec = parseQuery({ event: 'checkout', from: new Date(T).toISOString(), to: new Date(T + 3 * 3_600_000).toISOString(), interval: null, measures: ['count', 'sum:amount'] }, 'acme', Date.now(), {
      maxBuckets: 10_000,
      maxRows: 10_000,
    });
    const raw = await store.query({ ...spec, source: 'raw' }, 10);
    const built = await store.query(spec, 10);
    expect(raw.rows).toEqual([[30, 30]]);
    expect(built.source).toBe('view:amounts');
    expect(built.rows).toEqual(raw.rows);
    await store.close();
  });

  /**
   * Two stores on one schema (a builder and a repairer, as two processes), 40,000 events of
   * which every fourth is version 2's, in every minute of an hour, and a counts_1m build of
   * that hour one chunk in.
   */
  async function buildOverWithdrawable() {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const url = `${POSTGRES_URL}?schema=${schema}`;
    const [builder, repairer] = [new PostgresStore({ url }), new PostgresStore({ url })];
    for (const s of [builder, repairer]) await s.connect();
    const T = Date.UTC(2026, 10, 24, 10, 0);
    // Version 2's events in every minute: any chunk reads some of them.
    const n = 40_000;
    const evs = Array.from({ length: n }, (_, i) => ({
      ...entry('acme', i + 1, 1),
      partition: 0,
      offset: i + 1,
      attempt: 1,
      idempotencyKey: `k-${i + 1}`,
      ts: T + (i % 60) * 60_000,
      pipelineVersion: i % 4 === 0 ? 2 : 1,
    }));
    for (let i = 0; i < n; i += 10_000) await builder.commit({ records: evs.slice(i, i + 10_000), partitions: [{ partition: 0, token: 1, upTo: i + 10_000 }] });
    const b = await builder.backfills.start({ view: 'counts_1m', tenant: 'acme', from: T, to: T + 3_600_000, rate: 0 });
    const produced = await repairer.producedBy('acme', 2);
    expect((await builder.backfills.step(b.id, 1_000)).status).toBe('running');
    return { builder, repairer, T, n, b, produced };
  }

  // The same with the withdraw made while a long chunk of the build runs, from another process:
  // whichever goes first, nothing is lost and nothing counted twice.
  it('builds.a-withdraw-made-while-a-chunk-of-a-build-runs-loses-nothing-and-counts-nothing-twice', async () => {
    const { builder, repairer, T, n, b, produced } = await buildOverWithdrawable();
    const [, withdrawn] = await Promise.all([builder.backfills.step(b.id, n / 2), repairer.withdraw('acme', 2, produced.slice(0, 10))]);
    expect(withdrawn).toBe(10);
    for (let st = (await builder.backfills.list('acme'))[0]!; st.status === 'running'; ) st = await builder.backfills.step(b.id, n);
    const counted = await builder.counts({ tenant: 'acme', type: null, from: T, to: T + 3_600_000, interval: '1h' });
    expect(counted.reduce((k, r) => k + r.count, 0)).toBe(n - 10);
    for (const s of [builder, repairer]) await s.close();
  });

  it('builds.a-withdraw-made-while-the-last-chunk-of-a-build-runs-does-not-let-its-swap-drop-what-it-took-back', async () => {
    const { builder, repairer, T, n, b, produced } = await buildOverWithdrawable();
    // The chunk that reaches the range's end, then the swap in a transaction of its own: a withdraw
    // that lands between them takes the build back, and the swap must not run on what is left.
    const [, withdrawn] = await Promise.all([builder.backfills.step(b.id, n), repairer.withdraw('acme', 2, produced.slice(-10))]);
    expect(withdrawn).toBe(10);
    for (let st = (await builder.backfills.list('acme'))[0]!; st.status === 'running'; ) st = await builder.backfills.step(b.id, n);
    const counted = await builder.counts({ tenant: 'acme', type: null, from: T, to: T + 3_600_000, interval: '1h' });
    expect(counted.reduce((k, r) => k + r.count, 0)).toBe(n - 10);
    for (const s of [builder, repairer]) await s.close();
  });

  // Nothing leaked: every schema a test made is dropped.
  afterAll(async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    await client.end();
  });
}
