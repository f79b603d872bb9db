import { afterAll, beforeAll, expect, it } from 'vitest';
import { deploy, sendAll, type Deployment } from '../helpers/scale-out.js';
import type { ServerProcess } from '../helpers/server.js';
import { until } from '../helpers/pipeline.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/**
 * Scale-out end to end: 2 ingest, 3 worker and 1 query processes on NATS JetStream and
 * PostgreSQL; 10% of the events repeat an earlier key. Every distinct key is stored exactly
 * once, and the query process answers the exact total.
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

it.skipIf(!ready)(`scale-out.two-ingest-three-workers-${TOTAL}-events-with-repeated-keys-stored-exactly-once`, async () => {
  const started = Date.now();
  const sent = await sendAll(() => ingest.map((p) => p.url), d.tenant.writeKey, TOTAL, { batch: 500, concurrency: 8 });
  const sentSeconds = (Date.now() - started) / 1000;
  await until(async () => (await d.stored()).rows >= sent.keys, 240_000, 250);
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
  console.log(
    `scale-out: sent ${TOTAL} (distinct keys ${sent.keys}), acknowledged ${sent.accepted} + ${sent.duplicates} duplicates, stored ${stored.rows} rows / ${stored.keys} keys, ` +
      `query count ${counted}; ingest ${Math.round(TOTAL / sentSeconds)} ev/s, end to end ${Math.round(sent.keys / drainedSeconds)} ev/s, ${sent.retries} retried requests`,
  );
  expect(stored).toEqual({ rows: sent.keys, keys: sent.keys });
  expect(sent.accepted).toBe(sent.keys);
  expect(sent.duplicates).toBe(TOTAL - sent.keys);
  expect(counted).toBe(sent.keys);
}, 600_000);
