import { afterEach, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

it('tenant.pause-with-a-malformed-or-invalid-body-changes-nothing', async () => {
  p = await startPipeline({}, { workers: false });
  const headers = { authorization: `Bearer ${p.tenant.adminKey}`, 'content-type': 'application/json' };
  const paused = async () => (await p!.catalog.settings('acme')).paused;
  for (const [payload, field] of [
    ['{"reason": "maint', 'body'],
    ['[]', 'body'],
    ['null', 'body'],
    ['{"reason": 5}', 'reason'],
    ['{"why": "maint"}', 'why'],
  ] as const) {
    const res = await p.app.inject({ method: 'POST', url: '/v1/tenant/pause', headers, payload });
    expect(res.statusCode, payload).toBe(400);
    expect(res.json(), payload).toMatchObject({ field });
    expect(await paused(), payload).toBeNull();
  }
  expect((await p.catalog.auditLog('acme', 100)).filter((e) => e.action === 'tenant.settings')).toEqual([]);

  const ok = await p.app.inject({ method: 'POST', url: '/v1/tenant/pause', headers, payload: '{"reason": "maintenance"}' });
  expect(ok.statusCode).toBe(200);
  expect(await paused()).toMatchObject({ reason: 'maintenance' });
  await p.app.inject({ method: 'POST', url: '/v1/tenant/resume', headers: { authorization: headers.authorization } });
  // No body at all: the default reason.
  expect((await p.app.inject({ method: 'POST', url: '/v1/tenant/pause', headers: { authorization: headers.authorization } })).statusCode).toBe(200);
  expect(await paused()).toMatchObject({ reason: 'paused by an operator' });
});
