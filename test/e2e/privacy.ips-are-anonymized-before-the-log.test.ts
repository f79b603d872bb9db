import Database from 'better-sqlite3';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

const RAW = '203.0.113.77';

it('privacy.a-raw-ip-never-reaches-the-log-the-live-tail-dead-letters-or-the-store', async () => {
  p = await startPipeline();
  const url = await p.app.listen({ port: 0, host: '127.0.0.1' });
  const ac = new AbortController();
  const stream = await fetch(`${url}/v1/stream`, { headers: { authorization: `Bearer ${p.tenant.readKey}` }, signal: ac.signal });
  const reader = stream.body!.getReader();
  await reader.read();
  const send = (events: unknown) => p!.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p!.tenant.writeKey}` }, payload: events as object });
  await send([
    { type: 'page', idempotency_key: 'live', context: { ip: RAW } },
    { type: 'page', idempotency_key: 'late', ts: '2000-01-01T00:00:00Z', context: { ip: RAW } }, // dead-lettered: too late
  ]);
  let tail = '';
  while (!tail.includes('"live"')) tail += new TextDecoder().decode((await reader.read()).value);
  ac.abort();
  expect(tail).toContain('203.0.113.0');
  expect(tail).not.toContain(RAW);

  await until(async () => (await p!.store.rawStats('acme')).events === 1 && ((await p!.catalog.deadLetters.counts('acme')).too_late ?? 0) === 1);
  const dlq = await p.app.inject({ method: 'GET', url: '/v1/dlq?include_payload=true', headers: { authorization: `Bearer ${p.tenant.adminKey}` } });
  expect(dlq.body).not.toContain(RAW);
  const lineage = await p.app.inject({ method: 'GET', url: '/v1/events/live', headers: { authorization: `Bearer ${p.tenant.readKey}` } });
  expect(lineage.body).not.toContain(RAW);
  // The log itself, read from its file.
  const db = new Database(path.join(p.config.dataDir, 'sluice.db'), { readonly: true });
  try {
    const contexts = (db.prepare('SELECT context FROM records').all() as { context: string }[]).map((r) => r.context);
    expect(contexts.length).toBe(2);
    expect(contexts.join('\n')).not.toContain(RAW);
  } finally {
    db.close();
  }
});
