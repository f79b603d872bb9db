import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluatePass } from '../../src/alerts/evaluator.js';
import { SeriesCache } from '../../src/alerts/series-cache.js';
import { storeSource, type AlertSource } from '../../src/alerts/source.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { PostgresStore } from '../../src/backends/postgres/store.js';
import type { Store } from '../../src/ports/store.js';
import { POSTGRES_URL, postgresAvailable, uniqueName, dropSchema } from '../helpers/services.js';
import { ManualClock } from '../../src/core/clock.js';
import type { LogRecord } from '../../src/core/types.js';
import type { Log } from '../../src/ports/log.js';
import type { StoreReader } from '../../src/ports/reader.js';

/**
 * The evaluation's series kept between passes give the same states and explanations as
 * reading every window again at each pass, over a real DuckDB store and a real PostgreSQL one: with events arriving
 * late (event times an hour before their receipt), a watermark that moves backwards, rules
 * that share a query, a changed rule and a deleted one; with each pass's reads in one store
 * scan (Store.seriesScan) or one query per series.
 */

const M = 60_000;
const T0 = Date.UTC(2026, 10, 20, 12, 0);

/** DuckDB always, PostgreSQL when it is there (always in CI). */
const stores: { name: string; open(dir: string): Store; drop?(): Promise<void> }[] = [
  { name: 'duckdb', open: (dir) => new DuckdbStore({ file: path.join(dir, 'store.duckdb'), queryTimeoutMs: 30_000 }) },
];
if (await postgresAvailable()) {
  const schema = uniqueName('sluice_test');
  stores.push({
    name: 'postgres',
    open: () => new PostgresStore({ url: `${POSTGRES_URL}?schema=${schema}`, queryTimeoutMs: 30_000 }),
    drop: () => dropSchema(schema),
  });
}

describe.each(stores)('alerts: incremental per-minute series: $name', (backend) => {
  let dir: string;
  let store: Store;
  let offset = 0;
  let watermark = T0;

  const reader = {
    query: async (q: Parameters<StoreReader['query']>[0], cap: number) => ({ ...(await store.query(q, cap)), applied: [] }),
    counts: async () => ({ rows: [], applied: new Map() }),
    conservation: async () => ({ checkedAt: null, settledUntil: null, from: null, unbalanced: [], gapByTenant: [] }),
  } as unknown as StoreReader;
  const log = { oldestUnapplied: async () => watermark } as unknown as Log;

  /** `n` events received at `receivedAt` with event times spread over [from, from + span), every `badEvery`-th a 503. */
  async function send(receivedAt: number, from: number, span: number, n: number, badEvery: number, route = '/pay'): Promise<void> {
    const records: LogRecord[] = [];
    for (let i = 0; i < n; i++) {
      offset++;
      records.push({
        tenant: 'acme',
        type: 'http_request',
        key: `u${i}`,
        idempotencyKey: `e-${offset}`,
        ts: from + Math.floor((i / n) * span),
        receivedAt,
        partition: 0,
        origin: 'live',
        properties: JSON.stringify({ status: i % badEvery === 0 ? 503 : 200, route }),
        context: '{}',
        offset,
        attempt: 1,
      });
    }
    await store.commit({ records, partitions: [{ partition: 0, token: 1, upTo: offset }] });
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-alerts-incr-'));
    store = backend.open(dir);
    await store.connect();
  });
  afterAll(async () => {
    await store.close();
    await backend.drop?.();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('series-kept-between-passes.equal-reading-every-window-again-with-late-data-and-a-watermark-moving-back', async () => {
    const clock = new ManualClock(T0);
    const cache = new SeriesCache({ now: () => clock.now(), idleMs: 5 * M });
    // Two catalogs, one per way of reading, fed the same rules.
    const cached = new SqliteCatalog(path.join(dir, 'cached.db'));
    const direct = new SqliteCatalog(path.join(dir, 'direct.db'));
    // The cached source's full and new reads of a pass in one store scan (Store.seriesScan), or one query per series.
    const scanCache = new SeriesCache({ now: () => clock.now(), idleMs: 5 * M });
    const scanned = new SqliteCatalog(path.join(dir, 'scanned.db'));
    const scanReader = { ...reader, seriesScan: (scan: Parameters<StoreReader['seriesScan']>[0]) => store.seriesScan!(scan) } as unknown as StoreReader;
    const sources: [SqliteCatalog, AlertSource][] = [
      [cached, storeSource(reader, log, () => clock.now(), { cache })],
      [direct, storeSource(reader, log, () => clock.now())],
      [scanned, storeSource(scanReader, log, () => clock.now(), { cache: scanCache })],
    ];
    const slo = (bad: number, route = '/pay') => ({
      kind: 'slo',
      objective: 0.99,
      min_events: 10,
      total: { event: 'http_request', filters: [{ field: 'properties.route', op: 'eq', value: route }] },
      bad: { event: 'http_request', filters: [{ field: 'properties.route', op: 'eq', value: route }, { field: 'properties.status', op: 'gte', value: bad }] },
      windows: [{ severity: 'page', long: '30m', short: '5m', factor: 10 }],
    });
    const rules: [string, unknown][] = [
      ['errors', slo(500)],
      // The same total as "errors": one series for both.
      ['unavailable', slo(503)],
      ['good-side', { ...slo(500), bad: undefined, good: { event: 'http_request', filters: [{ field: 'properties.route', op: 'eq', value: '/pay' }, { field: 'properties.status', op: 'lt', value: 500 }] } }],
      ['volume', { kind: 'threshold', query: { event: 'http_request', filters: [{ field: 'properties.route', op: 'eq', value: '/pay' }], measures: ['count'] }, window: '10m', condition: { op: 'lt', value: 50 }, for: '2m' }],
      ['worst-status', { kind: 'threshold', query: { event: 'http_request', filters: [], measures: ['max:properties.status'] }, window: '5m', condition: { op: 'gte', value: 500 }, severity: 'ticket' }],
    ];
    for (const [catalog] of sources) for (const [name, body] of rules) await catalog.alerts.putRule('acme', name, JSON.parse(JSON.stringify(body)), 'test');
    const pass = async () => {
      const out = [];
      for (const [catalog, source] of sources) {
        const r = await evaluatePass({ store: catalog.alerts, source, clock, tenants: async () => ['acme'] });
        expect(r.errors).toBe(0);
        out.push({ transitions: r.transitions.map((t) => ({ ...t, verdict: t.verdict })), states: (await catalog.alerts.states('acme')).filter((s) => !s.rule.startsWith('sluice_')) });
      }
      expect(out[1]).toEqual(out[0]);
      expect(out[2]).toEqual(out[0]);
      return out[0]!;
    };

    // An hour of healthy traffic, received as it happens (a minute behind).
    for (let m = 0; m < 40; m++) {
      await send(T0 + (m + 1) * M, T0 + m * M, M, 30, 1000);
      watermark = T0 + (m + 1) * M + 5_000;
      await clock.advanceTo(watermark);
      await pass();
    }
    const fullReads = cache.stats.fullReads;
    // Late arrivals: a batch received now with event times 20-30 minutes old, 40 % bad.
    await send(T0 + 41 * M, T0 + 10 * M, 10 * M, 200, 2);
    watermark = T0 + 41 * M + 5_000;
    await clock.advanceTo(watermark);
    const batches = scanCache.stats.batches;
    let r = await pass();
    // Read incrementally: no series was read again in full.
    expect(cache.stats.fullReads).toBe(fullReads);
    expect(cache.stats.deltaReads).toBeGreaterThan(0);
    // The five series' new receipts in one scan.
    expect(scanCache.stats.batches).toBe(batches + 1);
    expect(scanCache.stats.fullReads).toBe(fullReads);
    // Four distinct queries: the /pay total (shared by three rules), its 500 and 503 sides, its good side, the max of statuses.
    expect(cache.size).toBe(5);
    // The late 40 % bad in the 30 m window: the 5 m window is clean, so no page, but the numbers show it.
    expect(r.states.find((s) => s.rule === 'errors')!.body).toMatchObject({ verdict: { windows: [{ window: '30m', bad: expect.any(Number) }, { window: '5m' }] } });
    expect((r.states.find((s) => s.rule === 'errors')!.body as { verdict: { windows: { bad: number }[] } }).verdict.windows[0]!.bad).toBeGreaterThanOrEqual(100);

    // Recent errors: both windows burn, it fires.
    await send(T0 + 42 * M, T0 + 41 * M, M, 100, 2);
    watermark = T0 + 42 * M + 5_000;
    await clock.advanceTo(watermark);
    r = await pass();
    expect(r.transitions.map((t) => `${t.rule}:${t.to}`)).toContain('errors:firing');

    // The watermark moves backwards (a lagging store): the series are read again in full, and still agree.
    const before = cache.stats.fullReads;
    watermark = T0 + 41 * M + 30_000;
    await clock.advanceTo(T0 + 43 * M);
    await pass();
    await send(T0 + 43 * M, T0 + 42 * M, M, 30, 1000);
    watermark = T0 + 43 * M + 5_000;
    await clock.advanceTo(T0 + 44 * M);
    await pass();
    expect(cache.stats.fullReads).toBe(before + 5);
    expect(scanCache.stats.fullReads).toBe(before + 5);

    // A changed rule reads its new query; the deleted rule's series go once idle.
    for (const [catalog] of sources) {
      await catalog.alerts.putRule('acme', 'unavailable', slo(503, '/cart'), 'test');
      await catalog.alerts.deleteRule('acme', 'worst-status', 'test');
    }
    for (let m = 45; m < 52; m++) {
      await send(T0 + m * M, T0 + (m - 1) * M, M, 30, 1000, m % 2 ? '/pay' : '/cart');
      watermark = T0 + m * M + 5_000;
      await clock.advanceTo(watermark);
      await pass();
    }
    // /pay total and its 500 side, its good side, and /cart's total and 503 side.
    expect(cache.size).toBe(5);
    await cached.close();
    await direct.close();
    await scanned.close();
  });
});
