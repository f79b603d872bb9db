import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { parseQuery } from '../../src/core/query.js';
import type { LogRecord } from '../../src/core/types.js';
import { typedBackfillName } from '../../src/ports/typed-columns.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * A rolled-back pipeline version's events are withdrawn from the typed columns too (by
 * position, like from `events`), so a query that reads the columns answers what the JSON
 * answers after a repair, and nothing of the version stays counted.
 */
const T0 = Date.UTC(2026, 10, 24, 9, 0);
let store: DuckdbStore;

beforeAll(async () => {
  store = new DuckdbStore({ file: path.join(tmpDir(), 'store.duckdb') });
  await store.connect();
});
afterAll(async () => {
  await store.close();
});

function record(i: number, version: number): LogRecord {
  // Every event shares its key and time with another: only the position tells them apart.
  return {
    tenant: 'acme', type: 'checkout', key: `user-${i % 3}`, idempotencyKey: `k-${i}`, ts: T0 + (i % 2) * 60_000, receivedAt: T0,
    partition: 0, offset: i + 1, attempt: 1, origin: 'live', properties: JSON.stringify({ plan: i % 2 ? 'pro' : 'free', amount: i }), context: '{}', pipelineVersion: version,
  };
}

it('typed-columns.a-withdrawn-versions-rows-leave-the-columns-and-the-answers-equal-the-json', async () => {
  const records = Array.from({ length: 40 }, (_, i) => record(i, i < 10 ? 1 : 2));
  await store.commit({ records, partitions: [{ partition: 0, token: 1, upTo: 40 }] });
  await store.typedColumns.declare('acme', 'checkout', ['plan', 'amount']);
  const s = await store.backfills.start({ view: typedBackfillName('checkout'), tenant: 'acme', from: null, to: null, rate: 0 });
  for (let st = s; st.status === 'running'; ) st = await store.backfills.step(s.id, 50);

  // Version 2's events, all but the last five (a repair's first sweep).
  const produced = await store.producedBy('acme', 2);
  expect(produced).toHaveLength(30);
  expect(await store.withdraw('acme', 2, produced.slice(0, 25))).toBe(25);

  const spec = parseQuery({ event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 3_600_000).toISOString(), interval: null, group_by: ['properties.plan', 'pipeline_version'], measures: ['count', 'sum:properties.amount'] }, 'acme', T0, { maxBuckets: 1_000, maxRows: 1_000 });
  const fromColumns = await store.query(spec, 1_000);
  const fromJson = await store.query(spec, 1_000, undefined, { typedColumns: false });
  expect(fromColumns.typed).toBe(true);
  const sorted = (rows: unknown[][]) => [...rows].map((r) => r.map(String).join('|')).sort();
  expect(sorted(fromColumns.rows)).toEqual(sorted(fromJson.rows));
  // 10 of version 1 and the 5 of version 2 not withdrawn.
  expect(fromColumns.rows.reduce((n, r) => n + Number(r[2]), 0)).toBe(15);
});
