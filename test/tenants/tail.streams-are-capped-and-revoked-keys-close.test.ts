import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { KEY_RECHECK_MS } from '../../src/http/tail.js';
import { freshnessMs, quantile, steadyIngest } from '../helpers/neighbour.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
const aborts: AbortController[] = [];
// fetch cancels the body of a Response that is garbage collected unread, which closes its stream
// and frees its place under the cap: every opened Response is held until the test ends.
const held: Response[] = [];
afterEach(async () => {
  for (const ac of aborts.splice(0)) ac.abort();
  held.length = 0;
  await p?.close();
  p = null;
});

async function open(url: string, key: string) {
  const ac = new AbortController();
  aborts.push(ac);
  const res = await fetch(`${url}/v1/stream`, { headers: { authorization: `Bearer ${key}` }, signal: ac.signal });
  held.push(res);
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

  it('tail.tenant-b-ingests-and-stores-as-fast-while-tenant-a-holds-its-stream-caps-and-keeps-asking-for-more', async () => {
    p = await startPipeline({ query: { streamsPerKey: 5, streamsPerTenant: 100, streams: 200 } });
    const url = await p.app.listen({ port: 0, host: '127.0.0.1' });
    const beta = await p.catalog.createTenant('beta');
    // Tenant a floods its own events in both runs; in the attack it also holds its stream caps
    // (its events go out on them) and keeps asking for more. Alternating rounds, so that the
    // machine's other load weighs on both alike.
    let refused = 0;
    const run = async (attack: boolean, prefix: string) => {
      let going = true;
      // A key of its own per round: the streams of the round before may still be closing.
      const key = await p!.catalog.createKey('acme', 'read');
      const held = attack ? await Promise.all(Array.from({ length: 5 }, () => open(url, key))) : [];
      for (const h of held) expect(h.res.status).toBe(200);
      const attacker = (async () => {
        while (going && attack) {
          const r = await open(url, key);
          if (r.res.status === 429) refused++;
          await r.res.body?.cancel().catch(() => undefined);
        }
      })();
      const flood = (async () => {
        for (let i = 0; going; i++) {
          await p!.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p!.tenant.writeKey}` }, payload: Array.from({ length: 20 }, (_, j) => ({ type: 'x', idempotency_key: `${prefix}-${i}-${j}`, properties: { pad: 'p'.repeat(200) } })) });
        }
      })();
      const r = await steadyIngest(p!, beta.writeKey, prefix, 20);
      going = false;
      await Promise.all([attacker, flood]);
      for (const h of held) h.ac.abort();
      return { ...r, freshness: await freshnessMs(p!, 'beta', prefix, 20 * 20) };
    };
    const quiet = { ingestMs: [] as number[], freshness: [] as number[], statuses: new Map<number, number>() };
    const loud = { ingestMs: [] as number[], freshness: [] as number[], statuses: new Map<number, number>() };
    for (let round = 0; round < 3; round++) {
      for (const [attack, into] of [[false, quiet], [true, loud]] as const) {
        const r = await run(attack, `${attack ? 'loud' : 'quiet'}-${round}`);
        into.ingestMs.push(...r.ingestMs);
        into.freshness.push(...r.freshness);
        for (const [s2, n] of r.statuses) into.statuses.set(s2, (into.statuses.get(s2) ?? 0) + n);
      }
    }

    expect(refused).toBeGreaterThan(0);
    expect([...quiet.statuses.keys(), ...loud.statuses.keys()]).toEqual([202, 202]);
    const [p99quiet, p99loud] = [quantile(quiet.ingestMs, 0.99), quantile(loud.ingestMs, 0.99)];
    console.info(`beta's ingest p99: ${p99loud.toFixed(1)} ms while alpha held its stream cap and was refused ${refused} more, ${p99quiet.toFixed(1)} ms while alpha only sent events`);
    // Within 2x, with a floor of 25 ms for a shared two-core machine's noise.
    expect(p99loud).toBeLessThan(2 * Math.max(p99quiet, 25));
    // B's freshness (received → stored), p99 within 2x, with a floor of 250 ms (the workers' polling).
    const [f99quiet, f99loud] = [quantile(quiet.freshness, 0.99), quantile(loud.freshness, 0.99)];
    console.info(`beta's freshness p99: ${f99loud.toFixed(0)} ms while alpha held its stream cap, ${f99quiet.toFixed(0)} ms while alpha only sent events`);
    expect(f99loud, `B's freshness p99: ${f99loud} ms under attack, ${f99quiet} ms without`).toBeLessThan(2 * Math.max(f99quiet, 250));
    await until(async () => (await p!.store.rawStats('beta')).events === 6 * 20 * 20);
  });
});
