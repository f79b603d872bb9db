import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { YIELDS_IN_A_ROW } from '../../src/backends/duckdb/view-folds.js';
import type { LogRecord } from '../../src/core/types.js';
import { parseQuery, parseView, type QuerySpec } from '../../src/core/query.js';
import { until } from '../helpers/pipeline.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Fold steps give way to commits (src/backends/duckdb/view-folds.ts): a step that would start
 * while a commit waits gives it its turn, and a commit that arrives during a step interrupts
 * it; the step's transaction is rolled back, so nothing of it is kept. These tests check what
 * that must not change (every answer through the view equals raw once the views have caught
 * up; no commit fails) and what it must not allow (the views starved while commits keep
 * coming: after YIELDS_IN_A_ROW turns given up, a step runs regardless).
 */

const T0 = Date.UTC(2026, 10, 30, 9, 0);
const TENANT = 'acme';
/** A costly view (sketches over several dimensions), so that its steps take long enough to be interrupted. */
const VIEW = {
  event: 'order',
  dimensions: ['properties.country', 'properties.plan', 'key'],
  measures: ['count', 'sum:amount', 'uniq:properties.note', 'p50:amount', 'p99:amount'],
  grain: '1m',
};

let offset = 1;
function batch(n: number): LogRecord[] {
  return Array.from({ length: n }, () => {
    const i = offset++;
    return {
      tenant: TENANT,
      type: 'order',
      key: `u${i % 997}`,
      idempotencyKey: `k-${i}`,
      ts: T0 + (i % 120) * 60_000,
      receivedAt: Date.now(),
      partition: 0,
      origin: 'live' as const,
      properties: JSON.stringify({ country: `c${i % 40}`, plan: `p${i % 7}`, amount: i % 991, note: `n${i}` }),
      context: '{}',
      offset: i,
      attempt: 1,
    };
  });
}

function commit(store: DuckdbStore, n: number): Promise<unknown> {
  const records = batch(n);
  return store.commit({ records, partitions: [{ partition: 0, token: 1, upTo: records[records.length - 1]!.offset }] });
}

function spec(body: Record<string, unknown>, source?: 'raw'): QuerySpec {
  const q = parseQuery({ event: 'order', from: new Date(T0).toISOString(), to: new Date(T0 + 3 * 3_600_000).toISOString(), ...body }, TENANT, Date.now(), { maxBuckets: 10_000, maxRows: 10_000 });
  return source ? ({ ...q, source } as QuerySpec) : q;
}

/** The same question through the view and from raw: [view rows, raw rows], sorted, as JSON. */
async function both(store: DuckdbStore): Promise<[string, string]> {
  const body = { interval: '15m', group_by: ['properties.country'], measures: ['count', 'sum:amount'] };
  const view = await store.query(spec(body), 10_001);
  expect(view.source).toBe('view:orders');
  const raw = await store.query(spec(body, 'raw'), 10_001);
  const sorted = (rows: unknown[][]) => JSON.stringify(rows.map((r) => JSON.stringify(r)).sort());
  return [sorted(view.rows), sorted(raw.rows)];
}

const stores: DuckdbStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function open(): Promise<DuckdbStore> {
  const store = new DuckdbStore({ file: path.join(tmpDir(), 'store.duckdb') });
  await store.connect();
  stores.push(store);
  await store.views.put(TENANT, parseView('orders', VIEW), 'api');
  const s = await store.backfills.start({ view: 'orders', tenant: TENANT, from: null, to: null, rate: 0 });
  for (let st = s; st.status === 'running'; ) st = await store.backfills.step(s.id, 10_000);
  return store;
}

describe('fold steps give way to commits (DuckDB)', () => {
  it('views.a-commit-that-arrives-during-a-fold-step-interrupts-it-and-the-view-still-equals-raw', async () => {
    const store = await open();
    // One commit after another, a few ms apart: each finds the writer folding what the last
    // one left (a step of this view takes tens of ms).
    for (let i = 0; i < 40; i++) {
      await commit(store, 1_500);
      await new Promise((r) => setTimeout(r, 2 + (i % 4) * 3));
    }
    await until(() => store.pendingViewRows === 0, 60_000);
    const [view, raw] = await both(store);
    expect(view).toBe(raw);
    expect(store.foldStats.interrupts, 'no commit interrupted a fold step').toBeGreaterThan(0);
    expect(store.foldStats.steps).toBeGreaterThan(0);
  }, 120_000);

  it(`views.commits-that-keep-coming-do-not-starve-the-views-a-step-runs-after-${YIELDS_IN_A_ROW}-turns-given-up`, async () => {
    const store = await open();
    // Three commits always in flight: the writer never finds itself without one waiting, so
    // a step that gave way every time would never run while they come.
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < 60; i++) {
      if (inFlight.size >= 3) await Promise.race(inFlight);
      const c = commit(store, 500).finally(() => inFlight.delete(c));
      inFlight.add(c);
    }
    const stepsWhileCommitting = store.foldStats.steps;
    await Promise.all(inFlight);
    expect(stepsWhileCommitting, 'no fold step ran while commits kept coming').toBeGreaterThan(0);
    await until(() => store.pendingViewRows === 0, 60_000);
    const [view, raw] = await both(store);
    expect(view).toBe(raw);
  }, 120_000);
});
