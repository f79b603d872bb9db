import pg from 'pg';
import { expect, it } from 'vitest';
import { deployments } from '../helpers/scale-out.js';
import { until } from '../helpers/pipeline.js';
import { natsAvailable, POSTGRES_URL, postgresAvailable } from '../helpers/services.js';

/**
 * Scale-out: a pipeline version written through the query process reaches both worker
 * processes within events.schemaRefreshMs, and every event stored in PostgreSQL says which
 * version made it.
 */
const ready = (await natsAvailable()) && (await postgresAvailable());
const { deployed } = deployments();
const REFRESH_MS = 300;

it.runIf(ready)('scale-out.transform-version-reaches-every-worker-and-each-row-records-its-version', async () => {
  const d = await deployed({ env: { SLUICE_EVENTS_SCHEMA_REFRESH_MS: String(REFRESH_MS) } });
  await Promise.all([d.start('worker'), d.start('worker')]);
  const [ingest, query] = await Promise.all([d.start('ingest'), d.start('query')]);
  const call = async (url: string, method: string, path: string, key: string, body?: unknown) => {
    const r = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Record<string, any> };
  };
  const send = async (from: number, n: number) => {
    const ts = new Date().toISOString();
    const events = Array.from({ length: n }, (_, i) => ({ type: 'checkout', key: `user-${from + i}`, idempotency_key: `e-${from + i}`, ts, properties: { amount: `${from + i}` } }));
    expect((await call(ingest.url, 'POST', '/v1/events', d.tenant.writeKey, events)).body.accepted).toBe(n);
  };
  const rows = async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      const r = await client.query<{ v: number; n: string; numeric: string }>(
        `SELECT pipeline_version AS v, count(*) AS n, count(*) FILTER (WHERE jsonb_typeof(properties->'amount') = 'number') AS numeric FROM ${d.schema}.events GROUP BY 1 ORDER BY 1`,
      );
      return r.rows.map((x) => [x.v, Number(x.n), Number(x.numeric)]);
    } catch (e: unknown) {
      if ((e as { code?: string }).code === '42P01') return [];
      throw e;
    } finally {
      await client.end();
    }
  };

  await send(0, 200);
  await until(async () => (await rows()).reduce((s, r) => s + (r[1] as number), 0) === 200, 60_000, 100);
  expect(await rows()).toEqual([[0, 200, 0]]);

  const put = await call(query.url, 'PUT', '/v1/pipeline', d.tenant.adminKey, { steps: [{ cast: { field: 'properties.amount', to: 'number' } }], expected_version: 0 });
  expect(put.body.version).toBe(1);
  await new Promise((r) => setTimeout(r, REFRESH_MS + 200));
  // The 16 partitions are shared by the two workers: every row written after the change says version 1.
  await send(200, 400);
  await until(async () => (await rows()).reduce((s, r) => s + (r[1] as number), 0) === 600, 60_000, 100);
  expect(await rows()).toEqual([
    [0, 200, 0],
    [1, 400, 400],
  ]);
  const q = await call(query.url, 'POST', '/v1/query', d.tenant.readKey, {
    from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3_600_000).toISOString(), interval: null,
    group_by: ['pipeline_version'], measures: ['count', 'sum:amount'], order_by: 'pipeline_version',
  });
  // The query language sums numeric strings too; the stored JSON types differ (above).
  expect(q.body.rows).toEqual([
    ['0', 200, (0 + 199) * 100],
    ['1', 400, (200 + 599) * 200],
  ]);
});
