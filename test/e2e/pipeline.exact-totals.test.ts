import { afterEach, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

/** An hour boundary two hours ago: event times inside the lateness window whenever the test runs. */
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000;

/** 100k events, 10% of them repeating an earlier key (in the same batch or an earlier one). */
function events(n: number): { batches: unknown[][]; distinct: number } {
  const batches: unknown[][] = [];
  let batch: unknown[] = [];
  let fresh = 0;
  let seed = 42;
  const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < n; i++) {
    const repeat = fresh > 0 && rand() < 0.1;
    const id = repeat ? Math.floor(rand() * fresh) : fresh++;
    batch.push({
      type: id % 3 === 0 ? 'signup' : 'checkout',
      key: `user-${id % 5000}`,
      ts: new Date(T0 + id * 30).toISOString(),
      idempotency_key: `evt-${id}`,
      properties: { amount: id % 100, region: id % 2 ? 'eu' : 'us' },
    });
    if (batch.length === 1000) {
      batches.push(batch);
      batch = [];
    }
  }
  if (batch.length) batches.push(batch);
  return { batches, distinct: fresh };
}

it('pipeline.counts-100k-events-with-10pct-repeated-keys-exactly', async () => {
  p = await startPipeline();
  const pipeline = p;
  const { batches, distinct } = events(100_000);
  let accepted = 0;
  let duplicates = 0;
  // Four requests in flight at a time, as a real producer would send them.
  for (let i = 0; i < batches.length; i += 4) {
    const replies = await Promise.all(
      batches.slice(i, i + 4).map((b) =>
        pipeline.app.inject({ method: 'POST', url: '/v1/events', payload: JSON.stringify(b), headers: { authorization: `Bearer ${pipeline.tenant.writeKey}` } }),
      ),
    );
    for (const r of replies) {
      expect(r.statusCode).toBe(202);
      const body = r.json();
      expect(body.rejected).toEqual([]);
      accepted += body.accepted;
      duplicates += body.duplicates;
    }
  }
  const lastAck = Date.now();
  expect(accepted).toBe(distinct);
  expect(duplicates).toBe(100_000 - distinct);

  const query = async (event?: string) => {
    const r = await pipeline.app.inject({
      method: 'POST',
      url: '/v1/query',
      payload: JSON.stringify({ event, from: new Date(T0).toISOString(), to: new Date(T0 + 86_400_000).toISOString(), interval: '1h', measures: ['count'] }),
      headers: { authorization: `Bearer ${pipeline.tenant.readKey}` },
    });
    expect(r.statusCode).toBe(200);
    return r.json() as { columns: string[]; rows: [string, number][]; watermark: string };
  };
  // The watermark promises that everything received before it is counted.
  await until(async () => Date.parse((await query()).watermark) >= lastAck, 60_000, 50);
  const all = await query();
  expect(all.columns).toEqual(['bucket', 'count']);
  expect(all.rows).toHaveLength(24);
  expect(all.rows.reduce((s, [, n]) => s + n, 0)).toBe(distinct);
  const signups = (await query('signup')).rows.reduce((s, [, n]) => s + n, 0);
  const checkouts = (await query('checkout')).rows.reduce((s, [, n]) => s + n, 0);
  expect(signups).toBe(Math.ceil(distinct / 3));
  expect(signups + checkouts).toBe(distinct);
  expect(await pipeline.store.rawStats('acme')).toEqual({ events: distinct, distinctKeys: distinct });
  expect(await pipeline.catalog.deadLetters.list('acme', {}, 10)).toEqual({ entries: [], cursor: null });
});
