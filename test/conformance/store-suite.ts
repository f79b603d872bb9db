import { describe, expect, it } from 'vitest';
import { isFenced } from '../../src/core/errors.js';
import type { LogRecord } from '../../src/core/types.js';
import type { Store } from '../../src/ports/store.js';
import { entry } from '../helpers/entries.js';
import { parseQuery, parseView } from '../../src/core/query.js';

/**
 * The Store conformance suite. `make` returns a connected, empty store; `reopen` closes and
 * reopens the same one.
 */
export interface StoreHarness {
  store: Store;
  reopen(): Promise<Store>;
  /** A second store on the same database, opened and connected; only for engines that declare `concurrentWriters`. */
  another?(): Promise<Store>;
}

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 10, 24, 10, 0);

function records(tenant: string, partition: number, from: number, to: number, overrides: Partial<LogRecord> = {}): LogRecord[] {
  const out: LogRecord[] = [];
  for (let o = from; o <= to; o++) {
    out.push({ ...entry(tenant, o, 1), partition, idempotencyKey: `${tenant}-${partition}-${o}`, ts: T0 + o * 1000, offset: o, attempt: 1, ...overrides });
  }
  return out;
}

async function total(store: Store, tenant: string, type: string | null = null): Promise<number> {
  const rows = await store.counts({ tenant, type, from: T0 - 86_400_000, to: T0 + 86_400_000, interval: '1d' });
  return rows.reduce((s, r) => s + r.count, 0);
}

export function storeConformance(name: string, make: () => Promise<StoreHarness>): void {
  describe(`Store conformance: ${name}`, () => {
    it('commit.stores-raw-rows-and-per-minute-counts', async () => {
      const { store } = await make();
      const batch = records('t1', 0, 1, 150);
      const r = await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: 150 }] });
      expect(r).toEqual({ stored: 150, skipped: 0, storedByTenant: new Map([['t1', 150]]) });
      expect(await store.rawStats('t1')).toEqual({ events: 150, distinctKeys: 150 });
      const perMinute = await store.counts({ tenant: 't1', type: 'checkout', from: T0, to: T0 + 5 * MINUTE, interval: '1m' });
      // Offsets 1..150 are seconds 1..150 after T0: 59 in the first minute, 60, then 31.
      expect(perMinute).toEqual([
        { bucket: T0, count: 59 },
        { bucket: T0 + MINUTE, count: 60 },
        { bucket: T0 + 2 * MINUTE, count: 31 },
      ]);
      expect(await store.appliedOffsets()).toEqual(new Map([[0, 150]]));
      await store.close();
    });

    it('views.the-limit-on-api-views-is-counted-in-the-write-that-adds-one', async () => {
      const { store } = await make();
      const view = (name: string, event = 'page') => parseView(name, { event, measures: ['count'], grain: '1m' });
      // Twelve new views at once against a limit of three: exactly three are added.
      const outcomes = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => store.views.put('t1', view(`v${i}`), 'api', 3)));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
      const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(refused).toHaveLength(9);
      for (const r of refused) expect(r.reason).toMatchObject({ code: 'SLUICE_ERR_CONFLICT', field: 'query.viewsPerTenant', message: expect.stringContaining('the tenant has 3 views') });
      const mine = (await store.views.list('t1')).map((v) => v.name);
      expect(mine).toHaveLength(3);
      // Changing one of them is not one more; the configuration's views are not counted; another tenant has its own count.
      expect((await store.views.put('t1', view(mine[0]!, 'signup'), 'api', 3)).changed).toBe(true);
      expect((await store.views.put('t1', view('from_config'), 'config', 3)).changed).toBe(true);
      expect((await store.views.put('t2', view('v0'), 'api', 3)).changed).toBe(true);
      await store.close();
    });

    it('commit.stores-the-pipeline-version-of-each-event', async () => {
      const { store } = await make();
      const batch = [...records('t1', 0, 1, 3, { pipelineVersion: 7 }), ...records('t1', 0, 4, 5)];
      await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: 5 }] });
      expect((await store.findEvent('t1', 't1-0-2'))?.pipelineVersion).toBe(7);
      expect((await store.findEvent('t1', 't1-0-5'))?.pipelineVersion).toBe(0);
      const spec = parseQuery(
        { from: new Date(T0).toISOString(), to: new Date(T0 + 5 * MINUTE).toISOString(), interval: null, group_by: ['pipeline_version'], measures: ['count'], order_by: 'pipeline_version', source: 'raw' },
        't1',
        T0,
        { maxBuckets: 10_000, maxRows: 10_000 },
      );
      expect((await store.query(spec, 100)).rows).toEqual([
        ['0', 2],
        ['7', 3],
      ]);
      await store.close();
    });

    it('withdraw.takes-out-a-versions-events-with-their-counts-and-the-same-keys-can-be-stored-again', async () => {
      const { store } = await make();
      const batch = [...records('t1', 0, 1, 4, { pipelineVersion: 2 }), ...records('t1', 0, 5, 10, { pipelineVersion: 1 }), ...records('t2', 0, 11, 12, { pipelineVersion: 2 })];
      await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: 12 }] });
      const produced = await store.producedBy('t1', 2);
      expect(produced.map((x) => [x.partition, x.offset])).toEqual([1, 2, 3, 4].map((o) => [0, o]));
      expect(produced[0]!.ts).toBe(batch[0]!.ts);
      expect(await store.withdraw('t1', 2, produced.slice(0, 3))).toBe(3);
      // Idempotent, and only events of that version at those positions.
      expect(await store.withdraw('t1', 2, produced.slice(0, 3))).toBe(0);
      expect(await store.withdraw('t1', 2, [{ partition: 0, offset: 5, ts: batch[4]!.ts }])).toBe(0);
      expect((await store.producedBy('t1', 2)).map((x) => x.offset)).toEqual([4]);
      expect((await store.producedBy('t2', 2)).map((x) => x.offset)).toEqual([11, 12]);
      expect((await store.rawStats('t1')).events).toBe(7);
      expect(await total(store, 't1')).toBe(7);
      // The same keys, at new positions (a repair's replays), are stored again.
      const again = records('t1', 0, 1, 3, { pipelineVersion: 1 }).map((r, i) => ({ ...r, offset: 20 + i, origin: 'replay' as const, replay: 1 }));
      expect((await store.commit({ records: again, partitions: [{ partition: 0, token: 1, upTo: 22 }] })).stored).toBe(3);
      expect(await store.rawStats('t1')).toEqual({ events: 10, distinctKeys: 10 });
      expect(await total(store, 't1')).toBe(10);
      await store.close();
    });

    it('withdraw.by-operator-version-takes-out-only-the-events-that-operator-version-produced', async () => {
      const { store } = await make();
      // Offsets 1–4 by operator version 3 (with the tenant's own version 1), 5–6 by operator version 2, 7–8 by none; t2's 9–10 by 3.
      const batch = [
        ...records('t1', 0, 1, 4, { operatorVersion: 3, pipelineVersion: 1 }),
        ...records('t1', 0, 5, 6, { operatorVersion: 2 }),
        ...records('t1', 0, 7, 8),
        ...records('t2', 0, 9, 10, { operatorVersion: 3 }),
      ];
      await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: 10 }] });
      expect(await store.findEvent('t1', 't1-0-1')).toMatchObject({ operatorVersion: 3, pipelineVersion: 1 });
      expect(await store.findEvent('t1', 't1-0-7')).toMatchObject({ operatorVersion: 0, pipelineVersion: 0 });
      const produced = await store.producedBy('t1', 3, 'operator');
      expect(produced.map((x) => x.offset)).toEqual([1, 2, 3, 4]);
      // The tenant's own version 1 is another column: nothing of it is found as operator version 1.
      expect(await store.producedBy('t1', 1, 'operator')).toEqual([]);
      expect((await store.producedBy('t1', 1)).map((x) => x.offset)).toEqual([1, 2, 3, 4]);
      // Positions of another operator version are left alone; idempotent.
      expect(await store.withdraw('t1', 3, [...produced, { partition: 0, offset: 5, ts: batch[4]!.ts }], 'operator')).toBe(4);
      expect(await store.withdraw('t1', 3, produced, 'operator')).toBe(0);
      expect(await store.producedBy('t1', 3, 'operator')).toEqual([]);
      expect((await store.producedBy('t2', 3, 'operator')).map((x) => x.offset)).toEqual([9, 10]);
      expect(await store.rawStats('t1')).toEqual({ events: 4, distinctKeys: 4 });
      expect(await total(store, 't1')).toBe(4);
      // The same keys, re-derived at new positions by the active operator version, are stored again.
      const again = records('t1', 0, 1, 4, { operatorVersion: 2, pipelineVersion: 1 }).map((r, i) => ({ ...r, offset: 20 + i, origin: 'replay' as const, replay: 1 }));
      expect((await store.commit({ records: again, partitions: [{ partition: 0, token: 1, upTo: 23 }] })).stored).toBe(4);
      expect(await store.rawStats('t1')).toEqual({ events: 8, distinctKeys: 8 });
      expect(await total(store, 't1')).toBe(8);
      expect((await store.producedBy('t1', 2, 'operator')).map((x) => x.offset)).toEqual([5, 6, 20, 21, 22, 23]);
      await store.close();
    });

    it('commit.dedupes-redelivered-batch', async () => {
      const { store } = await make();
      await store.commit({ records: records('t1', 0, 1, 100), partitions: [{ partition: 0, token: 1, upTo: 100 }] });
      const again = await store.commit({ records: records('t1', 0, 1, 100), partitions: [{ partition: 0, token: 1, upTo: 100 }] });
      expect(again).toEqual({ stored: 0, skipped: 100, storedByTenant: new Map() });
      // An overlapping redelivery under a newer lease stores only what is new.
      const overlap = await store.commit({ records: records('t1', 0, 51, 130), partitions: [{ partition: 0, token: 2, upTo: 130 }] });
      expect(overlap).toEqual({ stored: 30, skipped: 50, storedByTenant: new Map([['t1', 30]]) });
      expect(await store.rawStats('t1')).toEqual({ events: 130, distinctKeys: 130 });
      expect(await total(store, 't1')).toBe(130);
      await store.close();
    });

    it('commit.refuses-a-stale-token-and-writes-nothing', async () => {
      const { store } = await make();
      await store.commit({ records: records('t1', 0, 1, 10), partitions: [{ partition: 0, token: 5, upTo: 10 }] });
      const stale = store.commit({
        records: [...records('t1', 0, 11, 20), ...records('t1', 1, 1, 5)],
        partitions: [
          { partition: 0, token: 4, upTo: 20 },
          { partition: 1, token: 1, upTo: 5 },
        ],
      });
      await expect(stale).rejects.toSatisfy(isFenced);
      expect(await store.rawStats('t1')).toEqual({ events: 10, distinctKeys: 10 });
      expect(await store.appliedOffsets()).toEqual(new Map([[0, 10]]));
      await store.close();
    });

    it('capabilities.are-declared-and-hold', async () => {
      const harness = await make();
      const { store } = harness;
      const caps = store.capabilities;
      expect(['transactional-offsets', 'insert-deduplication']).toContain(caps.exactlyOnce);
      expect(typeof caps.transactions).toBe('boolean');
      expect(typeof caps.concurrentWriters).toBe('boolean');
      if (caps.exactlyOnce === 'transactional-offsets') {
        expect(caps.transactions).toBe(true);
        // One transaction: partition 0's rows come first and are valid, partition 1's token is
        // stale; whichever statement finds it, nothing of the batch stays.
        await store.commit({ records: records('t1', 1, 1, 5), partitions: [{ partition: 1, token: 7, upTo: 5 }] });
        const refused = store.commit({
          records: [...records('t1', 0, 1, 50), ...records('t1', 1, 6, 10)],
          partitions: [
            { partition: 0, token: 1, upTo: 50 },
            { partition: 1, token: 6, upTo: 10 },
          ],
        });
        await expect(refused).rejects.toSatisfy(isFenced);
        expect(await store.rawStats('t1')).toEqual({ events: 5, distinctKeys: 5 });
        expect(await store.appliedOffsets()).toEqual(new Map([[1, 5]]));
        expect(await total(store, 't1')).toBe(5);
      }
      if (caps.concurrentWriters) {
        // Two writers on one database, each under the lease of its own partition, at once.
        const other = await harness.another!();
        const [a, b] = await Promise.all([
          store.commit({ records: records('t2', 2, 1, 200), partitions: [{ partition: 2, token: 1, upTo: 200 }] }),
          other.commit({ records: records('t2', 3, 1, 200), partitions: [{ partition: 3, token: 1, upTo: 200 }] }),
        ]);
        expect([a.stored, b.stored]).toEqual([200, 200]);
        expect(await store.rawStats('t2')).toEqual({ events: 400, distinctKeys: 400 });
        expect((await other.appliedOffsets()).get(3)).toBe(200);
        await other.close();
      } else {
        expect(harness.another).toBeUndefined();
      }
      await store.close();
    });

    it('commit.of-no-records-advances-the-applied-offset', async () => {
      const { store } = await make();
      await store.commit({ records: [], partitions: [{ partition: 3, token: 1, upTo: 42 }] });
      expect(await store.appliedOffsets()).toEqual(new Map([[3, 42]]));
      const late = await store.commit({ records: records('t1', 3, 40, 45), partitions: [{ partition: 3, token: 1, upTo: 45 }] });
      expect(late).toEqual({ stored: 3, skipped: 3, storedByTenant: new Map([['t1', 3]]) });
      await store.close();
    });

    it('counts.are-scoped-to-the-tenant-and-type', async () => {
      const { store } = await make();
      await store.commit({
        records: [...records('t1', 0, 1, 10), ...records('t2', 1, 1, 7, { type: 'signup' })],
        partitions: [
          { partition: 0, token: 1, upTo: 10 },
          { partition: 1, token: 1, upTo: 7 },
        ],
      });
      expect(await total(store, 't1')).toBe(10);
      expect(await total(store, 't2')).toBe(7);
      expect(await total(store, 't2', 'checkout')).toBe(0);
      expect(await total(store, 't2', 'signup')).toBe(7);
      expect(await total(store, "t1' OR '1'='1")).toBe(0);
      await store.close();
    });

    it('query.raw-group-by-filters-and-measures-answer-exactly', async () => {
      const { store } = await make();
      const regions = ['eu', 'us', 'ap'];
      const batch = records('t1', 0, 1, 90).map((r) => ({ ...r, properties: JSON.stringify({ amount: r.offset, region: regions[r.offset % 3], note: r.offset % 10 === 0 ? 'big sale' : 'x' }) }));
      await store.commit({ records: [...batch, ...records('t2', 1, 1, 5)], partitions: [{ partition: 0, token: 1, upTo: 90 }, { partition: 1, token: 1, upTo: 5 }] });
      const q = parseQuery(
        {
          from: new Date(T0).toISOString(),
          to: new Date(T0 + 10 * MINUTE).toISOString(),
          measures: ['count', 'sum:amount', 'max:amount', 'p50:amount', 'uniq:amount'],
          group_by: ['properties.region'],
          filters: [{ field: 'properties.amount', op: 'gt', value: 30 }],
        },
        't1',
        T0,
        { maxBuckets: 10_000, maxRows: 10_000 },
      );
      const answer = await store.query(q, 100);
      expect(answer.source).toBe('raw');
      // amounts 31..90: 60 of them, 20 per region.
      const expected = regions.map((region, k) => {
        const xs = Array.from({ length: 60 }, (_, i) => 31 + i).filter((x) => x % 3 === k);
        // One bucket for the whole range (no interval asked), then the group and the measures.
        return [T0, region, 20, xs.reduce((a, b) => a + b, 0), Math.max(...xs), xs[9], 20];
      });
      expect(answer.rows).toEqual(
        [...expected].sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
      );
      const perMinute = parseQuery(
        { from: new Date(T0).toISOString(), to: new Date(T0 + 2 * MINUTE).toISOString(), interval: '1m', measures: ['count'], filters: [{ field: 'properties.note', op: 'contains', value: 'sale' }] },
        't1',
        T0,
        { maxBuckets: 10_000, maxRows: 10_000 },
      );
      // Offsets 10, 20, …, 50 fall in the first minute; 60 to 90 in the next.
      expect((await store.query(perMinute, 100)).rows).toEqual([
        [T0, 5],
        [T0 + MINUTE, 4],
      ]);
      await store.close();
    });

    it('query.finite-numbers-only-clamped-sums-and-quoted-names-answer-alike-on-every-store', async () => {
      const { store } = await make();
      const props: Record<string, unknown>[] = [
        { g: 'nan', amount: 10 },
        { g: 'nan', amount: 'NaN' },
        { g: 'nan', amount: 5 },
        { g: 'nan', amount: '-inf' },
        { g: 'nan', amount: 'Infinity' },
        { g: 'nan', amount: 'abc' },
        { g: 'over', amount: 1e308 },
        { g: 'over', amount: 1e308 },
        { g: 'under', amount: -1e308 },
        { g: 'under', amount: -1e308 },
        { g: 'dots', 'price.eur': 5, price: { eur: 100 }, 'a"b': 2 },
      ];
      const batch = records('t1', 0, 1, props.length).map((r, i) => ({ ...r, properties: JSON.stringify(props[i]) }));
      await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: props.length }] });
      const ask = async (measures: string[], group = 'properties.g') =>
        (await store.query(parseQuery({ from: new Date(T0).toISOString(), to: new Date(T0 + MINUTE).toISOString(), interval: null, measures, group_by: [group] }, 't1', T0, { maxBuckets: 10_000, maxRows: 10_000 }), 100)).rows;
      // An average is the (clamped) sum over the count: past the largest double it is that over n.
      expect(await ask(['sum:amount', 'avg:amount', 'max:amount'])).toEqual([
        ['dots', null, null, null],
        ['nan', 15, 7.5, 10],
        ['over', 1.7976931348623157e308, 1.7976931348623157e308 / 2, 1e308],
        ['under', -1.7976931348623157e308, -1.7976931348623157e308 / 2, -1e308],
      ]);
      expect((await ask(['sum:price.eur', 'sum:properties["price.eur"]', 'sum:properties.price.eur', 'sum:properties["a\\"b"]'])).find((r) => r[0] === 'dots')).toEqual(['dots', 5, 5, 100, 2]);
      await store.close();
    });

    it('query.a-numeric-name-reads-a-member-never-an-array-element-beside-star-and-control-names', async () => {
      // The query language reads no array element (core/query.ts jsonPath): a numeric name is a
      // member's name, whatever the other names of the path ("*" and a control character are
      // read through JSON Pointers on DuckDB, where a numeric segment indexes an array).
      const { store } = await make();
      const props: Record<string, unknown>[] = [
        { g: 'arrays', '*': ['a0', 'a1'], tags: ['t0', 't1'], 'n\nl': ['c0'], o: { '*': ['s0'] } },
        { g: 'objects', '*': { '0': 'm0' }, tags: { '0': 'u0' }, 'n\nl': { '0': 'd0' }, o: { '*': { '0': 'p0' } } },
      ];
      const batch = records('t1', 0, 1, props.length).map((r, i) => ({ ...r, properties: JSON.stringify(props[i]) }));
      await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: props.length }] });
      const ask = async (group: string) =>
        (await store.query(parseQuery({ from: new Date(T0).toISOString(), to: new Date(T0 + MINUTE).toISOString(), interval: null, measures: ['count'], group_by: ['properties.g', group], order_by: 'properties.g' }, 't1', T0, { maxBuckets: 10_000, maxRows: 10_000 }), 100)).rows;
      const answers = Object.fromEntries(await Promise.all(['properties["*"]["0"]', 'properties.tags["0"]', 'properties["n\\nl"]["0"]', 'properties.o["*"]["0"]'].map(async (f) => [f, await ask(f)])));
      expect(answers).toEqual({
        'properties["*"]["0"]': [['arrays', null, 1], ['objects', 'm0', 1]],
        'properties.tags["0"]': [['arrays', null, 1], ['objects', 'u0', 1]],
        'properties["n\\nl"]["0"]': [['arrays', null, 1], ['objects', 'd0', 1]],
        'properties.o["*"]["0"]': [['arrays', null, 1], ['objects', 'p0', 1]],
      });
      await store.close();
    });

    it('search-find-recent-and-stored-by-minute-read-the-raw-rows-of-one-tenant', async () => {
      const { store } = await make();
      const t1 = records('t1', 0, 1, 30);
      await store.commit({ records: [...t1, ...records('t2', 1, 1, 3)], partitions: [{ partition: 0, token: 1, upTo: 30 }, { partition: 1, token: 1, upTo: 3 }] });
      const page1 = await store.searchEvents({ tenant: 't1', from: T0, to: T0 + 10 * MINUTE, limit: 20 });
      expect(page1.map((e) => e.offset)).toEqual(Array.from({ length: 20 }, (_, i) => 30 - i));
      const last = page1[page1.length - 1]!;
      const page2 = await store.searchEvents({ tenant: 't1', from: T0, to: T0 + 10 * MINUTE, limit: 20, before: { ts: last.ts, partition: last.partition, offset: last.offset } });
      expect(page2.map((e) => e.offset)).toEqual(Array.from({ length: 10 }, (_, i) => 10 - i));
      const found = await store.findEvent('t1', 't1-0-7');
      expect(found).toMatchObject({ type: 'checkout', idempotencyKey: 't1-0-7', partition: 0, offset: 7, origin: 'live' });
      expect(JSON.parse(found!.properties)).toEqual({ amount: 7 });
      expect(await store.findEvent('t2', 't1-0-7')).toBeNull();
      expect((await store.recent('t1', 'checkout', 3)).map((p) => JSON.parse(p) as unknown)).toHaveLength(3);
      // The receive time of what was committed (records made now could fall in the next minute).
      const received = t1[0]!.receivedAt;
      const minute = received - (received % MINUTE);
      const byMinute = await store.storedByMinute(minute, minute + 2 * MINUTE);
      expect(byMinute.filter((m) => m.tenant === 't1').reduce((s, m) => s + m.n, 0)).toBe(30);
      await store.close();
    });

    // Starting a view's build counts what it will read (its total, for progress): the tenant's
    // events that pass the view's type and filters, read from JSON. That count once ran with
    // every commit held back (seconds over a tenant's 10M events); it now runs after the
    // build's row is written, holding nothing back.
    it("backfill.a-build's-start-counts-its-total-without-holding-another-tenant's-commit", async () => {
      const { store } = await make();
      const EVENTS = 100_000;
      for (let o = 1; o <= EVENTS; o += 10_000) await store.commit({ records: records('t1', 0, o, o + 9_999), partitions: [{ partition: 0, token: 1, upTo: o + 9_999 }] });
      // Twenty filters that each read the properties: the count reads 2M JSON paths.
      const filters = Array.from({ length: 20 }, (_, i) => ({ field: 'properties.amount', op: 'neq', value: -1 - i }));
      await store.views.put('t1', parseView('amounts', { event: 'checkout', filters, dimensions: ['key'], measures: ['count'], grain: '1h' }), 'api');
      const order: string[] = [];
      const t0 = performance.now();
      const ms = { start: 0, commit: 0 };
      const start = store.backfills.start({ view: 'amounts', tenant: 't1', from: null, to: null, rate: 0 }).then((s) => {
        order.push('build started');
        ms.start = performance.now() - t0;
        return s;
      });
      // Asked for just after the start: it waits for the start's row, not for its count.
      const other = store.commit({ records: records('t2', 1, 1, 10), partitions: [{ partition: 1, token: 1, upTo: 10 }] }).then(() => {
        order.push("t2's commit done");
        ms.commit = performance.now() - t0;
      });
      const [state] = await Promise.all([start, other]);
      console.log(`${name}: a build's start over ${EVENTS} events answered in ${ms.start.toFixed(0)} ms; another tenant's commit asked for meanwhile done in ${ms.commit.toFixed(0)} ms`);
      expect(order).toEqual(["t2's commit done", 'build started']);
      expect(state).toMatchObject({ status: 'running', total: EVENTS, done: 0 });
      for (let s = state; s.status === 'running'; ) s = await store.backfills.step(state.id, 50_000);
      expect((await store.backfills.list('t1')).find((b) => b.id === state.id)).toMatchObject({ status: 'done', done: EVENTS, total: EVENTS });
      await store.close();
    }, 120_000);

    // A chunk spans the time that holds about the events asked for, not whole buckets: twenty
    // thousand events within two seconds of one hour were once built in one chunk whatever
    // its size (a burst that another tenant's commits waited behind on DuckDB).
    it('backfill.a-chunk-reads-about-the-events-asked-for-when-they-crowd-one-bucket', async () => {
      const { store } = await make();
      const EVENTS = 20_000;
      const crowded = records('t1', 0, 1, EVENTS).map((r, i) => ({ ...r, ts: T0 + Math.floor(i / 10) }));
      for (let o = 0; o < EVENTS; o += 5_000) await store.commit({ records: crowded.slice(o, o + 5_000), partitions: [{ partition: 0, token: 1, upTo: o + 5_000 }] });
      await store.views.put('t1', parseView('amounts', { event: 'checkout', dimensions: ['key'], measures: ['count'], grain: '1h' }), 'api');
      let s = await store.backfills.start({ view: 'amounts', tenant: 't1', from: null, to: null, rate: 0 });
      const reads: number[] = [];
      while (s.status === 'running') {
        const before = s.done;
        s = await store.backfills.step(s.id, 2_000);
        reads.push(s.done - before);
      }
      expect(s).toMatchObject({ status: 'done', done: EVENTS });
      expect(reads.filter((n) => n > 0).length).toBeGreaterThanOrEqual(9);
      expect(Math.max(...reads)).toBeLessThanOrEqual(3_000);
      await store.close();
    }, 120_000);

    it('durability.rows-and-applied-offsets-survive-a-reopen', async () => {
      const h = await make();
      await h.store.commit({ records: records('t1', 0, 1, 25), partitions: [{ partition: 0, token: 3, upTo: 25 }] });
      const store = await h.reopen();
      expect(await store.rawStats('t1')).toEqual({ events: 25, distinctKeys: 25 });
      expect(await store.appliedOffsets()).toEqual(new Map([[0, 25]]));
      expect((await store.commit({ records: records('t1', 0, 1, 25), partitions: [{ partition: 0, token: 3, upTo: 25 }] })).stored).toBe(0);
      await expect(store.commit({ records: [], partitions: [{ partition: 0, token: 2, upTo: 30 }] })).rejects.toSatisfy(isFenced);
      await store.close();
    });
  });
}
