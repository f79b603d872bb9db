import { describe, expect, it } from 'vitest';
import type { LogRecord } from '../../src/core/types.js';
import { DeadLetterBreaker } from '../../src/worker/breaker.js';
import { processBatch } from '../../src/worker/pipeline.js';
import { transformStage } from '../../src/worker/transform.js';
import { compileTransform } from '../../src/transform/run.js';
import type { TenantPipeline } from '../../src/transform/registry.js';
import { entry } from '../helpers/entries.js';

const ctx = { signal: new AbortController().signal };
function record(tenant: string, n: number, properties: Record<string, unknown>): LogRecord {
  return { ...entry(tenant, n, 1), properties: JSON.stringify(properties), offset: n + 1, attempt: 1 } as LogRecord;
}

describe('the transform stage', () => {
  const pipelines: Record<string, TenantPipeline> = {
    a: {
      version: 3,
      salt: 'salt',
      transform: compileTransform({
        steps: [
          { cast: { field: 'properties.amount', to: 'number' } },
          { drop: { when: 'properties.amount == 0.0' } },
          { dead_letter: { when: 'properties.amount < 0.0', reason: 'negative_amount' } },
        ],
      }),
    },
    none: { version: 0, salt: '', transform: null },
  };
  const stage = transformStage(async (t) => pipelines[t]!);

  it('transform.stage-sorts-records-records-the-version-and-feeds-the-breaker-only-with-its-own-failures', async () => {
    const out = await processBatch(
      [record('a', 1, { amount: '2.5' }), record('a', 2, { amount: '0' }), record('a', 3, { amount: '-1' }), record('a', 4, { amount: 'x' }), record('none', 5, { amount: 'x' })],
      [stage],
      ctx,
    );
    expect(out.live.map((r) => [r.idempotencyKey, r.pipelineVersion, JSON.parse(r.properties)])).toEqual([
      ['k-1', 3, { amount: 2.5 }],
      ['k-5', 0, { amount: 'x' }],
    ]);
    expect(out.dropped.map((d) => [d.record.idempotencyKey, d.reason, d.message])).toEqual([['k-2', 'dropped', 'dropped by step 1 (drop) of pipeline version 3']]);
    expect(out.dead.map((d) => [d.record.idempotencyKey, d.reason])).toEqual([
      ['k-3', 'negative_amount'],
      ['k-4', 'transform_failed'],
    ]);
    // Only transform_failed is the pipeline's fault; a dead_letter step's reason is the producer's.
    expect(out.outcomes.get('a')).toEqual({ ok: 2, failed: 1 });
  });

  it('transform.a-pipeline-that-fails-most-events-trips-the-breaker', async () => {
    const breaker = new DeadLetterBreaker({ ratio: 0.5, window: 1_000, minEvents: 100 });
    const batch = Array.from({ length: 200 }, (_, i) => record('a', i, { amount: i % 10 === 0 ? '1' : 'not a number' }));
    const out = await processBatch(batch, [stage], ctx);
    const o = out.outcomes.get('a')!;
    expect(o).toEqual({ ok: 20, failed: 180 });
    expect(breaker.record('a', o.ok, o.failed)).toBeCloseTo(0.9);
  });
});
