import { describe, expect, it } from 'vitest';
import { parseFilters, parseField, parseView } from '../../src/core/query.js';
import { FieldReader } from '../../src/core/query-eval.js';
import type { LogRecord } from '../../src/core/types.js';
import { mergeDiff, ZERO_DIFF } from '../../src/ports/rollouts.js';
import { mergeViewDiffs, sampleKey } from '../../src/ports/view-diff.js';
import { diffText } from '../../src/cli/rollout.js';
import { diffAnswer } from '../../src/rollout/diff-answer.js';
import { diffViews } from '../../src/rollout/view-diff.js';
import { entry } from '../helpers/entries.js';

const T0 = Date.UTC(2026, 10, 24, 10, 0);

/** 120 checkouts over two minutes: amount n, plan pro for even n and free for odd, email by n mod 10. */
const batch: LogRecord[] = Array.from({ length: 120 }, (_, n) => ({
  ...entry('acme', n, 1, { ts: T0 + n * 1000, properties: JSON.stringify({ amount: n, plan: n % 2 === 0 ? 'pro' : 'free', email: `u${n % 10}@example.com`, latency: n % 7 }) }),
  offset: n + 1,
  attempt: 1,
}));

const VIEWS = [
  parseView('revenue', { event: 'checkout', dimensions: ['properties.plan'], measures: ['count', 'sum:amount', 'min:amount', 'max:amount', 'avg:amount', 'uniq:email', 'p95:latency'], grain: '1m' }),
  parseView('big_pro', { event: 'checkout', filters: [{ field: 'properties.plan', op: 'eq', value: 'pro' }, { field: 'properties.amount', op: 'gte', value: 100 }], measures: ['count'], grain: '1h' }),
  parseView('signups', { event: 'signup', measures: ['count'], grain: '1m' }),
];
const viewsOf = (tenant: string) => (tenant === 'acme' ? VIEWS : []);

/** `batch` with each event's properties changed by `fn`. */
const changed = (fn: (p: Record<string, unknown>, n: number) => Record<string, unknown>): LogRecord[] =>
  batch.map((r, n) => ({ ...r, properties: JSON.stringify(fn(JSON.parse(r.properties) as Record<string, unknown>, n)) }));

describe('the per-view compare', () => {
  it('rollout.view-diff-of-an-unchanged-batch-has-every-cell-identical-and-no-samples', () => {
    // Equal JSON, new strings and objects: what a candidate that changes nothing stores.
    const same = changed((p) => p);
    const d = diffViews(batch, same, viewsOf, new Set(), 10);
    expect(d).toEqual([
      // Two minutes times two plans; one hour of big pro orders (100..118, even); no signups at all.
      { tenant: 'acme', view: 'revenue', measures: VIEWS[0]!.measures.map((m) => m.name), buckets_compared: 4, buckets_differing: 0, samples: [] },
      { tenant: 'acme', view: 'big_pro', measures: ['count'], buckets_compared: 1, buckets_differing: 0, samples: [] },
      { tenant: 'acme', view: 'signups', measures: ['count'], buckets_compared: 0, buckets_differing: 0, samples: [] },
    ]);
  });

  it('rollout.view-diff-shows-the-differing-buckets-with-the-exact-sums-of-both-sides', () => {
    // The candidate doubles the amount of the first minute's free orders.
    const doubled = changed((p, n) => (n < 60 && n % 2 === 1 ? { ...p, amount: n * 2 } : p));
    const d = diffViews(batch, doubled, viewsOf, new Set(), 10);
    const revenue = d.find((v) => v.view === 'revenue')!;
    expect([revenue.buckets_compared, revenue.buckets_differing, revenue.samples.length]).toEqual([4, 1, 1]);
    const free = Array.from({ length: 30 }, (_, i) => 2 * i + 1);
    const sum = free.reduce((s, n) => s + n, 0);
    expect(revenue.samples[0]).toEqual({
      bucket: T0,
      group: { 'properties.plan': 'free' },
      differs: ['sum:amount', 'min:amount', 'max:amount', 'avg:amount'],
      active: { events: 30, numbers: { 'properties.amount': { n: 30, sum, min: 1, max: 59 } } },
      candidate: { events: 30, numbers: { 'properties.amount': { n: 30, sum: 2 * sum, min: 2, max: 118 } } },
    });
    // The answer shows the view's exact measures by name; the sketches are named in `differs` only.
    const answer = diffAnswer('ro_1', { ...ZERO_DIFF, views: d }, 10);
    expect(answer.views[0]).toMatchObject({ view: 'revenue', buckets_compared: 4, buckets_identical: 3, buckets_differing: 1 });
    expect(answer.views[0]!.samples[0]).toEqual({
      bucket: '2026-11-24T10:00:00.000Z',
      group: { 'properties.plan': 'free' },
      differs: ['sum:amount', 'min:amount', 'max:amount', 'avg:amount'],
      active: { count: 30, 'sum:amount': sum, 'min:amount': 1, 'max:amount': 59, 'avg:amount': sum / 30 },
      candidate: { count: 30, 'sum:amount': 2 * sum, 'min:amount': 2, 'max:amount': 118, 'avg:amount': (2 * sum) / 30 },
    });
    // `sluice rollout diff` prints each view's buckets, then its differing ones with both sides.
    expect(diffText(answer).split('\n').slice(1, 4)).toEqual([
      "per view, batch by batch (a bucket counts once per batch it had events in; a sample adds up from the batch in which it first differed, and 'differs' names what differed in any batch):",
      'view revenue (acme): bucket cells compared 4, identical 3, differing 1',
      `  2026-11-24T10:00:00.000Z {"properties.plan":"free"}  differs: sum:amount, min:amount, max:amount, avg:amount  active {"count":30,"sum:amount":${sum},"min:amount":1,"max:amount":59,"avg:amount":${sum / 30}}  candidate {"count":30,"sum:amount":${2 * sum},"min:amount":2,"max:amount":118,"avg:amount":${(2 * sum) / 30}}`,
    ]);
  });

  it('rollout.view-diff-moves-events-between-groups-and-through-filters-and-compares-sketches-by-their-inputs', () => {
    // Orders 100 and 102 become free: they leave the pro group of minute 2 and the big_pro view.
    const moved = changed((p, n) => (n === 100 || n === 102 ? { ...p, plan: 'free' } : p));
    const d = diffViews(batch, moved, viewsOf, new Set(), 10);
    const revenue = d.find((v) => v.view === 'revenue')!;
    expect(revenue.buckets_differing).toBe(2);
    const byPlan = Object.fromEntries(revenue.samples.map((s) => [s.group['properties.plan'], s]));
    expect([byPlan.pro!.active.events, byPlan.pro!.candidate.events, byPlan.free!.active.events, byPlan.free!.candidate.events]).toEqual([30, 28, 30, 32]);
    expect(byPlan.pro!.differs).toContain('count');
    expect(d.find((v) => v.view === 'big_pro')!.samples.map((s) => [s.active.events, s.candidate.events])).toEqual([[10, 8]]);
    // A changed email changes only uniq's inputs; a changed latency only p95's.
    const emails = diffViews(batch, changed((p, n) => (n === 0 ? { ...p, email: 'new@example.com' } : p)), viewsOf, new Set(), 10);
    expect(emails[0]!.samples.map((s) => s.differs)).toEqual([['uniq:email']]);
    const latency = diffViews(batch, changed((p, n) => (n === 1 ? { ...p, latency: 99 } : p)), viewsOf, new Set(), 10);
    expect(latency[0]!.samples.map((s) => s.differs)).toEqual([['p95:latency']]);
  });

  it('rollout.view-diff-of-a-dropped-or-a-new-event-type-counts-the-cells-one-side-has', () => {
    const dropped = diffViews(batch, batch.slice(60), viewsOf, new Set(), 10);
    expect(dropped[0]!.samples.map((s) => [s.group['properties.plan'], s.active.events, s.candidate.events, s.candidate.numbers])).toEqual([
      ['pro', 30, 0, {}],
      ['free', 30, 0, {}],
    ]);
    const renamed = diffViews(batch, batch.map((r) => ({ ...r, type: 'signup' })), viewsOf, new Set(), 10);
    expect(renamed.map((v) => [v.view, v.buckets_compared, v.buckets_differing])).toEqual([
      ['revenue', 4, 4],
      ['big_pro', 1, 1],
      ['signups', 2, 2],
    ]);
  });

  it('rollout.view-diff-samples-stay-bounded-and-a-kept-sample-adds-up-later-batches-even-where-they-agree', () => {
    const doubled = changed((p) => ({ ...p, amount: (p.amount as number) * 2 }));
    // At most `limit` new samples per view and batch.
    const first = diffViews(batch, doubled, viewsOf, new Set(), 1);
    expect(first[0]!.samples).toHaveLength(1);
    expect(first[0]!.buckets_differing).toBe(4);
    const kept = first[0]!.samples[0]!;
    // The next batch (the same events again) agrees; the kept cell is followed, and adds up.
    const next = diffViews(batch, batch, viewsOf, new Set([sampleKey(first[0]!, kept)]), 1);
    expect(next[0]!.samples.map((s) => s.differs)).toEqual([[]]);
    const total = mergeViewDiffs(mergeViewDiffs([], first, 1), next, 1);
    expect(total[0]).toMatchObject({ buckets_compared: 8, buckets_differing: 4 });
    expect(total[0]!.samples).toHaveLength(1);
    const s = total[0]!.samples[0]!;
    expect(s.differs).toEqual(kept.differs);
    expect(s.active.numbers['properties.amount']!.sum).toBe(2 * kept.active.numbers['properties.amount']!.sum);
    expect(s.candidate.numbers['properties.amount']!.sum).toBe(kept.candidate.numbers['properties.amount']!.sum + kept.active.numbers['properties.amount']!.sum);
    expect(s.active.events).toBe(2 * kept.active.events);
    // A sample that only agreed never starts a new one.
    expect(mergeViewDiffs([], next, 1)[0]!.samples).toEqual([]);
    // The port's diff merge carries the views along; a diff without views stays without.
    expect(mergeDiff(mergeDiff(ZERO_DIFF, { ...ZERO_DIFF, views: first }, 1), ZERO_DIFF, 1).views![0]!.buckets_compared).toBe(4);
    expect(mergeDiff(ZERO_DIFF, ZERO_DIFF, 1)).not.toHaveProperty('views');
  });
});

describe('the query language in memory', () => {
  const reader = new FieldReader();
  const at = (properties: unknown) => reader.reset({ type: 'checkout', key: 'k', pipelineVersion: 3, properties: JSON.stringify(properties), context: '{"ip":"10.0.0.1"}' });
  const holds = (properties: unknown, filter: unknown) => at(properties).matches(parseFilters([filter])[0]!);

  it('query-eval.reads-fields-and-numbers-as-the-stores-do', () => {
    const f = (name: string) => parseField(name, 'f');
    const r = at({ amount: '12.5', n: 7, ok: true, tags: ['a'], nested: { x: null }, 'price.eur': 3, inf: 'Infinity', blank: '' });
    expect([r.text(f('type')), r.text(f('key')), r.text(f('pipeline_version')), r.text(f('context.ip'))]).toEqual(['checkout', 'k', '3', '10.0.0.1']);
    expect([r.text(f('properties.n')), r.text(f('properties.ok')), r.text(f('properties.tags')), r.text(f('properties.nested.x')), r.text(f('properties.missing'))]).toEqual(['7', 'true', '["a"]', null, null]);
    expect([r.number(f('properties.amount')), r.number(f('properties["price.eur"]')), r.number(f('properties.ok')), r.number(f('properties.inf')), r.number(f('properties.blank'))]).toEqual([12.5, 3, null, null, null]);
    // Numeric text past the largest double is clamped to it.
    const big = reader.reset({ type: 'checkout', key: 'k', properties: '{"big": 1e400, "small": "-1e999"}', context: '{}' });
    expect([big.number(f('properties.big')), big.number(f('properties.small')), big.text(f('pipeline_version'))]).toEqual([Number.MAX_VALUE, -Number.MAX_VALUE, '0']);
  });

  it('query-eval.filters-hold-as-their-sql-does', () => {
    expect([holds({ a: 5 }, { field: 'properties.a', op: 'eq', value: 5 }), holds({ a: '5.0' }, { field: 'properties.a', op: 'eq', value: 5 }), holds({ a: '5.0' }, { field: 'properties.a', op: 'eq', value: '5' })]).toEqual([true, true, false]);
    // Missing never equals, and is distinct from everything.
    expect([holds({}, { field: 'properties.a', op: 'eq', value: 'x' }), holds({}, { field: 'properties.a', op: 'neq', value: 'x' }), holds({}, { field: 'properties.a', op: 'nin', value: [1, 'x'] })]).toEqual([false, true, true]);
    expect([holds({ a: 3 }, { field: 'properties.a', op: 'in', value: [1, 3] }), holds({ a: 10 }, { field: 'properties.a', op: 'gt', value: 9 }), holds({ a: '10' }, { field: 'properties.a', op: 'gt', value: '9' })]).toEqual([true, true, false]);
    expect([holds({ a: 'hello' }, { field: 'properties.a', op: 'contains', value: 'ell' }), holds({}, { field: 'properties.a', op: 'contains', value: 'x' })]).toEqual([true, false]);
    expect([holds({ a: null }, { field: 'properties.a', op: 'exists', value: true }), holds({ a: 0 }, { field: 'properties.a', op: 'exists' }), holds({}, { field: 'properties.a', op: 'exists', value: false })]).toEqual([false, true, true]);
  });
});

