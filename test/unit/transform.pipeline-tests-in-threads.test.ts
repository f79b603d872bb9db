import { describe, expect, it } from 'vitest';
import { isolatedPipelineTests } from '../../src/app/pipeline-tests.js';
import { ManualClock } from '../../src/core/clock.js';
import type { ExpressionEvent } from '../../src/transform/expression.js';

/**
 * POST /v1/pipeline/test runs each test in a thread of its own (src/app/pipeline-tests.ts):
 * what a tenant's steps cost on the events it chose is bounded in time and heap, and the HTTP
 * thread is never the one paying. The thread's script is the built one (`npm test` builds).
 */
const entry = new URL('../../dist/app/pipeline-test-thread.js', import.meta.url);
const event = (properties: Record<string, unknown>): ExpressionEvent => ({ type: 'checkout', key: 'k', ts: 0, properties, context: {} });
const cents = { steps: [{ set: { field: 'properties.cents', value: 'int(properties.amount * 100.0 + 0.5)' } }] };

describe('pipeline tests in threads', () => {
  it('pipeline-test.answers-as-on-the-http-thread', async () => {
    const test = isolatedPipelineTests({ entry });
    const [r] = JSON.parse(await test('acme', cents, [event({ amount: 65.24 })], 'salt')) as unknown[];
    expect(r).toMatchObject({ outcome: 'stored', output: { properties: { amount: 65.24, cents: 6524 } } });
    // A pipeline that does not compile is refused as on the HTTP thread: 400 naming the step.
    await expect(test('acme', { steps: [{ drop: {} }] }, [], 'salt')).rejects.toMatchObject({ code: 'SLUICE_ERR_INVALID_BODY', field: 'pipeline.steps[0]' });
  });

  it('pipeline-test.a-test-past-its-deadline-is-stopped-with-422', async () => {
    const clock = new ManualClock();
    const test = isolatedPipelineTests({ entry, clock, timeoutMs: 5_000 });
    const running = test('acme', cents, [event({ amount: 1 })], 'salt').catch((e: unknown) => e);
    // The thread has not started yet when the deadline passes (the clock is driven, not slept).
    await clock.advance(5_000);
    expect(await running).toMatchObject({ code: 'SLUICE_ERR_TRANSFORM_TOO_COSTLY', status: 422, field: 'pipeline.steps', message: expect.stringContaining('took longer than 5 s') });
    // The next one runs.
    expect(JSON.parse(await test('acme', cents, [event({ amount: 2 })], 'salt'))).toHaveLength(1);
  });

  it('pipeline-test.a-test-past-its-heap-is-stopped-with-422-and-the-process-lives', async () => {
    const test = isolatedPipelineTests({ entry, heapMb: 16 });
    // Each result is within the value bound (200,000 characters of 262,144); 300 of them are
    // 60 MB of strings, and their JSON as much again: past a 16 MiB heap.
    const events = Array.from({ length: 300 }, (_, i) => event({ s: `${i}`.padEnd(50_000, 'x') }));
    const grow = { steps: [{ set: { field: 'properties.t', value: 'properties.s + properties.s + properties.s + properties.s' } }] };
    await expect(test('acme', grow, events, 'salt')).rejects.toMatchObject({ code: 'SLUICE_ERR_TRANSFORM_TOO_COSTLY', message: expect.stringContaining('needed more than 16 MiB') });
    expect(JSON.parse(await test('acme', cents, [event({ amount: 3 })], 'salt'))[0]).toMatchObject({ outcome: 'stored' });
  });

  it('pipeline-test.one-test-per-tenant-at-once-and-a-bound-per-process', async () => {
    const test = isolatedPipelineTests({ entry, perTenant: 1, perProcess: 2 });
    const first = test('acme', cents, [event({ amount: 1 })], 'salt');
    await expect(test('acme', cents, [event({ amount: 1 })], 'salt')).rejects.toMatchObject({ code: 'SLUICE_ERR_QUOTA_EXCEEDED', status: 429, field: 'pipeline_tests', retryAfter: 1 });
    const other = test('beta', cents, [event({ amount: 1 })], 'salt');
    await expect(test('gamma', cents, [event({ amount: 1 })], 'salt')).rejects.toMatchObject({ code: 'SLUICE_ERR_QUOTA_EXCEEDED', message: expect.stringContaining('at most 2 at once') });
    await Promise.all([first, other]);
    // Slots are given back: acme may test again.
    expect(JSON.parse(await test('acme', cents, [event({ amount: 1 })], 'salt'))).toHaveLength(1);
  });

  it('pipeline-test.an-event-the-steps-grow-past-the-bound-fails-and-the-answer-is-bounded', async () => {
    const test = isolatedPipelineTests({ entry });
    // The attacker's amplifier: each step writes 32 copies of an 8 KiB string (within the bound
    // of one value); 100 of them made one 657-byte event 26 MB, and 8 events a 209 MB answer.
    const grow = { steps: Array.from({ length: 100 }, (_, i) => ({ set: { field: `properties.s${i}`, value: Array(32).fill('properties.s').join(' + ') } })) };
    const [one] = JSON.parse(await test('acme', grow, [event({ s: 'x'.repeat(8_192) })], 'salt')) as { outcome: string; reason: string; message: string }[];
    expect(one).toMatchObject({ outcome: 'dead_lettered', reason: 'transform_failed', message: expect.stringContaining('the steps made the event larger than 262,144 characters and items') });
    // Events each under the bound still add up: the answer stops at 16 MiB with 422.
    const wide = { steps: [{ set: { field: 'properties.t', value: Array(24).fill('properties.s').join(' + ') } }] };
    const many = Array.from({ length: 1_000 }, () => event({ s: 'y'.repeat(8_192) }));
    await expect(test('acme', wide, many, 'salt')).rejects.toMatchObject({ code: 'SLUICE_ERR_TRANSFORM_TOO_COSTLY', status: 422, message: expect.stringContaining("the test's answer would pass 16 MiB") });
  });
});
