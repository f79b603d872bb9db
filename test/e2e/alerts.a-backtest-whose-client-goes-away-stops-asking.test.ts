import { afterAll, beforeAll, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * A backtest of a measure that does not merge asks one query per window end, four at a time
 * (1,440 over a day). When its client went away (closed the connection, or was cut at
 * limits.requestTimeoutMs) the queries went on to the end for nobody: sixteen such backtests,
 * each cut at 30 s, kept the store's readers busy after every client had gone.
 */
let p: Pipeline;
let url: string;
beforeAll(async () => {
  p = await startPipeline();
  const ts = new Date().toISOString();
  const events = Array.from({ length: 500 }, (_, i) => ({ type: 'mem', key: `k${i}`, idempotency_key: `m-${i}`, ts, properties: { b: `value-${i}` } }));
  expect((await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: events })).statusCode).toBe(202);
  await until(async () => (await p.store.rawStats('acme')).events === 500);
  url = await p.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await p?.close();
});

it('alerts.a-backtest-whose-client-goes-away-stops-asking-the-store', async () => {
  let queries = 0;
  const store = p.store as unknown as { query: (...a: unknown[]) => Promise<unknown> };
  const query = store.query.bind(p.store);
  store.query = async (...a: unknown[]) => {
    queries++;
    return query(...a);
  };
  const client = new AbortController();
  const answered = fetch(`${url}/v1/alerts/backtest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${p.tenant.readKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rule: { kind: 'threshold', query: { event: 'mem', measures: ['uniq:b'] }, window: '1h', condition: { op: 'gt', value: 2 } }, from: '-1d', to: 'now' }),
    signal: client.signal,
  }).catch((e: unknown) => e);
  await until(async () => queries >= 8, 20_000);
  client.abort();
  await answered;
  // What was in flight ends; nothing more is asked.
  await new Promise((r) => setTimeout(r, 300));
  const after = queries;
  await new Promise((r) => setTimeout(r, 1_500));
  expect(queries - after).toBeLessThanOrEqual(4);
  expect(queries).toBeLessThan(1_440);
  expect((await p.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
});
