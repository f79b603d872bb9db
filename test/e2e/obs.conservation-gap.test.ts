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

it('conservation.periodic-runs-read-new-minutes-and-a-slice-of-the-window-and-see-old-ones-change-within-a-rotation', async () => {
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
  const ROTATION = 300_000;
  const checker = new ConservationChecker({ log, store: seen, catalog }, HOUR, ROTATION);
  const t0 = LATER();
  const first = await checker.check(t0);
  expect(first.gapByTenant.get('acme')).toBe(0);
  // The first run reads the whole window.
  expect(reads.splice(0)).toEqual([[first.settledUntil - HOUR, first.settledUntil]]);
  // 15 s later: the minute before the last settled one and what settled since, and a slice of
  // the window from its start: 15 s of a 5-minute rotation is a twentieth of the hour, 3 minutes.
  const second = await checker.check(t0 + 15_000);
  const from = second.settledUntil - HOUR;
  expect(reads.splice(0)).toEqual([
    [first.settledUntil - 60_000, second.settledUntil],
    [from, from + 180_000],
  ]);
  expect(second).toMatchObject({ from, unbalanced: [] });
  // The next run's slice follows on.
  await checker.check(t0 + 30_000);
  expect(reads.splice(0)[1]).toEqual([from + 180_000, from + 360_000]);

  // Behind sluice's back, a stored row of an older minute goes away. The runs walk the window
  // and see the gap within one rotation; no run reads more than its slice and the new minutes.
  store = await removeStoredRow(p, 'c-7');
  let at = t0 + 30_000;
  let seenAt: number | null = null;
  while (seenAt === null && at <= t0 + 30_000 + ROTATION + 15_000) {
    at += 15_000;
    const run = await checker.check(at);
    for (const [a, b] of reads.splice(0)) expect(b - a).toBeLessThanOrEqual(180_000);
    if (run.gapByTenant.get('acme') === 1) {
      seenAt = at;
      expect(run.unbalanced).toEqual([expect.objectContaining({ tenant: 'acme', gap: 1 })]);
    }
  }
  expect(seenAt).not.toBeNull();
  expect(seenAt! - (t0 + 30_000)).toBeLessThanOrEqual(ROTATION + 15_000);
  // And the runs after it keep the gap, though they do not read that minute again.
  expect((await checker.check(seenAt! + 15_000)).unbalanced).toEqual([expect.objectContaining({ tenant: 'acme', gap: 1 })]);
});
