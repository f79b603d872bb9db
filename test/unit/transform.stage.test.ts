import { describe, expect, it } from 'vitest';
import type { LogRecord } from '../../src/core/types.js';
import { DeadLetterBreaker } from '../../src/worker/breaker.js';
import { processBatch } from '../../src/worker/pipeline.js';
import { transformStage } from '../../src/worker/transform.js';
import { compileTransform, hashValue } from '../../src/transform/run.js';
import type { TenantPipeline } from '../../src/transform/registry.js';
import { SaltCache } from '../../src/transform/salts.js';
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
    // No version is version 0 (LogRecord.pipelineVersion): the stores write 0 for it.
    expect(out.live.map((r) => [r.idempotencyKey, r.pipelineVersion ?? 0, JSON.parse(r.properties)])).toEqual([
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

  it('transform.a-map-no-step-changed-keeps-the-producers-text', async () => {
    const t = compileTransform({ steps: [{ rename: { from: 'context.locale', to: 'context.language' } }, { drop: { when: 'has(properties.bot) && properties.bot == true' } }] });
    expect([...t.reads].sort()).toEqual(['context', 'properties']);
    expect([...compileTransform({ steps: [{ redact: { fields: ['properties.email'], how: 'hash' } }] }).reads]).toEqual(['properties']);
    const own = transformStage(async () => ({ version: 2, salt: 's', transform: t }));
    // The properties are read (by the drop's condition) but not changed: their text stays as sent,
    // spacing and spelling of numbers included; the renamed context is printed anew.
    const r = { ...record('a', 1, {}), properties: '{"amount": 1.50, "bot": false}', context: '{"locale":"en-GB","app":"web"}' };
    const untouched = { ...record('a', 2, {}), properties: '{"x": 1.0}', context: '{"app": "web"}' };
    const out = await processBatch([r, untouched], [own], ctx);
    expect(out.live.map((x) => [x.properties, x.context, x.pipelineVersion])).toEqual([
      ['{"amount": 1.50, "bot": false}', '{"app":"web","language":"en-GB"}', 2],
      ['{"x": 1.0}', '{"app": "web"}', 2],
    ]);
  });

  it('transform.redaction-hashes-are-the-same-from-the-memo-and-differ-by-salt', async () => {
    const t = compileTransform({ steps: [{ redact: { fields: ['properties.email'], how: 'hash' } }] });
    const run = (email: unknown, salt: string) => t.run({ type: 't', key: 'k', ts: 0, properties: { email }, context: {} }, salt).output!.properties.email;
    // Twice each (the second from the memo), alternating salts, beyond the memo's bound.
    for (let i = 0; i < 5_000; i += 997) {
      for (const salt of ['tenant-a', 'tenant-b']) {
        expect(run(`u${i}@example.com`, salt)).toBe(hashValue(`u${i}@example.com`, salt));
        expect(run(`u${i}@example.com`, salt)).toBe(hashValue(`u${i}@example.com`, salt));
      }
    }
    expect(run({ b: 1, a: 2 }, 'tenant-a')).toBe(hashValue({ a: 2, b: 1 }, 'tenant-a'));
    expect(run('x', 'tenant-a')).not.toBe(run('x', 'tenant-b'));
    for (let i = 0; i < 10_000; i++) run(`fill-${i}`, 'tenant-a');
    expect(run('x', 'tenant-a')).toBe(hashValue('x', 'tenant-a'));
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

describe('the salt cache', () => {
  it('transform.salts-are-read-once-per-tenant-and-a-failed-read-is-read-again', async () => {
    const reads: string[] = [];
    let failNext = true;
    const cache = new SaltCache({
      salt: async (tenant) => {
        reads.push(tenant);
        if (tenant === 'b' && failNext) {
          failNext = false;
          throw new Error('catalog unavailable');
        }
        return `salt-${tenant}`;
      },
    });
    expect(await Promise.all([cache.of('a'), cache.of('a')])).toEqual(['salt-a', 'salt-a']);
    await expect(cache.of('b')).rejects.toThrow('catalog unavailable');
    const { of } = cache;
    expect([await of('b'), await of('b'), await of('a')]).toEqual(['salt-b', 'salt-b', 'salt-a']);
    expect(reads).toEqual(['a', 'b', 'b']);
  });
});
