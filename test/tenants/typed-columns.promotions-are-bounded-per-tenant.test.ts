import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { parseQuery, type QuerySpec } from '../../src/core/query.js';
import { PROMOTION } from '../../src/ports/typed-columns.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Promotion of undeclared properties by raw queries (PROMOTION in src/ports/typed-columns.ts)
 * is driven by what a tenant's read key asks: one tenant's queries must not use up what
 * tracking the reads allows for every tenant, and each promoted name is the name read.
 */
const T0 = Date.UTC(2026, 10, 24, 9, 0);
let store: DuckdbStore;

beforeEach(async () => {
  store = new DuckdbStore({ file: path.join(tmpDir(), 'store.duckdb') });
  await store.connect();
});
afterEach(async () => {
  await store.close();
});

const spec = (tenant: string, event: string, field: string): QuerySpec =>
  parseQuery({ event, from: new Date(T0).toISOString(), to: new Date(T0 + 60_000).toISOString(), interval: null, group_by: [field], measures: ['count'] }, tenant, T0, { maxBuckets: 10, maxRows: 10 });

it('typed-columns.one-tenants-reads-of-many-names-do-not-stop-another-tenants-promotions', async () => {
  const now = Date.now();
  // One read each of 10,000 made-up names (of made-up types): each is tracked for a day.
  for (let i = 0; i < 10_000; i++) store.typedColumns.noteQuery(spec('noisy', `t${i % 100}`, `properties.p${i}`), now);
  for (let i = 0; i < PROMOTION.PROMOTE_AFTER_QUERIES; i++) store.typedColumns.noteQuery(spec('quiet', 'checkout', 'properties.plan'), now + i);
  expect(Object.fromEntries(await store.typedColumns.promoted('quiet', now + 100))).toEqual({ checkout: ['plan'] });
});

it('typed-columns.a-name-holding-a-nul-character-is-promoted-as-itself', async () => {
  const now = Date.now();
  const field = `properties[${JSON.stringify('a\u0000b')}]`;
  for (let i = 0; i < PROMOTION.PROMOTE_AFTER_QUERIES; i++) store.typedColumns.noteQuery(spec('nul', 'checkout', field), now + i);
  expect(Object.fromEntries(await store.typedColumns.promoted('nul', now + 100))).toEqual({ checkout: ['a\u0000b'] });
});

it('typed-columns.a-tenants-promotions-cover-a-bounded-number-of-types', async () => {
  // Each set of typed columns costs every commit holding its type one more fill (measured on
  // 2 cores: 2,048-event batches of 1,000 types took 60 ms without sets, 4 s with 1,000), and
  // every commit waits for the one before: a read key must not add sets without bound.
  const now = Date.now();
  for (let t = 0; t < 100; t++) for (let i = 0; i < PROMOTION.PROMOTE_AFTER_QUERIES; i++) store.typedColumns.noteQuery(spec('noisy', `t${t}`, 'properties.p'), now + i);
  const promoted = await store.typedColumns.promoted('noisy', now + 100);
  expect(promoted.size).toBe(PROMOTION.PROMOTED_TYPES_PER_TENANT);
  expect([...promoted.values()].every((names) => names.join() === 'p')).toBe(true);
  // Another tenant is not counted against it.
  for (let i = 0; i < PROMOTION.PROMOTE_AFTER_QUERIES; i++) store.typedColumns.noteQuery(spec('quiet', 'checkout', 'properties.plan'), now + i);
  expect(Object.fromEntries(await store.typedColumns.promoted('quiet', now + 100))).toEqual({ checkout: ['plan'] });
});
