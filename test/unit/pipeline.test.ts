import { describe, expect, it } from 'vitest';
import { enrichStage, hold, holdPaused, judge, processBatch, type Stage } from '../../src/worker/pipeline.js';
import { record } from '../helpers/entries.js';

const ctx = { signal: new AbortController().signal };

describe('pipeline as a value', () => {
  it('pipeline.a-batch-that-trips-the-breaker-holds-its-tenants-records-past-the-hold-stage', async () => {
    const failing: Stage = {
      name: 'transform',
      run: (records) => ({
        // The transform changes what passes: what is held must be what the log delivered.
        live: records.filter((r) => r.tenant !== 'a' || r.idempotencyKey === 'k-2').map((r) => ({ ...r, properties: '{"changed":true}' })),
        dead: records.filter((r) => r.tenant === 'a' && r.idempotencyKey !== 'k-2').map((record) => ({ record, reason: 'transform_failed', message: 'cast' })),
      }),
    };
    const batch = [record('a', 1), record('a', 2), record('a', 3, { fault: { reason: 'schema_violation', message: 'x', path: '/x' } }), record('a', 4, { attempt: 5 }), record('a', 5), record('b', 6)];
    const out = holdPaused(await processBatch(batch, [judge(5), failing], ctx), new Map([['a', 'tripped']]), batch);
    expect(out.held.find((d) => d.record.idempotencyKey === 'k-2')!.record).toBe(batch[1]);
    // Judged before the hold stage: the producer's fault and the poison keep their dead letters.
    expect(out.dead.map((d) => [d.record.idempotencyKey, d.reason])).toEqual([
      ['k-3', 'schema_violation'],
      ['k-4', 'poison'],
    ]);
    // Passed or failed by the pipeline after it: held, as if the pause had come first.
    expect(out.held.map((d) => [d.record.idempotencyKey, d.reason, d.message]).sort()).toEqual([
      ['k-1', 'held', 'held while the tenant is paused: tripped'],
      ['k-2', 'held', 'held while the tenant is paused: tripped'],
      ['k-5', 'held', 'held while the tenant is paused: tripped'],
    ]);
    // Another tenant in the same batch is untouched.
    expect(out.live.map((r) => r.idempotencyKey)).toEqual(['k-6']);
  });

  it('pipeline.stages-sort-a-batch-into-live-dead-and-held-without-effects', async () => {
    const batch = [
      record('a', 1),
      record('a', 2, { attempt: 5 }),
      record('a', 3, { fault: { reason: 'schema_violation', message: '"amount" is required', path: '/amount', schemaVersion: 2 } }),
      record('paused', 4),
      record('b', 5, { context: JSON.stringify({ ip: '203.0.113.77' }) }),
    ];
    const stages = [judge(5), hold(async (t) => (t === 'paused' ? 'too many dead letters' : null)), enrichStage({ anonymizeIp: true, userAgent: false, plugins: [] })];
    const out = await processBatch(batch, stages, ctx);
    expect(out.live.map((r) => r.idempotencyKey)).toEqual(['k-1', 'k-5']);
    expect(JSON.parse(out.live[1]!.context)).toEqual({ ip: '203.0.113.0' });
    expect(out.dead.map((d) => [d.record.idempotencyKey, d.reason])).toEqual([
      ['k-2', 'poison'],
      ['k-3', 'schema_violation'],
    ]);
    expect(out.dead[1]).toMatchObject({ path: '/amount', schemaVersion: 2 });
    expect(out.held.map((d) => [d.record.idempotencyKey, d.reason, d.message])).toEqual([['k-4', 'held', 'held while the tenant is paused: too many dead letters']]);
    // The breaker's input: a producer's schema violation is not the pipeline's failure.
    expect(Object.fromEntries(out.outcomes)).toEqual({ a: { ok: 1, failed: 1 }, b: { ok: 1, failed: 0 } });
    // The input batch is untouched.
    expect(JSON.parse(batch[4]!.context)).toEqual({ ip: '203.0.113.77' });
  });

  it('pipeline.a-candidate-stage-list-runs-beside-the-live-one-on-the-same-batch', async () => {
    const batch = [record('a', 1), record('a', 2)];
    const dropOdd: Stage = {
      name: 'transform',
      run: (records) => ({
        live: records.filter((r) => JSON.parse(r.properties).amount % 2 === 0),
        dead: records.filter((r) => JSON.parse(r.properties).amount % 2 === 1).map((record) => ({ record, reason: 'enrich_failed' as const, message: 'odd' })),
      }),
    };
    const live = await processBatch(batch, [judge(5)], ctx);
    const candidate = await processBatch(batch, [judge(5), dropOdd], ctx);
    expect(live.live).toHaveLength(2);
    expect(candidate.live.map((r) => r.idempotencyKey)).toEqual(['k-2']);
    expect(candidate.outcomes.get('a')).toEqual({ ok: 1, failed: 1 });
  });
});
