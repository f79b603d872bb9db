import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { parseQuery } from '../../src/core/query.js';
import { BackfillRunner } from '../../src/ops/backfill.js';
import { TypedColumnBuilds } from '../../src/ops/typed-columns.js';
import { PROMOTION } from '../../src/ports/typed-columns.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * An undeclared property gets typed columns once raw queries read it often enough
 * (PROMOTION in src/ports/typed-columns.ts): ten raw queries on one type within a day promote
 * it, the type's columns are built, the same query is then answered from them with the same
 * rows, and a week without a raw read of it demotes it. The schema's own properties keep their
 * columns throughout; a property of a type with no schema is promoted too.
 */
let p: Pipeline;
let store: DuckdbStore;
let runner: BackfillRunner;
let now = Date.now();
let builds: TypedColumnBuilds;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

beforeAll(async () => {
  p = await startPipeline();
  store = p.store as DuckdbStore;
  runner = new BackfillRunner(store, { signal: new AbortController().signal });
  builds = new TypedColumnBuilds(store, runner, { now: () => now });
  const schema = { type: 'object', properties: { amount: { type: 'number' } } };
  const put = await p.app.inject({ method: 'PUT', url: '/v1/schemas/order', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: { schema, owner: 'orders-team' } });
  expect(put.statusCode, put.body).toBeLessThan(300);
  const ts = new Date(Date.now() - HOUR).toISOString();
  const events = Array.from({ length: 300 }, (_, i) => [
    { type: 'order', idempotency_key: `o-${i}`, ts, properties: { amount: i % 17, region: `r${i % 4}`, plan: `p${i % 3}` } },
    { type: 'visit', idempotency_key: `v-${i}`, ts, properties: { path: `/p/${i % 5}` } },
  ]).flat();
  const r = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: events });
  expect(r.statusCode).toBe(202);
  await until(async () => (await store.rawStats('acme')).events === 600);
  await builds.sync(p.catalog);
  await runner.idle();
}, 60_000);
afterAll(async () => {
  await p?.close();
});

const spec = (event: string, groupBy: string[]) =>
  parseQuery({ event, from: new Date(Date.now() - 2 * HOUR).toISOString(), to: new Date(Date.now() + HOUR).toISOString(), interval: null, group_by: groupBy, measures: ['count', 'sum:properties.amount'] }, 'acme', Date.now(), { maxBuckets: 1_000, maxRows: 1_000 });
const sorted = (rows: unknown[][]) => rows.map((r) => r.map(String).join('|')).sort();
const sets = async (type: string) => (await store.typedColumns.list('acme')).filter((s) => s.type === type).map((s) => [s.status, s.properties.join(',')]);

it('typed-columns.an-undeclared-property-read-by-ten-raw-queries-gets-columns-and-a-week-unread-loses-them', async () => {
  expect(await sets('order')).toEqual([['ready', 'amount']]);
  const byRegion = spec('order', ['properties.region']);
  const first = await store.query(byRegion, 1_000);
  expect(first.typed).toBeUndefined();
  // Nine more reads: the tenth promotes it.
  for (let i = 1; i < PROMOTION.PROMOTE_AFTER_QUERIES - 1; i++) await store.query(byRegion, 1_000);
  await builds.sync(p.catalog);
  expect(await sets('order')).toEqual([['ready', 'amount']]);
  await store.query(byRegion, 1_000);
  await builds.sync(p.catalog);
  await runner.idle();
  expect(await sets('order')).toEqual([['ready', 'amount,region']]);
  const listed = await p.app.inject({ method: 'GET', url: '/v1/typed-columns', headers: { authorization: `Bearer ${p.tenant.readKey}` } });
  expect(listed.json().typed_columns).toEqual([{ type: 'order', properties: ['amount', 'region'], promoted: ['region'], status: 'ready', build: expect.any(String) }]);
  // A ready set has nothing to build: the refusal says so, and where to look, instead of "no view".
  const backfill = await p.app.inject({ method: 'POST', url: '/v1/backfills', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: { view: 'typed:order' } });
  expect(backfill.statusCode).toBe(404);
  expect(backfill.json()).toMatchObject({ code: 'SLUICE_ERR_NOT_FOUND', field: 'view' });
  expect(backfill.json().message).toMatch(/no typed columns of "order" are being built.*GET \/v1\/typed-columns.*a ready set .* needs none/);
  const typed = await store.query(byRegion, 1_000);
  expect(typed.typed).toBe(true);
  expect(sorted(typed.rows)).toEqual(sorted(first.rows));
  expect(typed.rows.map((r) => [r[0], Number(r[1])]).sort()).toEqual([['r0', 75], ['r1', 75], ['r2', 75], ['r3', 75]]);

  // Reads from the columns keep it promoted; a week without one demotes it.
  now += 6 * DAY;
  await store.query(byRegion, 1_000);
  await builds.sync(p.catalog);
  expect(await sets('order')).toEqual([['ready', 'amount,region']]);
  now = Date.now() + 8 * DAY;
  await builds.sync(p.catalog);
  await runner.idle();
  expect(await sets('order')).toEqual([['ready', 'amount']]);
  expect((await store.query(byRegion, 1_000)).typed).toBeUndefined();
  now = Date.now();
});

it('typed-columns.a-type-without-a-schema-is-promoted-and-queries-from-views-or-other-types-do-not-count', async () => {
  const byPath = spec('visit', ['properties.path']);
  // Nine reads two days ago.
  for (let i = 0; i < PROMOTION.PROMOTE_AFTER_QUERIES - 1; i++) store.typedColumns.noteQuery(byPath, Date.now() - 2 * DAY + i * HOUR);
  const before = await store.query(byPath, 1_000);
  // Reads of the same name on another type, answers from a view, and reads spread over more than a day do not add up.
  for (let i = 0; i < 5; i++) await store.query(spec('order', ['properties.path']), 1_000);
  const view = await p.app.inject({ method: 'PUT', url: '/v1/views/by_path', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: { event: 'visit', dimensions: ['properties.path'], measures: ['count'], grain: '1h' } });
  expect(view.statusCode).toBe(201);
  await until(async () => (await store.views.list('acme')).some((v) => v.name === 'by_path' && v.status === 'ready'));
  const fromView = parseQuery({ event: 'visit', from: new Date(Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR).toISOString(), to: new Date(Math.floor(Date.now() / HOUR) * HOUR + HOUR).toISOString(), interval: null, group_by: ['properties.path'], measures: ['count'] }, 'acme', Date.now(), { maxBuckets: 1_000, maxRows: 1_000 });
  for (let i = 0; i < 20; i++) expect((await store.query(fromView, 1_000)).source).toBe('view:by_path');
  // `before` was the first read within the day; eight more make nine.
  for (let i = 0; i < PROMOTION.PROMOTE_AFTER_QUERIES - 2; i++) await store.query(byPath, 1_000);
  await builds.sync(p.catalog);
  expect(await sets('visit')).toEqual([]);
  await store.query(byPath, 1_000);
  await builds.sync(p.catalog);
  await runner.idle();
  // Both properties the query reads (it sums `amount`, which visits do not have: an empty column).
  expect(await sets('visit')).toEqual([['ready', 'amount,path']]);
  expect(await sets('order')).toEqual([['ready', 'amount']]);
  const after = await store.query(byPath, 1_000);
  expect(after.typed).toBe(true);
  expect(sorted(after.rows)).toEqual(sorted(before.rows));
});

it('typed-columns.a-property-named-star-or-with-a-newline-gets-a-column-and-reads-its-own-values', async () => {
  // "*" is every member to DuckDB's JSONPath: as a typed column it failed every commit of every
  // tenant (a list of paths may not hold a wildcard), as a field it answered every member's
  // values. A newline in a name was not unescaped: the field read nothing.
  const schema = { type: 'object', properties: { '*': { type: 'string' }, 'a\nb': { type: 'string' }, n: { type: 'number' } } };
  const put = await p.app.inject({ method: 'PUT', url: '/v1/schemas/star', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: { schema, owner: 'edge-team' } });
  expect(put.statusCode, put.body).toBeLessThan(300);
  const send = async (prefix: string) => {
    const events = Array.from({ length: 50 }, (_, i) => ({ type: 'star', idempotency_key: `${prefix}-${i}`, properties: { '*': `s${i % 3}`, 'a\nb': `nl${i % 2}`, n: i } }));
    expect((await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: events })).statusCode).toBe(202);
  };
  const query = async (groupBy: string) =>
    (await p.app.inject({ method: 'POST', url: '/v1/query', headers: { authorization: `Bearer ${p.tenant.readKey}` }, payload: { event: 'star', from: '-1h', to: 'now', interval: null, group_by: [groupBy], measures: ['count', 'sum:n'], order_by: groupBy } })).json();
  await send('before');
  await until(async () => (await store.rawStats('acme')).events === 650);
  const fromJson = [await query('properties["*"]'), await query('properties["a\\nb"]')];
  expect(fromJson.map((a) => [a.typed_columns, a.rows])).toEqual([
    [undefined, [['s0', 17, 408], ['s1', 17, 425], ['s2', 16, 392]]],
    [undefined, [['nl0', 25, 600], ['nl1', 25, 625]]],
  ]);
  await builds.sync(p.catalog);
  await runner.idle();
  expect(await sets('star')).toEqual([['ready', '*,a\nb,n']]);
  // Commits go on, and the columns answer what the JSON did.
  await send('after');
  await until(async () => (await store.rawStats('acme')).events === 700);
  const typed = await query('properties["*"]');
  expect([typed.typed_columns, typed.rows]).toEqual([true, [['s0', 34, 816], ['s1', 34, 850], ['s2', 32, 784]]]);
  expect((await query('properties["a\\nb"]')).rows).toEqual([['nl0', 50, 1200], ['nl1', 50, 1250]]);
});

it('typed-columns.past-64-properties-a-promoted-name-never-takes-a-declared-ones-column', async () => {
  // 64 declared properties fill a type's columns; a promoted name sorting before them all stays JSON-only.
  const properties = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`p${String(i).padStart(2, '0')}`, { type: 'number' }]));
  const put = await p.app.inject({ method: 'PUT', url: '/v1/schemas/wide', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: { schema: { type: 'object', properties }, owner: 'wide-team' } });
  expect(put.statusCode, put.body).toBeLessThan(300);
  const r = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: [{ type: 'wide', idempotency_key: 'w-1', properties: { a: 'x', p00: 1 } }] });
  expect(r.statusCode).toBe(202);
  await until(async () => (await store.rawStats('acme')).events === 701);
  for (let i = 0; i < PROMOTION.PROMOTE_AFTER_QUERIES; i++) await store.query(spec('wide', ['properties.a']), 1_000);
  await builds.sync(p.catalog);
  await runner.idle();
  const [set] = await store.typedColumns.list('acme').then((all) => all.filter((s) => s.type === 'wide'));
  expect([set!.status, set!.properties.length, set!.properties.includes('a'), set!.properties.includes('p63')]).toEqual(['ready', 64, false, true]);
});
