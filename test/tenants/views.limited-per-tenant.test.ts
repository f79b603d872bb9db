import { afterEach, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

it('views.one-more-than-query.viewsPerTenant-is-refused-and-the-neighbour-still-declares-views', async () => {
  p = await startPipeline({ query: { viewsPerTenant: 2 } });
  const beta = await p.catalog.createTenant('beta');
  const put = async (key: string, name: string, event = 'page') => {
    const res = await p!.app.inject({ method: 'PUT', url: `/v1/views/${name}`, headers: { authorization: `Bearer ${key}` }, payload: { event, measures: ['count'], grain: '1m' } });
    return { status: res.statusCode, body: res.json() as Record<string, unknown> };
  };
  const a = p.tenant.adminKey;
  expect((await put(a, 'v1')).status).toBe(201);
  expect((await put(a, 'v2')).status).toBe(201);
  const third = await put(a, 'v3');
  expect(third.status).toBe(409);
  expect(third.body).toMatchObject({ code: 'SLUICE_ERR_CONFLICT', field: 'query.viewsPerTenant' });
  expect(third.body.message).toMatch(/the tenant has 2 views, the limit \(query.viewsPerTenant = 2\)/);
  expect((await put(a, 'v2', 'signup')).status).toBe(200); // changing one is not one more
  expect((await put(beta.adminKey, 'v1')).status).toBe(201); // the limit is per tenant
  await p.app.inject({ method: 'DELETE', url: '/v1/views/v1', headers: { authorization: `Bearer ${a}` } });
  expect((await put(a, 'v3')).status).toBe(201);
});

it('views.concurrent-declarations-cannot-pass-the-limit-together', async () => {
  p = await startPipeline({ query: { viewsPerTenant: 5 } });
  const admin = { authorization: `Bearer ${p.tenant.adminKey}` };
  // 40 at once: each used to count the same views and pass the limit (100 at once made 100).
  const statuses = await Promise.all(
    Array.from({ length: 40 }, (_, i) => p!.app.inject({ method: 'PUT', url: `/v1/views/c${i}`, headers: admin, payload: { event: 'page', measures: ['count'], grain: '1m' } }).then((r) => r.statusCode)),
  );
  expect(statuses.filter((s) => s === 201)).toHaveLength(5);
  expect(statuses.filter((s) => s === 409)).toHaveLength(35);
  expect((await p.app.inject({ method: 'GET', url: '/v1/views', headers: admin })).json().views).toHaveLength(5);
});
