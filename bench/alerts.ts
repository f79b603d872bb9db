import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { evaluatePass } from '../src/alerts/evaluator.js';
import { storeSource } from '../src/alerts/source.js';
import { SeriesCache } from '../src/alerts/series-cache.js';
import { SqliteCatalog } from '../src/backends/sqlite/catalog.js';
import { DuckdbStore } from '../src/backends/duckdb/store.js';
import { PostgresStore } from '../src/backends/postgres/store.js';
import { ManualClock } from '../src/core/clock.js';
import { parseFilters } from '../src/core/query.js';
import type { LogRecord } from '../src/core/types.js';
import type { Log } from '../src/ports/log.js';
import type { Store } from '../src/ports/store.js';
import type { StoreReader } from '../src/ports/reader.js';
import { webhookLatency } from './alerts-latency.js';
import { percentile } from './load.js';

/**
 * Alert evaluation cost: N events (1M by default) over 3 days of one tenant in a DuckDB store,
 * each received a second after its event time, R SLO rules (20 by default) with the default
 * four burn-rate conditions, on 200 routes (rules share the total of their route) and five bad
 * filters (every rule's bad side is its own query). Passes a minute apart, each after a
 * minute's new events, of:
 * - the evaluation that keeps the series between passes (first pass: every series read in
 *   full, in one store scan; steady passes: only what arrived since, in one scan);
 * - the same, with each series read by its own query (the store's per-query path, as on
 *   PostgreSQL), on the first `--direct-rules` rules: the first pass's baseline;
 * - the evaluation that reads every window again, on the first `--direct-rules` rules (20),
 *   per rule: the cost before series were kept;
 * - the baseline of the same per-minute count queries issued directly (two per rule, 3 days).
 * Per rule and per pass, p50 of the steady passes.
 *
 *   node dist-bench/bench/alerts.js [--events 1000000] [--rules 20] [--direct-rules 20] [--passes 3] [--store duckdb|postgres]
 *
 * `--store postgres` reads a PostgreSQL store (SLUICE_TEST_POSTGRES, default
 * postgres://postgres@127.0.0.1:5432/test) in a schema of its own, dropped at the end.
 *
 * With `--latency`, instead: the time from the watermark passing bad events to the webhook
 * call on a real `sluice up` (alerts-latency.ts), median of `--runs` (5), at an evaluation
 * interval of `--interval` ms (30000, the default of alerts.evaluateIntervalMs).
 *
 *   node dist-bench/bench/alerts.js --latency [--runs 5] [--interval 30000]
 */

const MIN = 60_000;
const DAY = 86_400_000;
const END = Date.UTC(2026, 10, 26, 0, 0);
const START = END - 3 * DAY;

function records(from: number, count: number, events: number): LogRecord[] {
  const out = new Array<LogRecord>(count);
  for (let i = 0; i < count; i++) {
    const n = from + i;
    out[i] = {
      tenant: 'bench',
      type: 'http_request',
      key: `user-${n % 5000}`,
      idempotencyKey: `a-${n}`,
      ts: START + Math.floor((n / events) * 3 * DAY),
      receivedAt: START + Math.floor((n / events) * 3 * DAY) + 1_000,
      partition: 0,
      origin: 'live',
      properties: `{"status":${n % 50 === 0 ? 503 : n % 70 === 0 ? 500 : 200},"route":"/r${n % 200}"}`,
      context: '{}',
      offset: n + 1,
      attempt: 1,
    };
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '1000000' },
      rules: { type: 'string', default: '20' },
      'direct-rules': { type: 'string', default: '20' },
      passes: { type: 'string', default: '3' },
      latency: { type: 'boolean', default: false },
      runs: { type: 'string', default: '5' },
      interval: { type: 'string', default: '30000' },
      store: { type: 'string', default: 'duckdb' },
    },
  });
  if (values.latency) {
    const f = await webhookLatency({ runs: Number(values.runs), intervalMs: Number(values.interval) });
    console.log(
      `watermark -> webhook: median ${(f.medianMs / 1000).toFixed(2)} s over ${f.runsMs.length} runs (min ${(Math.min(...f.runsMs) / 1000).toFixed(2)} s, max ${(Math.max(...f.runsMs) / 1000).toFixed(2)} s); evaluation interval ${(f.intervalMs / 1000).toFixed(0)} s, median / interval ${(f.medianMs / f.intervalMs).toFixed(2)} (group_wait 0s, delivery every 1 s)`,
    );
    return;
  }
  const events = Number(values.events);
  const rules = Number(values.rules);
  const directRules = Math.min(rules, Number(values['direct-rules']));
  const steadyPasses = Number(values.passes);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-alerts-'));
  const pgUrl = process.env.SLUICE_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
  const schema = `sluice_bench_alerts_${process.pid}`;
  const store: Store =
    values.store === 'postgres' ? new PostgresStore({ url: `${pgUrl}?schema=${schema}`, queryTimeoutMs: 600_000 }) : new DuckdbStore({ file: path.join(dir, 'store.duckdb'), queryTimeoutMs: 600_000 });
  await store.connect();
  const catalog = new SqliteCatalog(path.join(dir, 'sluice.db'));
  const directCatalog = new SqliteCatalog(path.join(dir, 'direct.db'));
  const perQueryCatalog = new SqliteCatalog(path.join(dir, 'per-query.db'));
  try {
    let t = performance.now();
    for (let from = 0; from < events; from += 100_000) {
      const batch = records(from, Math.min(100_000, events - from), events);
      await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: from + batch.length }] });
    }
    console.log(`loaded ${events.toLocaleString('en-US')} events over 3 days into ${values.store} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const BAD = [
      { field: 'properties.status', op: 'gte', value: 500 },
      { field: 'properties.status', op: 'eq', value: 503 },
      { field: 'properties.status', op: 'eq', value: 500 },
      { field: 'properties.status', op: 'gte', value: 502 },
      { field: 'properties.status', op: 'neq', value: 200 },
    ];
    for (let r = 0; r < rules; r++) {
      const route = { field: 'properties.route', op: 'eq', value: `/r${r % 200}` };
      const body = { kind: 'slo', objective: 0.99, total: { event: 'http_request', filters: [route] }, bad: { event: 'http_request', filters: [route, BAD[Math.floor(r / 200) % BAD.length]] } };
      await catalog.alerts.putRule('bench', `slo-${r}`, body, 'bench');
      if (r < directRules) await directCatalog.alerts.putRule('bench', `slo-${r}`, body, 'bench');
      if (r < directRules) await perQueryCatalog.alerts.putRule('bench', `slo-${r}`, body, 'bench');
    }
    // The store itself as the reader (no thread hop); everything applied: the watermark is the clock.
    const perQueryReader = { query: async (q: Parameters<StoreReader['query']>[0], cap: number) => ({ ...(await store.query(q, cap)), applied: [] }), counts: async () => ({ rows: [], applied: new Map() }), conservation: async () => ({ checkedAt: null, settledUntil: null, from: null, unbalanced: [], gapByTenant: [] }) } as unknown as StoreReader;
    const reader = { ...perQueryReader, seriesScan: (scan: Parameters<StoreReader['seriesScan']>[0]) => store.seriesScan!(scan) } as unknown as StoreReader;
    const log = { oldestUnapplied: async () => null } as unknown as Log;
    const clock = new ManualClock(END + 2_000);
    const cache = new SeriesCache({ now: () => clock.now() });
    const kept = storeSource(reader, log, () => clock.now(), { cache });
    const perQueryCache = new SeriesCache({ now: () => clock.now() });
    const perQuery = storeSource(perQueryReader, log, () => clock.now(), { cache: perQueryCache });
    const reread = storeSource(reader, log, () => clock.now());
    const timed = async (f: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await f();
      return performance.now() - t0;
    };
    const firstMs = await timed(() => evaluatePass({ store: catalog.alerts, source: kept, clock, tenants: async () => ['bench'] }));
    const firstSeries = cache.size;
    // Printed at once: the baselines that follow take long at 10M events.
    console.log(`first pass, one scan: ${firstMs.toFixed(0)} ms for ${rules} rules, ${firstSeries} series (load average ${os.loadavg()[0]!.toFixed(2)})`);
    const firstPerQueryMs = await timed(() => evaluatePass({ store: perQueryCatalog.alerts, source: perQuery, clock, tenants: async () => ['bench'] }));
    const perQuerySeries = perQueryCache.size;
    const firstDirectMs = await timed(() => evaluatePass({ store: directCatalog.alerts, source: reread, clock, tenants: async () => ['bench'] }));
    const passes: number[] = [];
    const directPasses: number[] = [];
    const perQueryPasses: number[] = [];
    const direct: number[] = [];
    let offset = events;
    for (let i = 0; i < steadyPasses; i++) {
      // A minute of new traffic, received as it happens.
      const minute = END + i * MIN;
      const n = Math.ceil(events / (3 * 1440));
      const fresh = records(offset, n, events).map((r, k) => ({ ...r, ts: minute + Math.floor((k / n) * MIN), receivedAt: minute + Math.floor((k / n) * MIN) + 1_000 }));
      offset += n;
      await store.commit({ records: fresh, partitions: [{ partition: 0, token: 1, upTo: offset }] });
      await clock.advance(MIN);
      passes.push(await timed(() => evaluatePass({ store: catalog.alerts, source: kept, clock, tenants: async () => ['bench'] })));
      perQueryPasses.push(await timed(() => evaluatePass({ store: perQueryCatalog.alerts, source: perQuery, clock, tenants: async () => ['bench'] })));
      directPasses.push(await timed(() => evaluatePass({ store: directCatalog.alerts, source: reread, clock, tenants: async () => ['bench'] })));
      // Baseline: the same two per-minute count queries per rule, issued directly.
      direct.push(
        await timed(async () => {
          for (const r of await directCatalog.alerts.listRules('bench')) {
            const body = r.body as { total: { filters: unknown[] }; bad: { filters: unknown[] } };
            for (const side of [body.total, body.bad]) {
              await store.query(
                { tenant: 'bench', event: 'http_request', from: clock.now() - (clock.now() % MIN) - 3 * DAY, to: clock.now() - (clock.now() % MIN), interval: '1m', measures: [{ name: 'count', kind: 'count', field: null }], filters: parseFilters(side.filters), groupBy: [], orderBy: [], limit: null, source: 'auto' },
                20_000,
              );
            }
          }
        }),
      );
    }
    const steady = percentile(passes, 0.5);
    const steadyPerQuery = percentile(perQueryPasses, 0.5);
    const steadyDirect = percentile(directPasses, 0.5);
    const base = percentile(direct, 0.5);
    const per = (ms: number, n: number) => `${(ms / n).toFixed(2)} ms per rule`;
    const perSeries = (ms: number, n: number) => `${(ms / n).toFixed(2)} ms per series`;
    console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
    console.log(`rules ${rules} (${firstSeries} distinct series); one query per series and reading every window again measured on ${directRules} of them (${perQuerySeries} series)`);
    console.log(
      `first pass, series read in full in one scan: ${firstMs.toFixed(0)} ms (${per(firstMs, rules)}, ${perSeries(firstMs, firstSeries)}); one query per series: ${firstPerQueryMs.toFixed(0)} ms (${per(firstPerQueryMs, directRules)}, ${perSeries(firstPerQueryMs, perQuerySeries)}); reading every window: ${firstDirectMs.toFixed(0)} ms (${per(firstDirectMs, directRules)})`,
    );
    console.log(`first pass per series, one scan / one query per series: ${(firstMs / firstSeries / (firstPerQueryMs / perQuerySeries)).toFixed(4)}`);
    console.log(
      `steady pass p50, series kept, one scan: ${steady.toFixed(0)} ms (${per(steady, rules)}); one query per series: ${steadyPerQuery.toFixed(0)} ms (${per(steadyPerQuery, directRules)}); reading every window again: ${steadyDirect.toFixed(0)} ms (${per(steadyDirect, directRules)}); the same queries issued directly: ${base.toFixed(0)} ms (${per(base, directRules)})`,
    );
    console.log(`per rule, series kept / reading every window again: ${(steady / rules / (steadyDirect / directRules)).toFixed(4)}; full reads ${cache.stats.fullReads}, delta reads ${cache.stats.deltaReads}, store scans ${cache.stats.batches}`);
  } finally {
    await store.close();
    if (values.store === 'postgres') {
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: pgUrl });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
    await catalog.close();
    await directCatalog.close();
    await perQueryCatalog.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
