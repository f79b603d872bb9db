import { afterEach, expect, it } from 'vitest';
import type { LogRecord } from '../../src/core/types.js';
import { SchemaRegistry } from '../../src/schema/registry.js';
import { DeadLetterBreaker } from '../../src/worker/breaker.js';
import { enrichStage, hold, judge, processBatch } from '../../src/worker/pipeline.js';
import { TenantPauses } from '../../src/worker/pauses.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

const record = (i: number): LogRecord => ({
  tenant: 'acme', type: 'order', key: `k${i}`, idempotencyKey: `good-${i}`, ts: Date.now(), receivedAt: Date.now(), partition: 0,
  origin: 'live', properties: '{}', context: '{}', offset: i + 1, attempt: 1,
});

it('breaker.resume-starts-a-fresh-window-so-the-1000-good-events-after-the-fix-are-all-stored', async () => {
  p = await startPipeline({}, { workers: false });
  // What a worker runs: the pipeline's stages, and the breaker fed with each batch's outcomes.
  const pauses = new TenantPauses({
    catalog: p.catalog,
    registry: new SchemaRegistry(p.catalog, { refreshMs: 60_000 }),
    breaker: new DeadLetterBreaker({ ratio: 0.5, window: 1_000, minEvents: 100 }),
  });
  const stages = [judge(5), hold(pauses.pausedWhy), enrichStage({ anonymizeIp: false, userAgent: false, plugins: [] })];
  const settings = async () => (await p!.app.inject({ method: 'GET', url: '/v1/tenant', headers: { authorization: `Bearer ${p!.tenant.adminKey}` } })).json().settings;
  await pauses.outcome('acme', 0, 100); // a bad deploy: trips
  expect((await settings()).paused).not.toBeNull();
  await pauses.outcome('acme', 0, 90); // batches in flight when it tripped fail too

  const resumed = await p.app.inject({ method: 'POST', url: '/v1/tenant/resume', headers: { authorization: `Bearer ${p.tenant.adminKey}` } });
  expect(resumed.statusCode).toBe(200);
  let stored = 0;
  for (let i = 0; i < 1_000; i += 10) {
    const sorted = await processBatch(Array.from({ length: 10 }, (_, j) => record(i + j)), stages, { signal: new AbortController().signal });
    for (const [tenant, { ok, failed }] of sorted.outcomes) await pauses.outcome(tenant, ok, failed);
    expect(sorted.held).toEqual([]);
    expect(sorted.dead).toEqual([]);
    stored += (await p.store.commit({ records: sorted.live, partitions: [{ partition: 0, token: 1, upTo: i + 10 }] })).stored;
  }
  expect(stored).toBe(1_000);
  expect(await p.store.rawStats('acme')).toEqual({ events: 1_000, distinctKeys: 1_000 });
  expect((await settings()).paused).toBeNull();
});
