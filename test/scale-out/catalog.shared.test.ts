import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deploy, type Deployment } from '../helpers/scale-out.js';
import { until } from '../helpers/pipeline.js';
import { CLI, type ServerProcess } from '../helpers/server.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/**
 * The catalog on PostgreSQL, shared by role processes that share nothing else: a schema
 * published through the query process is enforced by both ingest processes; the dead letters
 * they write are listed, replayed once (twice changes nothing) by the query process; a key
 * revoked with the CLI stops working everywhere; one tenant's keys never see another's data.
 */
const ready = (await natsAvailable()) && (await postgresAvailable());
const run = promisify(execFile);

let d: Deployment;
let ingest: ServerProcess[] = [];
let query: ServerProcess;

beforeAll(async () => {
  if (!ready) return;
  d = await deploy({ partitions: 4 });
  await d.start('worker');
  ingest = await Promise.all([d.start('ingest'), d.start('ingest')]);
  query = await d.start('query');
}, 60_000);

afterAll(async () => {
  if (ready) await d.cleanup();
}, 60_000);

async function call(base: string, method: string, path: string, key: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function cli(...args: string[]): Promise<string> {
  const catalog = d.args[d.args.indexOf('--catalog') + 1]!;
  return (await run(process.execPath, [CLI, ...args, '--catalog', catalog], { env: { ...process.env, ...d.env } })).stdout;
}

const count = async (key: string): Promise<number> => {
  const r = await call(query.url, 'POST', '/v1/query', key, { event: 'checkout', from: '-1h', to: 'now', interval: null, measures: ['count'], source: 'raw' });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.rows[0][0] as number;
};

it.skipIf(!ready)('catalog.shared-schemas-dead-letters-replay-and-keys-across-role-processes', async () => {
  const admin = d.tenant.adminKey;
  const v1 = { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } };
  expect((await call(query.url, 'PUT', '/v1/schemas/checkout', admin, { owner: 'payments', schema: v1 })).status).toBe(201);
  // Both ingest processes notice the new epoch within events.schemaRefreshMs (1 s).
  await new Promise((r) => setTimeout(r, 1_500));
  for (const [i, p] of ingest.entries()) {
    const r = await call(p.url, 'POST', '/v1/events', d.tenant.writeKey, [
      { type: 'checkout', key: `u${i}`, idempotency_key: `good-${i}`, properties: { amount: 10 } },
      { type: 'checkout', key: `u${i}`, idempotency_key: `bad-${i}`, properties: { amount: 'ten' } },
    ]);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ accepted: 1, rejected: [{ index: 1, code: 'schema_violation', path: '/properties/amount', dead_lettered: true }] });
  }
  await until(async () => (await call(query.url, 'GET', '/v1/dlq', admin)).body.entries.length === 2, 10_000, 100);
  await until(async () => (await count(d.tenant.readKey)) === 2, 30_000, 100);

  // Fixed, replayed once; the second replay changes nothing.
  const v2 = { type: 'object', properties: { amount: { type: ['number', 'string'] } } };
  expect((await call(query.url, 'PUT', '/v1/schemas/checkout', admin, { schema: v2 })).status).toBe(201);
  expect((await call(query.url, 'POST', '/v1/dlq/replay', admin, {})).body).toMatchObject({ matched: 2, replayed: 2, failed: 0, duplicates: 0 });
  await until(async () => (await count(d.tenant.readKey)) === 4, 30_000, 100);
  expect((await call(query.url, 'POST', '/v1/dlq/replay', admin, {})).body).toMatchObject({ matched: 0, replayed: 0 });
  await new Promise((r) => setTimeout(r, 1_000));
  expect(await count(d.tenant.readKey)).toBe(4);
  expect(await d.stored()).toEqual({ rows: 4, keys: 4 });
  expect((await call(query.url, 'GET', '/v1/dlq/bad-0', admin)).body).toMatchObject({ status: 'replayed', replays: 1 });

  // Another tenant, made with the CLI on the shared catalog: its keys see none of acme's data.
  const other = JSON.parse(await cli('tenant', 'create', 'other', '--json')) as { write_key: string; read_key: string; admin_key: string };
  expect(await count(other.read_key)).toBe(0);
  expect((await call(query.url, 'GET', '/v1/events/good-0', other.read_key)).body).toMatchObject({ status: 'unknown', accepted: false, stored: null });
  expect((await call(query.url, 'GET', '/v1/dlq', other.admin_key)).body.entries).toEqual([]);
  expect((await call(query.url, 'GET', '/v1/events/good-0', d.tenant.readKey)).body).toMatchObject({ status: 'stored', accepted: true });

  // Wrong scope, wrong key, revoked key.
  expect((await call(ingest[0]!.url, 'POST', '/v1/events', d.tenant.readKey, [{ type: 'checkout', properties: { amount: 1 } }])).status).toBe(403);
  expect((await call(ingest[0]!.url, 'POST', '/v1/events', `${d.tenant.writeKey.slice(0, -1)}x`, [{ type: 'checkout', properties: { amount: 1 } }])).status).toBe(401);
  await cli('key', 'revoke', d.tenant.writeKey);
  const revokedAt = Date.now();
  await until(
    async () => (await Promise.all(ingest.map((p) => call(p.url, 'POST', '/v1/events', d.tenant.writeKey, [{ type: 'checkout', properties: { amount: 1 } }])))).every((r) => r.status === 401),
    10_000,
    200,
  );
  console.log(`shared catalog: a key revoked with the CLI was refused by both ingest processes ${((Date.now() - revokedAt) / 1000).toFixed(1)} s later`);
}, 120_000);
