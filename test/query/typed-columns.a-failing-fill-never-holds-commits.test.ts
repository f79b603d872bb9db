import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { RetryAfterError } from '../../src/core/errors.js';
import { parseQuery } from '../../src/core/query.js';
import type { LogRecord } from '../../src/core/types.js';
import { typedBackfillName } from '../../src/ports/typed-columns.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Typed columns are an optimisation: a fill that fails inside a commit (here: its table
 * damaged behind the store's back; a property named "*" once did it for good) drops that set
 * and the batch commits again without it, instead of failing every tenant's commits for ever.
 * The same declaration is refused until the process restarts; queries read the JSON.
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

function records(from: number, n: number): LogRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    tenant: i % 2 ? 'acme' : 'other', type: 'checkout', key: `u${i % 5}`, idempotencyKey: `k-${from + i}`, ts: T0, receivedAt: T0,
    partition: 0, offset: from + i, attempt: 1, origin: 'live', properties: JSON.stringify({ plan: i % 3 ? 'pro' : 'free' }), context: '{}', pipelineVersion: 0,
  }));
}

it('typed-columns.a-fill-that-fails-drops-its-set-and-the-commit-goes-through-without-it', async () => {
  await store.commit({ records: records(1, 20), partitions: [{ partition: 0, token: 1, upTo: 20 }] });
  await store.typedColumns.declare('acme', 'checkout', ['plan']);
  const s = await store.backfills.start({ view: typedBackfillName('checkout'), tenant: 'acme', from: null, to: null, rate: 0 });
  for (let st = s; st.status === 'running'; ) st = await store.backfills.step(s.id, 100);
  const [set] = await store.typedColumns.list('acme');
  expect(set).toMatchObject({ status: 'ready', properties: ['plan'] });
  const table = (await (store as unknown as { writer: DuckDBConnection }).writer.runAndReadAll("SELECT tbl FROM typed_tables WHERE tenant = 'acme'")).getRows()[0]![0];
  await (store as unknown as { writer: DuckDBConnection }).writer.run(`DROP TABLE ${String(table)}`);

  // The first attempt drops the set and asks to be retried; the retry commits every tenant's events.
  const batch = { records: records(21, 20), partitions: [{ partition: 0, token: 1, upTo: 40 }] };
  const failed = await store.commit(batch).then(() => null, (e: unknown) => e);
  expect(failed).toBeInstanceOf(RetryAfterError);
  expect((failed as Error).message).toMatch(/filling the typed columns of type "checkout" failed: .*; those columns are dropped and the batch is committed again without them/);
  expect(await store.commit(batch)).toMatchObject({ stored: 20 });
  expect(await store.typedColumns.list('acme')).toEqual([]);
  expect((await store.typedColumns.declare('acme', 'checkout', ['plan'])).changed).toBe(false);

  const spec = parseQuery({ event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 60_000).toISOString(), interval: null, group_by: ['properties.plan'], measures: ['count'], order_by: 'properties.plan' }, 'acme', T0, { maxBuckets: 10, maxRows: 10 });
  const answer = await store.query(spec, 10);
  expect([answer.typed, answer.rows]).toEqual([undefined, [['free', 6], ['pro', 14]]]);
});
