import { afterAll, beforeAll, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * A backtest of a rule whose measure does not merge asks the store for one query per window
 * end (1,440 over a day). When those queries fail (here each runs past a 1 ms query timeout)
 * the request answers the error, and the process goes on: awaited one by one, every rejection
 * after the first was unhandled, and Node ended the process (an attacker's read key did it
 * with a measure that ran the store out of memory).
 */
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ query: { timeoutMs: 1 } });
  const ts = new Date().toISOString();
  const events = Array.from({ length: 500 }, (_, i) => ({ type: 'mem', key: `k${i}`, idempotency_key: `m-${i}`, ts, properties: { b: `value-${i}` } }));
  expect((await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: events })).statusCode).toBe(202);
  // Stored: the applied offsets, which no query timeout bounds (a count of the rows is a query
  // under this pipeline's 1 ms timeout, and failed on a loaded machine).
  await until(async () => [...(await p.store.appliedOffsets()).values()].reduce((n, o) => n + o, 0) === 500);
});
afterAll(async () => {
  await p?.close();
});

it('alerts.a-backtest-whose-window-queries-fail-answers-the-error-and-the-process-goes-on', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const res = await p.app.inject({
      method: 'POST',
      url: '/v1/alerts/backtest',
      headers: { authorization: `Bearer ${p.tenant.readKey}` },
      payload: { rule: { kind: 'threshold', query: { event: 'mem', measures: ['uniq:b'] }, window: '7d', condition: { op: 'gt', value: 2 } }, from: '-1d', to: 'now' },
    });
    expect(res.statusCode, res.body).toBeGreaterThanOrEqual(500);
    expect(res.json()).toMatchObject({ code: expect.stringMatching(/^SLUICE_ERR_/) });
    // Give any straggling rejection a turn to surface.
    await new Promise((r) => setTimeout(r, 500));
    expect(unhandled).toEqual([]);
    // And the server still answers.
    expect((await p.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
