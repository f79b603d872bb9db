import { expect, it } from 'vitest';
import { deployments } from '../helpers/scale-out.js';
import { until } from '../helpers/pipeline.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/**
 * The `sluice query` role serves the console and the APIs it reads on NATS JetStream and
 * PostgreSQL: the signals' tallies come from the JetStream log, the stored counts from the
 * PostgreSQL store, the saved queries from the PostgreSQL catalog. The ingest role serves
 * neither.
 */
const ready = (await natsAvailable()) && (await postgresAvailable());
const { deployed } = deployments();

it.skipIf(!ready)('query-role.serves-the-console-and-its-apis-on-nats-and-postgres', async () => {
  const d = await deployed({ partitions: 2 });
  await d.start('worker');
  const [ingest, query] = await Promise.all([d.start('ingest'), d.start('query')]);
  const auth = (key: string) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });

  const page = await fetch(`${query.url}/ui/explore`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  expect((await fetch(`${query.url}/`, { redirect: 'manual' })).headers.get('location')).toBe('/ui/');
  expect((await fetch(`${ingest.url}/ui/`)).status).toBe(404);

  const events = Array.from({ length: 12 }, (_, i) => ({ type: 'checkout', key: `u-${i % 3}`, idempotency_key: `c-${i}`, properties: { amount: i } }));
  expect((await fetch(`${ingest.url}/v1/events`, { method: 'POST', headers: auth(d.tenant.writeKey), body: JSON.stringify([...events, events[0]]) })).status).toBe(202);
  // The JetStream log adds receipts to its tallies every second.
  const sums = async () => {
    const r = (await (await fetch(`${query.url}/v1/signals?from=-10m&interval=5m`, { headers: auth(d.tenant.readKey) })).json()) as { columns: string[]; rows: (number | null)[][] };
    const sum = (c: string) => r.rows.reduce((s, row) => s + Number(row[r.columns.indexOf(c)] ?? 0), 0);
    return { received: sum('received'), duplicate: sum('duplicate'), stored: sum('stored') };
  };
  // The store may count the events before the log's next tally second: wait for all three.
  const want = { received: 13, duplicate: 1, stored: 12 };
  await until(async () => JSON.stringify(await sums()) === JSON.stringify(want), 30_000, 250).catch(() => undefined);
  expect(await sums()).toEqual(want);

  const catalog = (await (await fetch(`${query.url}/v1/catalog`, { headers: auth(d.tenant.readKey) })).json()) as { event_types: { type: string; count: number; properties: { path: string }[] }[] };
  expect(catalog.event_types).toEqual([{ type: 'checkout', count: 12, last_seen: expect.any(String), properties: [{ path: 'properties.amount', types: ['number'] }] }]);

  const saved = await fetch(`${query.url}/v1/saved-queries`, { method: 'POST', headers: auth(d.tenant.readKey), body: JSON.stringify({ name: 'all', query: { interval: '1h' } }) });
  expect(saved.status).toBe(201);
  expect(((await (await fetch(`${query.url}/v1/saved-queries`, { headers: auth(d.tenant.readKey) })).json()) as { saved_queries: unknown[] }).saved_queries).toHaveLength(1);

  // The live tail of the query role shows what the ingest process appends: it follows the log
  // while a stream is open (it sees no appends of its own; its stream stayed silent).
  const ac = new AbortController();
  const stream = await fetch(`${query.url}/v1/stream?type=signup`, { headers: auth(d.tenant.readKey), signal: ac.signal });
  expect(stream.status).toBe(200);
  const reader = stream.body!.getReader();
  let tail = '';
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      tail += new TextDecoder().decode(value);
    }
  })().catch(() => undefined);
  // Following begins as the stream opens (the consumer is made then): send until an event shows.
  for (let i = 0; !tail.includes('"live-'); i++) {
    if (i > 60) throw new Error(`no event in the query role's live tail after ${i} sends: ${tail}`);
    await fetch(`${ingest.url}/v1/events`, { method: 'POST', headers: auth(d.tenant.writeKey), body: JSON.stringify([{ type: 'signup', key: 'u', idempotency_key: `live-${i}` }, { type: 'other', key: 'u', idempotency_key: `other-${i}` }]) });
    await new Promise((r) => setTimeout(r, 250));
  }
  ac.abort();
  await reading;
  // As on sluice up: the stream's type filter holds, and each event is framed with its partition:offset id.
  expect(tail).not.toContain('"other-');
  expect(tail).toMatch(/^id: \d+:\d+\nevent: event\ndata: \{.*"idempotency_key":"live-\d+"/m);
});
