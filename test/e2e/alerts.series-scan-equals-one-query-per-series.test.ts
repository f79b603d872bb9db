import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { PostgresStore } from '../../src/backends/postgres/store.js';
import { parseFilters, parseMeasure, type Measure, type QuerySpec } from '../../src/core/query.js';
import type { LogRecord } from '../../src/core/types.js';
import type { SeriesScanQuery, Store } from '../../src/ports/store.js';
import { POSTGRES_URL, postgresAvailable, uniqueName, dropSchema } from '../helpers/services.js';

/**
 * One scan of a tenant's events for many series (Store.seriesScan, DuckDB and PostgreSQL) counts per minute
 * exactly what one `query` per series counts (interval 1m, raw events, the same receipt
 * range), over random filters of every operator on fields with numbers, numeric text,
 * non-numeric text, booleans, nulls, nested objects and missing values, several event types,
 * series with no event type, and sums, minima and maxima as second columns.
 */

const M = 60_000;
const T0 = Date.UTC(2026, 10, 20, 12, 0);

/** A small deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STATUS = [200, 200, 200, 201, 404, 500, 503, '503', 'oops', null, true, 'NaN', '1e400'];
const ROUTES = ['/pay', '/cart', '/a.b', 'x y', '', null];
const TYPES = ['http_request', 'job', 'click'];

/** DuckDB always, PostgreSQL when it is there (always in CI). */
const stores: { name: string; open(dir: string): Store; drop?(): Promise<void> }[] = [
  { name: 'duckdb', open: (dir) => new DuckdbStore({ file: path.join(dir, 'store.duckdb'), queryTimeoutMs: 60_000 }) },
];
if (await postgresAvailable()) {
  const schema = uniqueName('sluice_test');
  stores.push({
    name: 'postgres',
    open: () => new PostgresStore({ url: `${POSTGRES_URL}?schema=${schema}`, queryTimeoutMs: 60_000 }),
    drop: () => dropSchema(schema),
  });
}

describe.each(stores)('alerts: one scan for many series: $name', (backend) => {
  let dir: string;
  let store: Store;
  const random = rng(21);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-series-scan-'));
    store = backend.open(dir);
    await store.connect();
    const records: LogRecord[] = [];
    for (let i = 0; i < 6_000; i++) {
      const props: Record<string, unknown> = {};
      if (random() < 0.9) props.status = pick(STATUS);
      if (random() < 0.9) props.route = pick(ROUTES);
      if (random() < 0.7) props.latency = random() < 0.9 ? Math.round(random() * 2000) / 10 : pick(['slow', null, '12.5']);
      if (random() < 0.5) props.user = { tier: pick(['free', 'pro', 7]) };
      const ts = T0 + Math.floor(random() * 90) * M + Math.floor(random() * M);
      records.push({
        tenant: random() < 0.9 ? 'acme' : 'other',
        type: pick(TYPES),
        key: `k${i % 37}`,
        idempotencyKey: `e-${i}`,
        ts,
        // Most received a second after their event time, some late.
        receivedAt: ts + (random() < 0.8 ? 1_000 : Math.floor(random() * 60) * M),
        partition: 0,
        origin: 'live',
        properties: JSON.stringify(props),
        context: '{}',
        offset: i + 1,
        attempt: 1,
      });
    }
    await store.commit({ records, partitions: [{ partition: 0, token: 1, upTo: records.length }] });
  });
  afterAll(async () => {
    await store.close();
    await backend.drop?.();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function randomFilter(): unknown {
    const field = pick(['properties.status', 'properties.route', 'properties.latency', 'properties.user.tier', 'key', 'properties.missing']);
    const value = () => pick<unknown>([200, 500, 503, '503', '/pay', 'x y', 'pro', 7, 100, 12.5, 'k3', true, 'oops']);
    const op = pick(['eq', 'neq', 'in', 'nin', 'gt', 'gte', 'lt', 'lte', 'contains', 'exists']);
    if (op === 'in' || op === 'nin') return { field, op, value: [value(), value()] };
    if (op === 'exists') return { field, op, value: random() < 0.5 };
    if (op === 'contains') return { field, op, value: pick(['/', 'a', 'ro', '0']) };
    if (op === 'eq' || op === 'neq') return { field, op, value: value() };
    return { field, op, value: pick<unknown>([150, 500, 12.5, '/b', 'p']) };
  }

  function randomSeries(): SeriesScanQuery {
    const filters = parseFilters(Array.from({ length: Math.floor(random() * 3) }, randomFilter));
    const measure: Measure | null = random() < 0.3 ? parseMeasure(`${pick(['sum', 'min', 'max'])}:${pick(['latency', 'status'])}`, 'measure') : null;
    return { event: random() < 0.2 ? null : pick(TYPES), filters, measure };
  }

  it('series-scan.per-minute-counts-and-values-equal-one-query-per-series-over-random-filters', async () => {
    for (const [receivedFrom, receivedTo] of [
      [null, T0 + 200 * M],
      [T0 + 30 * M, T0 + 50 * M],
    ] as const) {
      const series = Array.from({ length: 60 }, randomSeries);
      // Two series repeated: each answers on its own.
      series.push(series[0]!, series[1]!);
      const from = T0 + 10 * M;
      const to = T0 + 80 * M;
      const answer = await store.seriesScan!({ tenant: 'acme', from, to, received: { from: receivedFrom, to: receivedTo }, series });
      let nonEmpty = 0;
      for (const [i, s] of series.entries()) {
        // The scan's rows of this series, added up per minute.
        const mine = new Map<number, [number, number | null]>();
        for (let r = 0; r < answer.series.length; r++) {
          if (answer.series[r] !== i) continue;
          const m = answer.minutes[r]!;
          const v = Number.isNaN(answer.values[r]!) ? null : answer.values[r]!;
          const had = mine.get(m);
          const merged = !had ? v : had[1] === null ? v : v === null ? had[1] : s.measure!.kind === 'sum' ? Math.min(Math.max(had[1] + v, -Number.MAX_VALUE), Number.MAX_VALUE) : s.measure!.kind === 'min' ? Math.min(had[1], v) : Math.max(had[1], v);
          mine.set(m, [(had?.[0] ?? 0) + answer.counts[r]!, merged]);
        }
        const q: QuerySpec = {
          tenant: 'acme',
          event: s.event,
          from,
          to,
          interval: '1m',
          measures: [{ name: 'count', kind: 'count', field: null }, ...(s.measure ? [s.measure] : [])],
          filters: s.filters,
          groupBy: [],
          orderBy: [],
          limit: null,
          source: 'raw',
          received: { from: receivedFrom, to: receivedTo },
        };
        const theirs = (await store.query(q, 100_000)).rows;
        if (theirs.length > 0) nonEmpty++;
        const where = `series ${i}: ${JSON.stringify({ event: s.event, filters: s.filters.map((f) => [f.field.name, f.op, f.value]), measure: s.measure?.name })}`;
        expect([...mine.keys()].sort((a, b) => a - b), where).toEqual(theirs.map((r) => Number(r[0])));
        for (const row of theirs) {
          const [count, value] = mine.get(Number(row[0]))!;
          expect(count, where).toBe(Number(row[1]));
          if (s.measure) {
            if (row[2] === null) expect(value, where).toBeNull();
            // Sums of doubles added in another order may differ in their last bits.
            else expect(value!, where).toBeCloseTo(Number(row[2]), 6);
          }
        }
      }
      // The random filters select something often enough for the comparison to mean something.
      expect(nonEmpty).toBeGreaterThan(series.length / 4);
    }
  });
});
