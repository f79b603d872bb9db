import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

const view = { event: 'page', measures: ['count'], grain: '1m' };

describe("names that collide with sluice's own are refused", () => {
  it('names.a-view-named-after-a-sluice-table-is-refused-and-queries-stay-right', async () => {
    p = await startPipeline();
    const admin = { authorization: `Bearer ${p.tenant.adminKey}` };
    for (const name of ['counts_1m', 'views', 'events', 'dead_letters', 'raw', 'sluice_x', 'view_0a1b', 'rollouts', 'pipelines', 'saved_queries', 'alert_rules', 'dlq_groups', 'typed_tables', 'events_tenant_ts']) {
      const res = await p.app.inject({ method: 'PUT', url: `/v1/views/${name}`, headers: admin, payload: view });
      expect(res.statusCode, name).toBe(400);
      expect(res.json(), name).toMatchObject({ code: 'SLUICE_ERR_INVALID_QUERY', field: 'name' });
      expect(res.json().message).toMatch(/reserved by sluice.*choose another name/);
    }
    expect((await p.app.inject({ method: 'GET', url: '/v1/views', headers: admin })).json().views).toEqual([]);
    // counts_1m still answers from the built-in table: 14 raw events, 14 counted.
    const ts = new Date().toISOString();
    const events = Array.from({ length: 14 }, (_, i) => ({ type: 'page', idempotency_key: `p-${i}`, ts }));
    expect((await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: events })).statusCode).toBe(202);
    await until(async () => (await p!.store.rawStats('acme')).events === 14);
    const q = await p.app.inject({ method: 'POST', url: '/v1/query', headers: { authorization: `Bearer ${p.tenant.readKey}` }, payload: { event: 'page', from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString(), interval: '1h', measures: ['count'] } });
    expect(q.statusCode, q.body).toBe(200);
    const { columns, rows } = q.json() as { columns: string[]; rows: unknown[][] };
    expect(rows.reduce((n: number, r) => n + Number(r[columns.indexOf('count')]), 0)).toBe(14);
    // An ordinary name is fine.
    expect((await p.app.inject({ method: 'PUT', url: '/v1/views/pages_1m', headers: admin, payload: view })).statusCode).toBe(201);
  });

  it('names.a-tenant-or-a-configured-view-named-after-a-sluice-table-is-refused', async () => {
    p = await startPipeline();
    await expect(p.catalog.createTenant('events')).rejects.toMatchObject({ code: 'SLUICE_ERR_INVALID_BODY', field: 'name' });
    await expect(p.catalog.createTenant('sluice_ops')).rejects.toMatchObject({ field: 'name' });
    await expect(p.catalog.createTenant('rollouts')).rejects.toMatchObject({ field: 'name' });
    expect(() => loadConfig({ env: {}, flags: { views: [{ name: 'counts_1m', ...view }] } })).toThrow(/views\[0\] \("counts_1m"\): view name "counts_1m" is reserved/);
  });
});
