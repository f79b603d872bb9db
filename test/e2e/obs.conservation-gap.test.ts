import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, expect, it } from 'vitest';
import { embeddedPaths, openEmbeddedStore } from '../../src/backends/embedded.js';
import { checkConservation } from '../../src/obs/conservation.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

const LATER = (): number => Date.now() + 120_000; // a clock two minutes ahead: the current minute has settled

it('conservation.balances-every-minute-and-sees-a-row-removed-behind-its-back', async () => {
  p = await startPipeline();
  const { app, tenant, log, catalog } = p;
  const auth = { authorization: `Bearer ${tenant.writeKey}` };
  let sent = 0;
  for (let b = 0; b < 5; b++) {
    const batch: unknown[] = [];
    for (let i = 0; i < 200; i++) batch.push({ type: 'checkout', key: `u-${i}`, idempotency_key: `k-${b * 150 + i}` }); // overlapping keys: duplicates
    batch.push({ key: 'no-type' }, { type: 'x', extra: 1 }); // rejected
    sent += batch.length;
    const r = await app.inject({ method: 'POST', url: '/v1/events', headers: auth, payload: batch });
    expect(r.statusCode).toBe(202);
  }
  const distinct = 4 * 150 + 200;
  await until(async () => (await p!.store.rawStats('acme')).events === distinct);

  const before = await checkConservation({ log, store: p.store, catalog }, LATER(), 3_600_000);
  expect(before.unbalanced).toEqual([]);
  expect(before.gapByTenant.get('acme')).toBe(0);
  const tallies = await log.tallies(0, LATER());
  expect(tallies.reduce((s, t) => s + t.received, 0)).toBe(sent);
  expect(tallies.reduce((s, t) => s + t.rejected, 0)).toBe(10);
  expect(tallies.reduce((s, t) => s + t.duplicate, 0)).toBe(sent - 10 - distinct);

  // Behind sluice's back: stop the store, delete one stored row with DuckDB itself.
  await p.workers?.stop();
  p.workers = null;
  await p.store.close();
  const db = await DuckDBInstance.create(embeddedPaths(p.config.dataDir).duckdb);
  const c = await db.connect();
  await c.run("DELETE FROM events WHERE idempotency_key = 'k-7'");
  c.closeSync();
  db.closeSync();
  const store = openEmbeddedStore(p.config);
  await store.connect();
  p.store = store;

  const after = await checkConservation({ log, store, catalog }, LATER(), 3_600_000);
  expect(after.gapByTenant.get('acme')).toBe(1);
  expect(after.unbalanced).toHaveLength(1);
  expect(after.unbalanced[0]).toMatchObject({ tenant: 'acme', gap: 1, stored: expect.any(Number) });
  await store.close();
});
