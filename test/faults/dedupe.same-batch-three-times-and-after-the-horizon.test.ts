import { expect, it } from 'vitest';
import { startPipeline, until } from '../helpers/pipeline.js';

const HORIZON_MS = 3_600_000;
const EVENTS = 500;

/**
 * The same batch sent three times is stored once: the second and third sends are answered
 * `duplicates: 500` and change no count. Sent again once the dedupe horizon has passed (the
 * log's clock moved two horizons on, the most a key is remembered), it is a new send, as the
 * README and the runbook say: the log no longer knows the keys, and the batch is stored a
 * second time. Keep the horizon longer than the longest retry or replay.
 */
it('dedupe.same-batch-three-times-is-stored-once-and-after-the-horizon-is-new', async () => {
  let now = Date.now();
  const p = await startPipeline({ log: { dedupeHorizonMs: HORIZON_MS } }, { logClock: { now: () => now } });
  try {
    const ts = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 600_000).toISOString();
    const batch = Array.from({ length: EVENTS }, (_, i) => ({ type: 'checkout', key: `user-${i % 50}`, ts, idempotency_key: `retry-${i}`, properties: { amount: i } }));
    const send = async () => {
      const r = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: batch });
      expect(r.statusCode).toBe(202);
      return r.json() as { accepted: number; duplicates: number; rejected: unknown[] };
    };
    const total = async (): Promise<number> => {
      const r = await p.app.inject({
        method: 'POST',
        url: '/v1/query',
        headers: { authorization: `Bearer ${p.tenant.readKey}` },
        payload: { event: 'checkout', from: '-1h', to: 'now', interval: null, measures: ['count', 'sum:amount'] },
      });
      return (r.json() as { rows: [number, number][] }).rows[0]![0];
    };
    const stored = async () => (await p.store.rawStats('acme')).events;

    const replies = [await send(), await send(), await send()];
    expect(replies).toEqual([
      { accepted: EVENTS, duplicates: 0, rejected: [] },
      { accepted: 0, duplicates: EVENTS, rejected: [] },
      { accepted: 0, duplicates: EVENTS, rejected: [] },
    ]);
    await until(async () => (await stored()) === EVENTS);
    await new Promise((r) => setTimeout(r, 500));
    expect(await stored()).toBe(EVENTS);
    expect(await total()).toBe(EVENTS);

    // Within the horizon, however late: still a duplicate.
    now += HORIZON_MS - 60_000;
    expect(await send()).toEqual({ accepted: 0, duplicates: EVENTS, rejected: [] });

    // Past two horizons, the keys are forgotten: the same batch is a new send.
    now += 2 * HORIZON_MS;
    const late = await send();
    await until(async () => (await stored()) === 2 * EVENTS);
    const figures = { sends: 5, withinHorizon: replies.concat([{ accepted: 0, duplicates: EVENTS, rejected: [] }]).map((r) => r.accepted), afterHorizon: late.accepted, stored: await stored() };
    console.log('same batch three times, then after the horizon', figures);
    expect(late).toEqual({ accepted: EVENTS, duplicates: 0, rejected: [] });
    expect(await total()).toBe(2 * EVENTS);
  } finally {
    await p.close();
  }
});
