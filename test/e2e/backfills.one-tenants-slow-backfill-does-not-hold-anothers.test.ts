import { afterAll, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Backfills (and view builds, which run as backfills) share one runner per process. It ran
 * them one after another: a tenant's backfill throttled to the lowest rate allowed (1,000
 * events/s) over a long history held every other tenant's backfills and view builds until it
 * ended. Chunks are now taken from the tenants in turn.
 */
let p: Pipeline | null = null;
afterAll(async () => {
  await p?.close();
});

it('backfills.a-throttled-backfill-of-one-tenant-does-not-hold-anothers', async () => {
  p = await startPipeline();
  const pipeline = p;
  const beta = await pipeline.catalog.createTenant('beta');
  const send = async (key: string, prefix: string, count: number) => {
    const ts = new Date(Date.now() - 600_000).toISOString();
    for (let from = 0; from < count; from += 1_000) {
      const batch = Array.from({ length: Math.min(1_000, count - from) }, (_, i) => ({ type: 'view', key: `u${i % 50}`, idempotency_key: `${prefix}-${from + i}`, ts }));
      const r = await pipeline.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${key}` }, payload: batch });
      expect(r.statusCode).toBe(202);
    }
  };
  await send(pipeline.tenant.writeKey, 'a', 8_000);
  await send(beta.writeKey, 'b', 100);
  await until(async () => (await pipeline.store.rawStats('acme')).events === 8_000 && (await pipeline.store.rawStats('beta')).events === 100);

  const backfill = async (key: string, rate: number) => {
    const r = await pipeline.app.inject({ method: 'POST', url: '/v1/backfills', headers: { authorization: `Bearer ${key}` }, payload: { view: 'counts_1m', from: '-1h', rate } });
    expect(r.statusCode, r.body).toBe(202);
    return (r.json() as { id: string }).id;
  };
  const status = async (key: string, id: string) => {
    const r = await pipeline.app.inject({ method: 'GET', url: '/v1/backfills', headers: { authorization: `Bearer ${key}` } });
    return (r.json() as { backfills: { id: string; status: string; done: number; total: number }[] }).backfills.find((b) => b.id === id)!;
  };
  // Acme's: 8,000 events at 1,000 events/s, eight chunks a second apart.
  const slow = await backfill(pipeline.tenant.adminKey, 1_000);
  const betaAdmin = beta.adminKey;
  const fast = await backfill(betaAdmin, 0);
  await until(async () => (await status(betaAdmin, fast)).status === 'done', 6_000);
  // Beta's ended while acme's still runs: it did not wait for it.
  const held = await status(pipeline.tenant.adminKey, slow);
  expect(held.status).toBe('running');
  expect(held.done).toBeLessThan(8_000);
  await until(async () => (await status(pipeline.tenant.adminKey, slow)).status === 'done', 30_000);
  expect(await status(pipeline.tenant.adminKey, slow)).toMatchObject({ done: 8_000, total: 8_000 });
}, 90_000);
