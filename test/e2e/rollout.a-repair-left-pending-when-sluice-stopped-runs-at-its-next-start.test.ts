import { afterEach, expect, it } from 'vitest';
import { embeddedPaths } from '../../src/backends/embedded.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { act } from '../../src/rollout/service.js';
import { apiCall, rolloutShare } from '../helpers/api.js';
import { poll } from '../helpers/poll.js';
import { freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * A rollback saved while no server runs (or just before one stopped) leaves its repair
 * pending: the next start takes it up, and the events the candidate stored are re-derived
 * with the live version.
 */
let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
});

it('rollout.a-repair-left-pending-when-sluice-stopped-runs-at-its-next-start', async () => {
  const dir = tmpDir();
  server = await startServer(dir, await freePort());
  const keys = keysFrom(server.stdout);
  const call = (key: string, method: string, path: string, body?: unknown) => apiCall(server!.url, key, method, path, body);
  expect((await call(keys.adminKey, 'PUT', '/v1/pipeline', { steps: [{ set: { field: 'properties.v', value: '1' } }] })).status).toBe(200);
  expect((await call(keys.adminKey, 'POST', '/v1/pipeline/versions', { steps: [{ set: { field: 'properties.v', value: '2' } }] })).body).toMatchObject({ version: 2 });
  const created = await call(keys.adminKey, 'POST', '/v1/rollouts', {
    change: { pipeline_version: 2 },
    steps: [{ ramp: { percents: [100], step_duration: '1h' } }],
    guardrails: { min_events: 1_000_000 },
    auto: false,
  });
  expect(created.body).toMatchObject({ state: 'ramp', share: 100 });
  const id = created.body!.id as string;
  // The workers take the route at the controller's next pass, which then reports the share.
  const shareOf = () => rolloutShare(server!.url, id);
  expect(await poll(shareOf, (s) => s === '100')).toBe('100');
  const events = Array.from({ length: 200 }, (_, i) => ({ type: 'checkout', key: `u${i}`, idempotency_key: `k${i}`, properties: { amount: i } }));
  expect((await call(keys.writeKey, 'POST', '/v1/events', events)).status).toBe(202);
  const byVersion = async () => (await call(keys.readKey, 'POST', '/v1/query', { interval: null, from: '-1h', source: 'raw', group_by: ['pipeline_version'] })).body!.rows as [string, number][];
  expect(await poll(byVersion, (rows) => rows.length === 1 && rows[0]![1] === 200)).toEqual([['2', 200]]);
  await stop(server);
  server = null;

  // Aborted on the catalog while sluice is down: the repair is pending, and nothing runs it yet.
  const catalog = new SqliteCatalog(embeddedPaths(dir).sqlite);
  const tenant = (await catalog.listTenants())[0]!.name;
  expect(await act(catalog, tenant, id, 'abort', Date.now(), 'test')).toMatchObject({ state: 'aborted', repair: { status: 'pending' } });
  await catalog.close();

  server = await startServer(dir, await freePort());
  const repaired = await poll(
    async () => (await call(keys.adminKey, 'GET', `/v1/rollouts/${id}`)).body!,
    (r) => r.repair?.status === 'done',
  );
  expect(repaired.repair).toMatchObject({ status: 'done', repaired: 200, past_retention: 0 });
  expect(await poll(byVersion, (rows) => rows.length === 1 && rows[0]![0] === '1' && rows[0]![1] === 200)).toEqual([['1', 200]]);
});
