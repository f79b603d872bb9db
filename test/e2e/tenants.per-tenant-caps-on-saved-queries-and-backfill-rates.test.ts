import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAX_SAVED_QUERIES } from '../../src/ports/saved-queries.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';

/**
 * Objects one tenant makes that every request of the process then pays for: saved queries
 * (6,000 of 14.6 KB made one listing 88.6 MB, blocking the event loop for seconds) and
 * throttled backfills (one at 1 event/s held every other tenant's view builds for hours).
 */
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({}, { workers: false });
});
afterAll(async () => {
  await p?.close();
});

const save = (i: number) =>
  p.app.inject({ method: 'POST', url: '/v1/saved-queries', headers: { authorization: `Bearer ${p.tenant.readKey}` }, payload: { name: `q${i}`, query: { event: 'checkout', from: '-1h' } } });

it('saved-queries.a-tenant-keeps-at-most-the-limit-even-when-saves-race', async () => {
  for (let i = 0; i < MAX_SAVED_QUERIES - 5; i++) expect((await save(i)).statusCode).toBe(201);
  // Twenty at once at the edge: exactly five more fit.
  const raced = await Promise.all(Array.from({ length: 20 }, (_, i) => save(1_000 + i)));
  expect(raced.filter((r) => r.statusCode === 201)).toHaveLength(5);
  const refused = raced.find((r) => r.statusCode !== 201)!;
  expect(refused.statusCode).toBe(409);
  expect(refused.json()).toMatchObject({ code: 'SLUICE_ERR_CONFLICT', message: expect.stringMatching(/200 saved queries, the limit: delete one/) });
  const listed = await p.app.inject({ method: 'GET', url: '/v1/saved-queries', headers: { authorization: `Bearer ${p.tenant.readKey}` } });
  expect(listed.json().saved_queries).toHaveLength(MAX_SAVED_QUERIES);
  // Another tenant is not affected by this one's count.
  const other = await p.catalog.createTenant('other');
  const theirs = await p.app.inject({ method: 'POST', url: '/v1/saved-queries', headers: { authorization: `Bearer ${other.readKey}` }, payload: { name: 'mine', query: { event: 'x' } } });
  expect(theirs.statusCode).toBe(201);
});

it('backfills.a-rate-below-the-floor-is-refused-naming-the-field', async () => {
  const start = (rate: number) => p.app.inject({ method: 'POST', url: '/v1/backfills', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: { view: 'counts_1m', from: '-1h', rate } });
  const slow = await start(1);
  expect(slow.statusCode).toBe(400);
  expect(slow.json()).toMatchObject({ field: 'rate', message: expect.stringMatching(/0 \(unthrottled\) or at least 1000 events\/s/) });
  expect((await start(1_000)).statusCode).toBe(202);
});
