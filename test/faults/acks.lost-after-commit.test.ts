import { expect, it } from 'vitest';
import type { Log } from '../../src/ports/log.js';
import { startPipeline, until } from '../helpers/pipeline.js';

const EVENTS = 20_000;
const BATCH = 500;
const MAX_ATTEMPTS = 3;
/** An hour ago, on the minute: inside the lateness window whenever the test runs. */
const T0 = Math.floor(Date.now() / 60_000) * 60_000 - 3_600_000;

/**
 * The log between the workers and their acknowledgements loses them: the store commits a
 * batch, the ack never reaches the log (a network drop, a crash right after the commit), and
 * the log delivers the batch again and again, with a growing attempt count. Committed
 * records are finished whatever their attempt count says: redelivered, they change no view
 * and no count, and none is ever dead-lettered as poison. Acks are lost in spells long enough for a
 * delivery to come back far past `worker.maxAttempts`.
 */
it('acks.lost-after-commit-redeliveries-change-no-view-and-dead-letter-nothing', async () => {
  let losing = false;
  let lost = 0;
  let highestAttempt = 0;
  const lossy = (log: Log): Log =>
    new Proxy(log, {
      get(target, prop, receiver) {
        if (prop === 'ack') {
          return async (...args: Parameters<Log['ack']>) => {
            if (!losing) return target.ack(...args);
            lost++;
            return true;
          };
        }
        if (prop === 'read') {
          return async (...args: Parameters<Log['read']>) => {
            const records = await target.read(...args);
            for (const r of records) highestAttempt = Math.max(highestAttempt, r.attempt);
            return records;
          };
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  const view = { event: 'checkout', dimensions: ['properties.region'], measures: ['count', 'sum:amount', 'uniq:key', 'max:amount'], grain: '1m' };
  const p = await startPipeline({ partitions: 4, worker: { maxAttempts: MAX_ATTEMPTS } }, { workerLog: lossy });
  try {
    const admin = { authorization: `Bearer ${p.tenant.adminKey}` };
    expect((await p.app.inject({ method: 'PUT', url: '/v1/views/orders', headers: admin, payload: view })).statusCode).toBe(201);
    const regions = ['eu', 'us', 'apac'];
    const events = Array.from({ length: EVENTS }, (_, i) => ({
      type: 'checkout',
      key: `user-${i % 700}`,
      ts: new Date(T0 + (i % 1_800) * 1_000).toISOString(),
      idempotency_key: `order-${i}`,
      properties: { region: regions[i % 3], amount: i % 250 },
    }));
    // Acks are lost in spells of 2 s, with 0.5 s between them, while events arrive.
    let done = false;
    const spells = (async () => {
      while (!done) {
        losing = true;
        await new Promise((r) => setTimeout(r, 2_000));
        losing = false;
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    for (let i = 0; i < EVENTS; i += BATCH) {
      const r = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: events.slice(i, i + BATCH) });
      expect(r.statusCode).toBe(202);
      expect(r.json()).toMatchObject({ accepted: BATCH, duplicates: 0 });
      await new Promise((r) => setTimeout(r, 150));
    }
    // Every event committed once, and some delivered again past the attempt limit. A record's
    // attempts climb only while it is delivered alone within a spell: on a loaded machine there
    // are fewer deliveries per spell, so this may take a while.
    await until(async () => (await p.store.rawStats('acme')).events === EVENTS && highestAttempt > 2 * MAX_ATTEMPTS, 150_000);
    done = true;
    await spells;
    await until(async () => (await p.log.positions('workers')).every((x) => x.committed === x.head), 60_000);

    await until(async () => (await p.app.inject({ method: 'GET', url: '/v1/views/orders', headers: { authorization: `Bearer ${p.tenant.readKey}` } })).json().status === 'ready', 60_000);
    const query = (source: 'auto' | 'raw') =>
      p.app.inject({
        method: 'POST',
        url: '/v1/query',
        headers: { authorization: `Bearer ${p.tenant.readKey}` },
        payload: { event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + 3_600_000).toISOString(), interval: null, group_by: ['properties.region'], measures: ['count', 'sum:amount', 'max:amount'], source },
      });
    const fromView = (await query('auto')).json() as { source: string; rows: [string, number, number, number][] };
    const fromRaw = (await query('raw')).json() as { rows: [string, number, number, number][] };
    const expected = regions.map((region) => {
      const mine = events.filter((e) => e.properties.region === region);
      return [region, mine.length, mine.reduce((s, e) => s + e.properties.amount, 0), Math.max(...mine.map((e) => e.properties.amount))];
    });
    const sorted = (rows: unknown[][]) => [...rows].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    const deadLetters = (await p.catalog.deadLetters.list('acme', {}, 10)).entries;
    const stats = await p.store.rawStats('acme');
    console.log('lost-ack figures', { sent: EVENTS, acksLost: lost, highestAttempt, stored: stats.events, deadLettered: deadLetters.length, source: fromView.source });
    expect(fromView.source).toBe('view:orders');
    expect(sorted(fromView.rows)).toEqual(sorted(expected));
    expect(sorted(fromRaw.rows)).toEqual(sorted(expected));
    expect(stats).toEqual({ events: EVENTS, distinctKeys: EVENTS });
    expect(deadLetters).toEqual([]);
    expect(lost).toBeGreaterThan(10);
  } finally {
    await p.close();
  }
}, 300_000);
