import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { KEY_RECHECK_MS } from '../../src/http/tail.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
const aborts: AbortController[] = [];
afterEach(async () => {
  for (const ac of aborts.splice(0)) ac.abort();
  await p?.close();
  p = null;
});

async function open(url: string, key: string) {
  const ac = new AbortController();
  aborts.push(ac);
  const res = await fetch(`${url}/v1/stream`, { headers: { authorization: `Bearer ${key}` }, signal: ac.signal });
  return { res, ac };
}

describe('live-tail streams', () => {
  it('tail.streams-are-capped-per-key-and-per-tenant-with-429-naming-the-limit-and-the-neighbour-is-unaffected', async () => {
    p = await startPipeline({ query: { streamsPerKey: 3, streamsPerTenant: 5, streams: 20 } }, { workers: false });
    const url = await p.app.listen({ port: 0, host: '127.0.0.1' });
    const beta = await p.catalog.createTenant('beta');
    const key1 = p.tenant.readKey;
    const key2 = await p.catalog.createKey('acme', 'read');

    for (let i = 0; i < 3; i++) expect((await open(url, key1)).res.status).toBe(200);
    const fourth = await open(url, key1);
    expect(fourth.res.status).toBe(429);
    expect(await fourth.res.json()).toMatchObject({ code: 'SLUICE_ERR_QUOTA_EXCEEDED', field: 'query.streamsPerKey', message: expect.stringContaining('at most 3 live-tail streams per key') });
    expect(fourth.res.headers.get('retry-after')).toBe('5');
    for (let i = 0; i < 2; i++) expect((await open(url, key2)).res.status).toBe(200);
    const sixth = await open(url, key2);
    expect(sixth.res.status).toBe(429);
    expect(await sixth.res.json()).toMatchObject({ field: 'query.streamsPerTenant' });

    // Tenant beta streams and receives its events while acme sits at its caps.
    const b = await open(url, beta.readKey);
    expect(b.res.status).toBe(200);
    const reader = b.res.body!.getReader();
    await reader.read();
    await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${beta.writeKey}` }, payload: [{ type: 'signup', key: 'beta-user' }] });
    let text = '';
    while (!text.includes('beta-user')) text += new TextDecoder().decode((await reader.read()).value);

    // A closed stream frees its place.
    aborts[0]!.abort();
    await until(async () => (await open(url, key1)).res.status === 200, 5_000);
  });

  it('tail.a-revoked-keys-open-streams-close-at-the-next-check-and-others-stay-open', async () => {
    const clock = new ManualClock(Date.now());
    p = await startPipeline({}, { workers: false, clock });
    const url = await p.app.listen({ port: 0, host: '127.0.0.1' });
    const doomed = await p.catalog.createKey('acme', 'read');
    const a = await open(url, doomed);
    const b = await open(url, p.tenant.readKey);
    const ra = a.res.body!.getReader();
    const rb = b.res.body!.getReader();
    await ra.read();
    await rb.read();

    await p.catalog.revokeKey(doomed.split('_')[2]!);
    await clock.advance(KEY_RECHECK_MS);
    let text = '';
    for (;;) {
      const chunk = await ra.read();
      if (chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    expect(text).toContain('the key was revoked; this stream is closed');
    // The other key's stream still gets events.
    await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: [{ type: 'signup', key: 'still-here' }] });
    let other = '';
    while (!other.includes('still-here')) other += new TextDecoder().decode((await rb.read()).value);
  });
});
