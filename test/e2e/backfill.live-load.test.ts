import type { DuckDBConnection } from '@duckdb/node-api';
import { afterEach, expect, it } from 'vitest';
import { BackfillRunner } from '../../src/ops/backfill.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

/** The store's connections, for what sluice never does itself: damaging its own view. */
function sql(pipeline: Pipeline): { writer: DuckDBConnection; reader: DuckDBConnection } {
  return pipeline.store as unknown as { writer: DuckDBConnection; reader: DuckDBConnection };
}

/** The view's rows of a tenant, and the same computed from scratch from the raw events. */
async function viewAndScratch(pipeline: Pipeline, tenant: string) {
  const { reader } = sql(pipeline);
  const view = (await reader.runAndReadAll('SELECT type, minute, n FROM counts_1m WHERE tenant = ? AND n > 0 ORDER BY ALL', [tenant])).getRows();
  const scratch = (
    await reader.runAndReadAll('SELECT type, (epoch_ms(ts) // 60000) * 60000 AS minute, count(*) AS n FROM events WHERE tenant = ? GROUP BY ALL ORDER BY ALL', [tenant])
  ).getRows();
  return { view: JSON.stringify(view, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)), scratch: JSON.stringify(scratch, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)) };
}

const HOUR = 3_600_000;

it('backfill.rebuilds-a-damaged-view-under-live-load-equal-to-a-computation-from-scratch-and-again-changes-nothing', async () => {
  p = await startPipeline();
  const pipeline = p;
  const t0 = Date.now() - 3 * HOUR;
  let n = 0;
  const send = async (count: number) => {
    const batch = Array.from({ length: count }, () => {
      const i = n++;
      return { type: i % 3 ? 'view' : 'buy', key: `u${i % 50}`, idempotency_key: `e-${i}`, ts: new Date(t0 + ((i * 7919) % (3 * HOUR))).toISOString() };
    });
    const r = await pipeline.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${pipeline.tenant.writeKey}` }, payload: batch });
    expect(r.statusCode).toBe(202);
  };
  for (let i = 0; i < 20; i++) await send(1_000);
  await until(async () => (await pipeline.store.rawStats('acme')).events === 20_000);

  // Damage the view: minutes counted wrong, a minute missing.
  await sql(pipeline).writer.run("UPDATE counts_1m SET n = n + 7 WHERE tenant = 'acme' AND type = 'buy'");
  await sql(pipeline).writer.run("DELETE FROM counts_1m WHERE tenant = 'acme' AND type = 'view' AND minute = (SELECT min(minute) FROM counts_1m WHERE tenant = 'acme')");
  const damaged = await viewAndScratch(pipeline, 'acme');
  expect(damaged.view).not.toBe(damaged.scratch);

  // Live load goes on during the backfill, into the same minutes.
  let live = true;
  const load = (async () => {
    while (live) {
      await send(200);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const admin = (method: 'GET' | 'POST', url: string, payload?: object) =>
    pipeline.app.inject({ method, url, headers: { authorization: `Bearer ${pipeline.tenant.adminKey}` }, ...(payload ? { payload } : {}) });
  const started = await admin('POST', '/v1/backfills', { view: 'counts_1m', rate: 5_000 });
  expect(started.statusCode).toBe(202);
  const { id, total } = started.json() as { id: string; total: number };
  expect(total).toBeGreaterThanOrEqual(20_000);
  const progress: number[] = [];
  await until(async () => {
    const s = (await admin('GET', `/v1/backfills/${id}`)).json() as { status: string; percent: number };
    progress.push(s.percent);
    return s.status === 'done';
  }, 60_000, 200);
  expect(progress.some((x) => x > 0 && x < 100)).toBe(true); // it showed progress on the way
  live = false;
  await load;
  await until(async () => (await pipeline.store.rawStats('acme')).events === n);
  const after = await viewAndScratch(pipeline, 'acme');
  expect(after.view).toBe(after.scratch);

  // Twice: the same result.
  const again = (await admin('POST', '/v1/backfills', { view: 'counts_1m' })).json() as { id: string };
  await until(async () => ((await admin('GET', `/v1/backfills/${again.id}`)).json() as { status: string }).status === 'done');
  expect((await viewAndScratch(pipeline, 'acme')).view).toBe(after.scratch);
  expect((await admin('POST', '/v1/backfills', { view: 'nope' })).statusCode).toBe(404);
});

it('backfill.resumes-from-its-cursor-after-the-process-stopped-mid-way', async () => {
  p = await startPipeline();
  const pipeline = p;
  const t0 = Date.now() - 2 * HOUR;
  const batch = Array.from({ length: 5_000 }, (_, i) => ({ type: 'a', idempotency_key: `r-${i}`, ts: new Date(t0 + i * 1_000).toISOString() }));
  for (let i = 0; i < batch.length; i += 1_000) {
    await pipeline.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${pipeline.tenant.writeKey}` }, payload: batch.slice(i, i + 1_000) });
  }
  await until(async () => (await pipeline.store.rawStats('acme')).events === 5_000);
  await sql(pipeline).writer.run("UPDATE counts_1m SET n = 1 WHERE tenant = 'acme'");

  // A backfill that got one chunk done before its process died:
  const s = await pipeline.store.backfills.start({ view: 'counts_1m', tenant: 'acme', from: null, to: null, rate: 0 });
  const one = await pipeline.store.backfills.step(s.id, 1_000);
  expect(one.status).toBe('running');
  expect(one.done).toBeGreaterThan(0);
  expect(one.done).toBeLessThan(5_000);
  // The next process resumes it.
  const runner = new BackfillRunner(pipeline.store, { signal: new AbortController().signal, chunkEvents: 1_000 });
  await runner.resume();
  await runner.idle();
  const [state] = await pipeline.store.backfills.list('acme');
  expect(state).toMatchObject({ id: s.id, status: 'done', done: 5_000, total: 5_000 });
  const r = await viewAndScratch(pipeline, 'acme');
  expect(r.view).toBe(r.scratch);
});

it('backfill.events-arriving-past-the-range-of-a-whole-history-rebuild-are-counted-once', async () => {
  // A rebuild of the whole history covers the buckets up to its newest event when it starts;
  // events arriving meanwhile with a later time are the live table's, never the build's too.
  p = await startPipeline();
  const pipeline = p;
  const send = async (prefix: string, count: number, ts: number) => {
    const batch = Array.from({ length: count }, (_, i) => ({ type: 'a', idempotency_key: `${prefix}-${i}`, ts: new Date(ts + i * 1_000).toISOString() }));
    const r = await pipeline.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${pipeline.tenant.writeKey}` }, payload: batch });
    expect(r.statusCode).toBe(202);
  };
  await send('past', 1_000, Date.now() - 2 * HOUR);
  await until(async () => (await pipeline.store.rawStats('acme')).events === 1_000);
  const s = await pipeline.store.backfills.start({ view: 'counts_1m', tenant: 'acme', from: null, to: null, rate: 0 });
  expect((await pipeline.store.backfills.step(s.id, 200)).status).toBe('running');
  await send('now', 500, Date.now());
  await until(async () => (await pipeline.store.rawStats('acme')).events === 1_500);
  const runner = new BackfillRunner(pipeline.store, { signal: new AbortController().signal, chunkEvents: 200 });
  await runner.resume();
  await runner.idle();
  expect((await pipeline.store.backfills.list('acme'))[0]).toMatchObject({ id: s.id, status: 'done', error: null });
  const r = await viewAndScratch(pipeline, 'acme');
  expect(r.view).toBe(r.scratch);
});
