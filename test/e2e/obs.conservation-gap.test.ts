import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, expect, it } from 'vitest';
import { embeddedPaths, openEmbeddedStore } from '../../src/backends/embedded.js';
import { checkConservation, ConservationChecker } from '../../src/obs/conservation.js';
import type { Store } from '../../src/ports/store.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

/** Closes the pipeline's store, deletes one stored row with DuckDB itself, and opens the store again. */
async function removeStoredRow(p: Pipeline, idempotencyKey: string): Promise<Store> {
  await p.store.close();
  const db = await DuckDBInstance.create(embeddedPaths(p.config.dataDir).duckdb);
  const c = await db.connect();
  await c.run('DELETE FROM events WHERE idempotency_key = ?', [idempotencyKey]);
  c.closeSync();
  db.closeSync();
  p.store = openEmbeddedStore(p.config);
  await p.store.connect();
  return p.store;
}

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
  const store = await removeStoredRow(p, 'k-7');

  const after = await checkConservation({ log, store, catalog }, LATER(), 3_600_000);
  expect(after.gapByTenant.get('acme')).toBe(1);
  expect(after.unbalanced).toHaveLength(1);
  expect(after.unbalanced[0]).toMatchObject({ tenant: 'acme', gap: 1, stored: expect.any(Number) });
  await store.close();
});

it('conservation.periodic-runs-read-new-minutes-and-a-full-run-sees-old-ones-change', async () => {
  p = await startPipeline();
  const { app, tenant, log, catalog } = p;
  const r = await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: `Bearer ${tenant.writeKey}` },
    payload: Array.from({ length: 300 }, (_, i) => ({ type: 'checkout', key: `u-${i}`, idempotency_key: `c-${i}` })),
  });
  expect(r.statusCode).toBe(202);
  await until(async () => (await p!.store.rawStats('acme')).events === 300);
  await p.workers?.stop();
  p.workers = null;

  // The store as the checker sees it, recording the ranges of stored rows it reads.
  let store: Store = p.store;
  const reads: [number, number][] = [];
  const seen = new Proxy({} as Store, {
    get: (_, prop) => {
      if (prop === 'storedByMinute') return (from: number, to: number) => (reads.push([from, to]), store.storedByMinute(from, to));
      const value: unknown = Reflect.get(store, prop);
      return typeof value === 'function' ? value.bind(store) : value;
    },
  });
  const HOUR = 3_600_000;
  const checker = new ConservationChecker({ log, store: seen, catalog }, HOUR, 300_000);
  const t0 = LATER();
  const first = await checker.check(t0);
  expect(first.gapByTenant.get('acme')).toBe(0);
  expect(reads.pop()).toEqual([first.settledUntil - HOUR, first.settledUntil]);
  // 15 s later: only the minute before the last settled one, and what settled since.
  const second = await checker.check(t0 + 15_000);
  expect(reads.pop()).toEqual([first.settledUntil - 60_000, second.settledUntil]);
  expect(second).toMatchObject({ from: second.settledUntil - HOUR, unbalanced: [] });

  // Behind sluice's back, a stored row of an older minute goes away.
  store = await removeStoredRow(p, 'c-7');
  // A run between full ones does not read that minute again; the next full run sees the gap.
  expect((await checker.check(t0 + 30_000)).gapByTenant.get('acme')).toBe(0);
  const full = await checker.check(t0 + 300_000);
  expect(reads.pop()).toEqual([full.settledUntil - HOUR, full.settledUntil]);
  expect(full.gapByTenant.get('acme')).toBe(1);
  expect(full.unbalanced).toEqual([expect.objectContaining({ tenant: 'acme', gap: 1 })]);
  // And the runs after it keep the gap they did not read again.
  expect((await checker.check(t0 + 315_000)).unbalanced).toEqual([expect.objectContaining({ tenant: 'acme', gap: 1 })]);
});
