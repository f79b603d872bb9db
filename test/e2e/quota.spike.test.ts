import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Quotas and backpressure: a tenant over its quota gets 429 with a Retry-After computed from
 * its bucket and other tenants are unaffected; a saturated log answers 503; nothing that was
 * acknowledged is lost. (How fast, under what load: `npm run bench -- --only spike`.)
 */

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

const batch = (tenant: string, from: number, n: number) =>
  JSON.stringify(Array.from({ length: n }, (_, i) => ({ type: 'tick', key: `${tenant}-${(from + i) % 13}`, idempotency_key: `${tenant}-${from + i}` })));


/** A pipeline without workers whose tenant has a bytes/s quota. */
async function withBytesQuota(bytesPerSecond: number): Promise<Pipeline> {
  const pipeline = await startPipeline({}, { workers: false });
  await pipeline.app.inject({ method: 'PATCH', url: '/v1/tenant', headers: { authorization: `Bearer ${pipeline.tenant.adminKey}` }, payload: JSON.stringify({ bytes_per_second: bytesPerSecond }) });
  return pipeline;
}

/** 200 events of 2 KB each, gzipped: under 10 KB on the wire, about 400 KB decompressed. */
function gzipBody(from: number): Buffer {
  const ts = new Date().toISOString();
  return zlib.gzipSync(JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ type: 'big', key: `k${i}`, idempotency_key: `gz-${from + i}`, ts, properties: { pad: 'x'.repeat(2_000) } }))));
}

describe('quotas', () => {
  it('quota.over-quota-tenant-gets-429-with-retry-after-others-flow-and-nothing-accepted-is-lost', async () => {
    p = await startPipeline();
    const other = await p.catalog.createTenant('bravo');
    await p.catalog.updateSettings('acme', { quota: { eventsPerSecond: 500 } }, 'test');
    const send = (key: string, tenant: string, from: number, n: number) =>
      p!.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${key}` }, payload: batch(tenant, from, n) });

    let acmeAccepted = 0;
    let refused = 0;
    let retryAfter = 0;
    let bravoAccepted = 0;
    // About ten times acme's quota within two seconds, bravo at its usual pace alongside.
    const started = Date.now();
    for (let i = 0; Date.now() - started < 2_000; i++) {
      const a = await send(p.tenant.writeKey, 'acme', i * 100, 100);
      if (a.statusCode === 202) acmeAccepted += a.json().accepted;
      else {
        expect(a.statusCode).toBe(429);
        expect(a.json()).toMatchObject({ code: 'SLUICE_ERR_QUOTA_EXCEEDED', field: 'events_per_second' });
        retryAfter = Math.max(retryAfter, Number(a.headers['retry-after']));
        refused++;
      }
      if (i % 5 === 0) {
        const b = await send(other.writeKey, 'bravo', i * 10, 10);
        expect(b.statusCode).toBe(202);
        bravoAccepted += b.json().accepted;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(refused).toBeGreaterThan(0);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    // The bucket holds one second of quota; over two seconds at most about three seconds' worth get in.
    expect(acmeAccepted).toBeLessThanOrEqual(500 * 3 + 100);
    expect(acmeAccepted).toBeGreaterThanOrEqual(500);
    await until(async () => (await p!.store.rawStats('acme')).events === acmeAccepted && (await p!.store.rawStats('bravo')).events === bravoAccepted);
    expect(await p.store.rawStats('acme')).toEqual({ events: acmeAccepted, distinctKeys: acmeAccepted });

    const metrics = (await p.app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = metrics.split('\n').find((l) => l.startsWith('sluice_ingest_refused_requests_total{tenant="acme",reason="events_per_second"}'));
    expect(Number(line?.split(' ').pop())).toBe(refused);
    expect(metrics).not.toMatch(/sluice_ingest_refused_requests_total\{tenant="bravo"/);
    const status = await p.app.inject({ method: 'GET', url: '/v1/status', headers: { authorization: `Bearer ${p.tenant.adminKey}` } });
    expect(status.json().quota).toMatchObject({ events_per_second: 500, backlog: 1_000_000, current_backlog: 0 });
  });

  it('quota.backlog-cap-and-bytes-quota-answer-429-and-patch-tenant-changes-quotas', async () => {
    p = await startPipeline({}, { workers: false });
    const admin = { authorization: `Bearer ${p.tenant.adminKey}` };
    const patch = await p.app.inject({ method: 'PATCH', url: '/v1/tenant', headers: admin, payload: JSON.stringify({ backlog: 150, bytes_per_second: 100_000 }) });
    expect(patch.json().settings.quota).toEqual({ backlog: 150, bytesPerSecond: 100_000 });
    const send = (from: number, n: number) => p!.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p!.tenant.writeKey}` }, payload: batch('acme', from, n) });
    expect((await send(0, 100)).statusCode).toBe(202);
    expect((await send(100, 100)).statusCode).toBe(202);
    // No worker runs: 200 events wait, over the cap of 150.
    const over = await send(200, 10);
    expect(over.statusCode).toBe(429);
    expect(over.json()).toMatchObject({ field: 'backlog' });
    expect(over.headers['retry-after']).toBe('1');
    await p.app.inject({ method: 'PATCH', url: '/v1/tenant', headers: admin, payload: JSON.stringify({ backlog: null, bytes_per_second: 1000 }) });
    expect((await send(300, 50)).statusCode).toBe(202);
    const bytes = await send(400, 50);
    expect(bytes.statusCode).toBe(429);
    expect(bytes.json()).toMatchObject({ field: 'bytes_per_second' });
    expect(Number(bytes.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const bad = await p.app.inject({ method: 'PATCH', url: '/v1/tenant', headers: admin, payload: JSON.stringify({ events_per_second: -1 }) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ field: 'events_per_second' });
  });

  it('quota.the-bytes-quota-counts-a-gzip-body-decompressed', async () => {
    // 18 KB of gzip carried 9 MB of events: counted on the wire, 213 times the quota went through.
    p = await withBytesQuota(50_000);
    const statuses: number[] = [];
    for (let r = 0; r < 4; r++) {
      const b = gzipBody(r * 200);
      expect(b.length).toBeLessThan(10_000); // about 400 KB decompressed
      const res = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: b });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) expect(res.json()).toMatchObject({ field: 'bytes_per_second' });
    }
    // The first is admitted (the bucket had room when it arrived) and overdraws it by 8x: the next ones wait.
    expect(statuses[0]).toBe(202);
    expect(statuses.slice(1)).toEqual([429, 429, 429]);
  });

  it('quota.gzip-bodies-sent-at-once-pass-about-one-body-not-one-each', async () => {
    // Each was admitted on its size on the wire, then inflated to its full size: eight bodies sent
    // at once all passed, 64 times the quota.
    p = await withBytesQuota(50_000);
    const bodies = Array.from({ length: 8 }, (_, r) => gzipBody(r * 200));
    const answers = await Promise.all(
      bodies.map((b) => p!.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p!.tenant.writeKey}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: b })),
    );
    const accepted = answers.filter((a) => a.statusCode === 202);
    expect(accepted.length).toBeLessThanOrEqual(1);
    for (const a of answers.filter((x) => x.statusCode !== 202)) {
      expect(a.statusCode).toBe(429);
      expect(a.json()).toMatchObject({ field: 'bytes_per_second' });
    }
    const heads = (await p.log.positions('any')).reduce((s, x) => s + x.head, 0);
    expect(heads).toBe(accepted.length * 200);
    // The refusals were the quota's, not the bodies': with the quota lifted the same body passes.
    await p.app.inject({ method: 'PATCH', url: '/v1/tenant', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: JSON.stringify({ bytes_per_second: 0 }) });
    const later = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: gzipBody(10_000) });
    expect(later.statusCode).toBe(202);
  });

  it('saturation.a-log-backlog-over-its-cap-answers-503-with-retry-after-and-nothing-partial', async () => {
    p = await startPipeline({ limits: { logBacklog: 100 } }, { workers: false });
    const send = (from: number) => p!.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p!.tenant.writeKey}` }, payload: batch('acme', from, 120) });
    expect((await send(0)).statusCode).toBe(202);
    let r = await send(1000);
    for (const end = Date.now() + 5_000; r.statusCode === 202 && Date.now() < end; r = await send(1000)) await new Promise((x) => setTimeout(x, 100));
    expect(r.statusCode).toBe(503);
    expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_OVERLOADED' });
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const heads = (await p.log.positions('any')).reduce((s, x) => s + x.head, 0);
    expect(heads % 120).toBe(0);
  });
});
