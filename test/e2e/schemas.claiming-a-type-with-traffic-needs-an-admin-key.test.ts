import { afterEach, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

it('schemas.claiming-a-type-with-traffic-needs-an-admin-key', async () => {
  p = await startPipeline();
  const put = async (key: string, type: string, payload: unknown) => {
    const res = await p!.app.inject({ method: 'PUT', url: `/v1/schemas/${type}`, headers: { authorization: `Bearer ${key}` }, payload: payload as object });
    return { status: res.statusCode, body: res.json() as Record<string, any> };
  };
  const ts = new Date().toISOString();
  const events = Array.from({ length: 30 }, (_, i) => ({ type: 'checkout', idempotency_key: `c-${i}`, ts, properties: { amount: i } }));
  await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: events });
  await until(async () => (await p!.store.rawStats('acme')).events === 30);

  const growth = await p.catalog.createKey('acme', 'schema', 'growth');
  const hostile = { type: 'object', required: ['coupon'] }; // every live event fails it
  const claim = await put(growth, 'checkout', { schema: hostile, force: true, reason: 'mine now' });
  expect(claim.status).toBe(403);
  expect(claim.body).toMatchObject({ code: 'SLUICE_ERR_FORBIDDEN', field: 'Authorization' });
  expect(claim.body.message).toMatch(/has traffic \(30 recent events\): claiming a type with traffic needs an admin key/);
  expect((await put(growth, 'checkout', { schema: { type: 'object' } })).status).toBe(403); // even a harmless one
  // A dry run changes nothing and may look; a type without traffic is still claimed by its first publisher.
  expect((await put(growth, 'checkout', { schema: hostile, dry_run: true })).body).toMatchObject({ published: false, traffic: { checked: 30, failed: 30 } });
  expect((await put(growth, 'signup', { schema: { type: 'object' } })).status).toBe(201);
  expect((await p.catalog.schemas.latest('acme', 'checkout'))).toBeNull();
  // Events keep flowing unvalidated until an admin decides.
  const more = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: [{ type: 'checkout', idempotency_key: 'c-after', ts }] });
  expect(more.json()).toMatchObject({ accepted: 1 });
  const byAdmin = await put(p.tenant.adminKey, 'checkout', { owner: 'growth', schema: { type: 'object', properties: { amount: { type: 'number' } } } });
  expect(byAdmin.status).toBe(201);
  expect(byAdmin.body).toMatchObject({ owner: 'growth', traffic: { failed: 0 } });
  expect((await put(growth, 'checkout', { schema: { type: 'object', properties: { amount: { type: 'number' } } } })).status).toBe(201); // now its owner
});

it('schemas.traffic-that-is-held-or-dead-lettered-counts-as-traffic-for-a-claim', async () => {
  p = await startPipeline();
  const growth = await p.catalog.createKey('acme', 'schema', 'growth');
  const admin = { authorization: `Bearer ${p.tenant.adminKey}` };
  const put = async (type: string) =>
    (await p!.app.inject({ method: 'PUT', url: `/v1/schemas/${type}`, headers: { authorization: `Bearer ${growth}` }, payload: { schema: { type: 'object', required: ['zzz'] } } })).json() as Record<string, any>;
  const send = (type: string, n: number) =>
    p!.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p!.tenant.writeKey}` }, payload: Array.from({ length: n }, (_, i) => ({ type, idempotency_key: `${type}-${i}` })) });
  // Held while the tenant is paused: nothing stored, yet the type has traffic.
  expect((await p.app.inject({ method: 'POST', url: '/v1/tenant/pause', headers: admin })).statusCode).toBe(200);
  await send('held_t', 3);
  await until(async () => ((await p!.catalog.deadLetters.counts('acme')).held ?? 0) === 3);
  expect(await put('held_t')).toMatchObject({ code: 'SLUICE_ERR_FORBIDDEN', message: expect.stringMatching(/held or dead-lettered/) });
  expect((await p.app.inject({ method: 'POST', url: '/v1/tenant/resume', headers: admin })).statusCode).toBe(200);
  // Dead-lettered as an unknown type: the same.
  expect((await p.app.inject({ method: 'PATCH', url: '/v1/tenant', headers: admin, payload: { unknown_types: 'dead-letter' } })).statusCode).toBe(200);
  await send('dl_t', 2);
  await until(async () => (await p!.catalog.deadLetters.list('acme', { type: 'dl_t' }, 10)).entries.length === 2);
  expect(await put('dl_t')).toMatchObject({ code: 'SLUICE_ERR_FORBIDDEN' });
});
