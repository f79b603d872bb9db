import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { CLI } from '../helpers/server.js';

/**
 * A tenant's admin key could lift the quotas the operator set on it (PATCH /v1/tenant
 * {"events_per_second": 0}) and flood the shared log up to the whole process's cap. What the
 * operator sets with `sluice tenant set` on the server is now a ceiling: the tenant may lower
 * its quota under it, not raise it past it, make it unlimited or put the default back. Where
 * the operator set none, the server's configured default is the ceiling (a tenant's admin key
 * made its backlog unlimited past the default 1,000,000).
 */
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({}, { workers: false });
});
afterAll(async () => {
  await p?.close();
});

it("tenants.the-operator's-quota-is-a-ceiling-the-tenant's-admin-key-cannot-raise", async () => {
  const set = spawnSync(process.execPath, [CLI, 'tenant', 'set', 'acme', '--events-per-second', '10', '--backlog', '100', '--data-dir', p.config.dataDir], { encoding: 'utf8', timeout: 30_000 });
  expect(set.status, set.stderr).toBe(0);
  const patch = (body: Record<string, unknown>) => p.app.inject({ method: 'PATCH', url: '/v1/tenant', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: body });
  for (const [body, field] of [
    [{ events_per_second: 0 }, 'events_per_second'],
    [{ events_per_second: 11 }, 'events_per_second'],
    [{ backlog: null }, 'backlog'],
    [{ events_per_second: 5, backlog: 1_000 }, 'backlog'],
  ] as const) {
    const res = await patch(body);
    expect(res.statusCode, JSON.stringify(body)).toBe(403);
    expect(res.json()).toMatchObject({ code: 'SLUICE_ERR_FORBIDDEN', field, message: expect.stringMatching(/the operator set .* at most \d+ for this tenant/) });
  }
  // Nothing of a refused change was applied.
  expect((await p.catalog.settings('acme')).quota).toEqual({ eventsPerSecond: 10, backlog: 100 });
  // Lowering is the tenant's own business; a quota without a ceiling stays its to set.
  expect((await patch({ events_per_second: 5, bytes_per_second: 0 })).statusCode).toBe(200);
  expect((await p.catalog.settings('acme')).quota).toEqual({ eventsPerSecond: 5, backlog: 100, bytesPerSecond: 0 });
  // The operator lifts the ceiling with "default": the tenant may then raise it.
  expect(spawnSync(process.execPath, [CLI, 'tenant', 'set', 'acme', '--events-per-second', 'default', '--data-dir', p.config.dataDir], { encoding: 'utf8', timeout: 30_000 }).status).toBe(0);
  expect((await patch({ events_per_second: 50 })).statusCode).toBe(200);
});

it("tenants.the-server's-default-quota-is-a-ceiling-where-the-operator-set-none", async () => {
  // quotas.backlog defaults to 1,000,000 events per tenant. Without a ceiling of the operator's,
  // a tenant's admin key could make its own unlimited (0) and hold the shared log's space.
  const p2 = await startPipeline({}, { workers: false });
  try {
    const patch = (body: Record<string, unknown>) => p2.app.inject({ method: 'PATCH', url: '/v1/tenant', headers: { authorization: `Bearer ${p2.tenant.adminKey}` }, payload: body });
    for (const body of [{ backlog: 0 }, { backlog: 1_000_001 }]) {
      const res = await patch(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(403);
      expect(res.json()).toMatchObject({ code: 'SLUICE_ERR_FORBIDDEN', field: 'backlog', message: expect.stringContaining("the server's default backlog is 1000000") });
    }
    expect((await p2.catalog.settings('acme')).quota).toEqual({});
    // Lower, and back to the default, are the tenant's to choose; a quota whose default is
    // unlimited (events/s here) has no ceiling.
    expect((await patch({ backlog: 5_000, events_per_second: 100_000 })).statusCode).toBe(200);
    expect((await p2.catalog.settings('acme')).quota).toEqual({ backlog: 5_000, eventsPerSecond: 100_000 });
    expect((await patch({ backlog: null })).statusCode).toBe(200);
    expect((await p2.catalog.settings('acme')).quota).toEqual({ eventsPerSecond: 100_000 });
  } finally {
    await p2.close();
  }
});
