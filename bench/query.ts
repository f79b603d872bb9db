import { DuckDBInstance } from '@duckdb/node-api';
import path from 'node:path';
import { DuckdbStore } from '../src/backends/duckdb/store.js';
import type { LogRecord } from '../src/core/types.js';
import { parseQuery, parseView, type QuerySpec } from '../src/core/query.js';
import { percentile } from './load.js';

/**
 * The read path at scale: N events (10M by default) committed to a DuckDB store through
 * the store's own commit, a view built by backfill, then:
 *   - a 24-hour per-minute timeseries with one group-by, from the view, beside the same
 *     query from raw events (the ratio is what the view buys);
 *   - ad-hoc group-bys over every raw event, beside the same aggregation written by hand
 *     in SQL (the ratio is what the query compiler costs).
 * Latencies are of Store.query (the compiled SQL on DuckDB), p50 and p95 of several runs.
 */

const T0 = Date.UTC(2026, 10, 23, 0, 0);
const DAY = 86_400_000;
const TYPES = ['checkout', 'page_view', 'signup', 'refund', 'search'];
const REGIONS = ['eu-west', 'eu-north', 'us-east', 'us-west', 'apac', 'latam', 'africa', 'me', 'ca', 'au'];

function records(from: number, count: number): LogRecord[] {
  const out = new Array<LogRecord>(count);
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const n = from + i;
    out[i] = {
      tenant: 'bench',
      type: TYPES[n % TYPES.length]!,
      key: `user-${(n * 7919) % 200_000}`,
      idempotencyKey: `q-${n}`,
      ts: T0 + ((n * 104_729) % DAY),
      receivedAt: now,
      partition: 0,
      origin: 'live',
      properties: `{"region":"${REGIONS[(n >> 3) % REGIONS.length]}","amount":${(n % 10_000) / 100},"latency_ms":${1 + ((n * 31) % 2000)}}`,
      context: '{"app":"web"}',
      offset: n + 1,
      attempt: 1,
    };
  }
  return out;
}

async function timed(runs: number, fn: () => Promise<unknown>): Promise<{ p50: number; p95: number }> {
  await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return { p50: percentile(ms, 0.5), p95: percentile(ms, 0.95) };
}

export interface QueryBench {
  events: number;
  loadRate: number;
  backfillRate: number;
  view: { p50: number; p95: number; rows: number; source: string };
  rawSeries: { p50: number; p95: number; source: string };
  rawGroupBy: { p50: number; p95: number };
  handGroupBy: { p50: number; p95: number };
  rawColumnGroupBy: { p50: number; p95: number };
  handColumnGroupBy: { p50: number; p95: number };
}

export async function queryBench(dir: string, events: number, say: (s: string) => void): Promise<QueryBench> {
  const store = new DuckdbStore({ file: path.join(dir, 'query.duckdb'), queryTimeoutMs: 120_000 });
  await store.connect();
  try {
    const step = 100_000;
    let t = performance.now();
    for (let from = 0; from < events; from += step) {
      const batch = records(from, Math.min(step, events - from));
      await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: from + batch.length }] });
      if ((from / step) % 10 === 0) say(`query: loading ${from.toLocaleString('en-US')} / ${events.toLocaleString('en-US')} events through Store.commit`);
    }
    const loadRate = events / ((performance.now() - t) / 1000);

    say('query: declaring a view (checkout by region, per minute) and building it by backfill');
    t = performance.now();
    await store.views.put('bench', parseView('checkout_by_region', { event: 'checkout', dimensions: ['properties.region'], measures: ['count', 'sum:amount', 'uniq:key', 'p95:latency_ms'], grain: '1m' }), 'api');
    const b = await store.backfills.start({ view: 'checkout_by_region', tenant: 'bench', from: null, to: null, rate: 0 });
    for (let s = b; s.status === 'running'; ) s = await store.backfills.step(b.id, 2_000_000);
    const backfillRate = events / TYPES.length / ((performance.now() - t) / 1000);

    const spec = (body: Record<string, unknown>): QuerySpec =>
      parseQuery({ from: new Date(T0).toISOString(), to: new Date(T0 + DAY).toISOString(), ...body }, 'bench', Date.now(), { maxBuckets: 100_000, maxRows: 1_000_000 });
    const series = spec({ event: 'checkout', interval: '1m', group_by: ['properties.region'], measures: ['count'] });
    say('query: 24 h per-minute timeseries by region, from the view and from raw events');
    let viewAnswer = await store.query(series, 1_000_000);
    const view = await timed(30, async () => (viewAnswer = await store.query(series, 1_000_000)));
    const rawSeriesSpec = { ...series, source: 'raw' as const };
    const rawAnswer = await store.query(rawSeriesSpec, 1_000_000);
    const rawSeries = await timed(5, () => store.query(rawSeriesSpec, 1_000_000));

    say('query: ad-hoc group-bys over every raw event, compiled and by hand');
    const adhoc = spec({ interval: null, group_by: ['properties.region'], measures: ['count', 'sum:amount'], source: 'raw' });
    const rawGroupBy = await timed(5, () => store.query(adhoc, 1_000_000));
    const byType = spec({ interval: null, group_by: ['type'], measures: ['count'], source: 'raw' });
    const rawColumnGroupBy = await timed(5, () => store.query(byType, 1_000_000));
    await store.close();
    // The baselines: the same aggregations written by hand, on a connection of their own.
    const instance = await DuckDBInstance.create(path.join(dir, 'query.duckdb'));
    const c = await instance.connect();
    const hand = `SELECT json_extract_string(properties, '$.region') AS r, count(*), sum(TRY_CAST(json_extract_string(properties, '$.amount') AS DOUBLE)) FROM events WHERE tenant = 'bench' GROUP BY r`;
    const handGroupBy = await timed(5, () => c.runAndReadAll(hand));
    const handColumnGroupBy = await timed(5, () => c.runAndReadAll(`SELECT type, count(*) FROM events WHERE tenant = 'bench' GROUP BY type`));
    c.closeSync();
    instance.closeSync();
    if (rawAnswer.rows.length !== viewAnswer.rows.length) throw new Error(`the view answered ${viewAnswer.rows.length} rows, raw events ${rawAnswer.rows.length}`);
    return {
      events,
      loadRate,
      backfillRate,
      view: { ...view, rows: viewAnswer.rows.length, source: viewAnswer.source },
      rawSeries: { ...rawSeries, source: rawAnswer.source },
      rawGroupBy,
      handGroupBy,
      rawColumnGroupBy,
      handColumnGroupBy,
    };
  } finally {
    await store.close();
  }
}
