import { afterAll, beforeAll, expect, it } from 'vitest';
import { deploy, drained, sendAll, type Deployment } from '../helpers/scale-out.js';
import type { ServerProcess } from '../helpers/server.js';
import { until } from '../helpers/pipeline.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/**
 * Scale-out end to end: 2 ingest, 3 worker and 1 query processes on NATS JetStream and
 * PostgreSQL; 10% of the events repeat an earlier key. Every distinct key is stored exactly
 * once, and the query process answers the exact total, from raw events and from a view that
 * the three workers maintain together.
 */
const TOTAL = Number(process.env.SCALE_OUT_EVENTS ?? 500_000);
const ready = (await natsAvailable()) && (await postgresAvailable());

let d: Deployment;
let ingest: ServerProcess[] = [];
let query: ServerProcess;

beforeAll(async () => {
  if (!ready) return;
  d = await deploy();
  const workers = [d.start('worker'), d.start('worker'), d.start('worker')];
  ingest = await Promise.all([d.start('ingest'), d.start('ingest')]);
  query = await d.start('query');
  await Promise.all(workers);
}, 60_000);

afterAll(async () => {
  if (ready) await d.cleanup();
}, 60_000);

async function api(method: string, path: string, key: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${query.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

it.skipIf(!ready)(`scale-out.two-ingest-three-workers-${TOTAL}-events-with-repeated-keys-stored-exactly-once`, async () => {
  const view = await api('PUT', '/v1/views/checkouts', d.tenant.adminKey, { event: 'checkout', measures: ['count', 'uniq:key'], grain: '1m' });
  expect(view.status, JSON.stringify(view.body)).toBe(201);
  await until(async () => (await api('GET', '/v1/views/checkouts', d.tenant.readKey)).body.status === 'ready', 30_000, 100);
  const started = Date.now();
  const sent = await sendAll(() => ingest.map((p) => p.url), d.tenant.writeKey, TOTAL, { batch: 500, concurrency: 8 });
  const sentSeconds = (Date.now() - started) / 1000;
  await drained(d, sent.keys, 'two ingest, three workers');
  const drainedSeconds = (Date.now() - started) / 1000;
  // A little longer: anything doubled would show up now.
  await new Promise((r) => setTimeout(r, 1_000));
  const stored = await d.stored();
  const r = await fetch(`${query.url}/v1/query`, {
    method: 'POST',
    headers: { authorization: `Bearer ${d.tenant.readKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ event: 'checkout', from: '-1h', to: 'now', measures: ['count'] }),
  });
  const answer = (await r.json()) as { rows: [string, number][] };
  expect(r.status, JSON.stringify(answer)).toBe(200);
  const counted = answer.rows.reduce((n, row) => n + row[1], 0);
  const fromView = await api('POST', '/v1/query', d.tenant.readKey, { event: 'checkout', from: '-1h', to: 'now', interval: null, measures: ['count'] });
  const fromRaw = await api('POST', '/v1/query', d.tenant.readKey, { event: 'checkout', from: '-1h', to: 'now', interval: null, measures: ['count'], source: 'raw' });
  console.log(
    `scale-out: sent ${TOTAL} (distinct keys ${sent.keys}), acknowledged ${sent.accepted} + ${sent.duplicates} duplicates, stored ${stored.rows} rows / ${stored.keys} keys, ` +
      `query count ${counted} (per-minute counts), ${JSON.stringify(fromView.body.rows)} (${String(fromView.body.source)}), ${JSON.stringify(fromRaw.body.rows)} (raw); ingest ${Math.round(TOTAL / sentSeconds)} ev/s, end to end ${Math.round(sent.keys / drainedSeconds)} ev/s, ${sent.retries} retried requests`,
  );
  expect(stored).toEqual({ rows: sent.keys, keys: sent.keys });
  expect(sent.accepted).toBe(sent.keys);
  expect(sent.duplicates).toBe(TOTAL - sent.keys);
  expect(counted).toBe(sent.keys);
  expect(fromView.body).toMatchObject({ source: 'view:checkouts', rows: [[sent.keys]] });
  expect(fromRaw.body).toMatchObject({ source: 'raw', rows: [[sent.keys]] });
}, 600_000);
