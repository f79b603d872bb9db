import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { evaluatePass } from '../src/alerts/evaluator.js';
import { storeSource } from '../src/alerts/source.js';
import { SqliteCatalog } from '../src/backends/sqlite/catalog.js';
import { DuckdbStore } from '../src/backends/duckdb/store.js';
import { ManualClock } from '../src/core/clock.js';
import { parseFilters } from '../src/core/query.js';
import type { LogRecord } from '../src/core/types.js';
import type { Log } from '../src/ports/log.js';
import type { StoreReader } from '../src/ports/reader.js';
import { percentile } from './load.js';

/**
 * Alert evaluation cost: N events (1M by default) over 3 days of one tenant in a DuckDB store,
 * R SLO rules (20 by default, each with its own bad filter) with the default four burn-rate
 * conditions, and one evaluation pass (the first one, then steady ones a minute later), beside
 * the baseline of the same per-minute count queries issued directly (two per rule, 3 days of
 * minutes each). Per rule and per pass, p50 of several runs.
 *
 *   node dist-bench/bench/alerts.js [--events 1000000] [--rules 20]
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
      receivedAt: END,
      partition: 0,
      origin: 'live',
      properties: `{"status":${n % 50 === 0 ? 503 : 200},"route":"/r${n % 20}"}`,
      context: '{}',
      offset: n + 1,
      attempt: 1,
    };
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { events: { type: 'string', default: '1000000' }, rules: { type: 'string', default: '20' } } });
  const events = Number(values.events);
  const rules = Number(values.rules);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-alerts-'));
  const store = new DuckdbStore({ file: path.join(dir, 'store.duckdb'), queryTimeoutMs: 120_000 });
  await store.connect();
  const catalog = new SqliteCatalog(path.join(dir, 'sluice.db'));
  try {
    let t = performance.now();
    for (let from = 0; from < events; from += 100_000) {
      const batch = records(from, Math.min(100_000, events - from), events);
      await store.commit({ records: batch, partitions: [{ partition: 0, token: 1, upTo: from + batch.length }] });
    }
    console.log(`loaded ${events.toLocaleString('en-US')} events over 3 days in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    for (let r = 0; r < rules; r++) {
      await catalog.alerts.putRule(
        'bench',
        `slo-${r}`,
        {
          kind: 'slo',
          objective: 0.99,
          total: { event: 'http_request', filters: [{ field: 'properties.route', op: 'eq', value: `/r${r % 20}` }] },
          bad: { event: 'http_request', filters: [{ field: 'properties.route', op: 'eq', value: `/r${r % 20}` }, { field: 'properties.status', op: 'gte', value: 500 }] },
        },
        'bench',
      );
    }
    // The store itself as the reader (no thread hop), everything applied: the watermark is END.
    const reader = { query: async (q: Parameters<StoreReader['query']>[0], cap: number) => ({ ...(await store.query(q, cap)), applied: [] }), counts: async () => ({ rows: [], applied: new Map() }), conservation: async () => ({ checkedAt: null, settledUntil: null, from: null, unbalanced: [], gapByTenant: [] }) } as unknown as StoreReader;
    const log = { oldestUnapplied: async () => null } as unknown as Log;
    const clock = new ManualClock(END);
    const source = storeSource(reader, log, () => clock.now());
    const passes: number[] = [];
    t = performance.now();
    const first = await evaluatePass({ store: catalog.alerts, source, clock, tenants: async () => ['bench'] });
    const firstMs = performance.now() - t;
    for (let i = 0; i < 3; i++) {
      await clock.advance(MIN);
      t = performance.now();
      await evaluatePass({ store: catalog.alerts, source, clock, tenants: async () => ['bench'] });
      passes.push(performance.now() - t);
    }
    // Baseline: the same two per-minute count queries per rule, issued directly.
    const direct: number[] = [];
    for (let i = 0; i < 3; i++) {
      t = performance.now();
      for (const r of await catalog.alerts.listRules('bench')) {
        const body = r.body as { total: { filters: unknown[] }; bad: { filters: unknown[] } };
        for (const side of [body.total, body.bad]) {
          await store.query(
            { tenant: 'bench', event: 'http_request', from: END + (i + 1) * MIN - 3 * DAY, to: END + (i + 1) * MIN, interval: '1m', measures: [{ name: 'count', kind: 'count', field: null }], filters: parseFilters(side.filters), groupBy: [], orderBy: [], limit: null, source: 'auto' },
            20_000,
          );
        }
      }
      direct.push(performance.now() - t);
    }
    const steady = percentile(passes, 0.5);
    const base = percentile(direct, 0.5);
    console.log(`rules ${rules}, transitions in the first pass ${first.transitions.length}, errors ${first.errors}`);
    console.log(`first pass ${firstMs.toFixed(0)} ms (${(firstMs / rules).toFixed(1)} ms per rule)`);
    console.log(`steady pass p50 ${steady.toFixed(0)} ms (${(steady / rules).toFixed(1)} ms per rule); the same queries issued directly p50 ${base.toFixed(0)} ms: ratio ${(steady / base).toFixed(2)}`);
  } finally {
    await store.close();
    await catalog.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
