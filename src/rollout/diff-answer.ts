import { parseMeasure } from '../core/query.js';
import type { RolloutDiff } from '../ports/rollouts.js';
import { diffRate, type Output } from './diff.js';
import type { CellState, ViewDiff, ViewDiffSample } from '../ports/view-diff.js';

/**
 * A rollout's diff as `GET /v1/rollouts/:id/diff?limit=` and `sluice rollout diff [--global]`
 * answer it: the per-event counts, their rates (shares of `compared`, 0 before any), at most
 * `limit` samples of each kind (a stored output's `ts` in RFC 3339), and per view:
 *
 *     {"tenant", "view", "buckets_compared", "buckets_identical", "buckets_differing",
 *      "samples": [{"bucket": RFC 3339, "group": {field: text|null}, "differs": [measure…],
 *                   "active": {measure: value}, "candidate": {measure: value}}]}
 *
 * (at most `limit` samples per view; cells counted per compared batch, see ports/view-diff.ts).
 * A sample's `active`/`candidate` hold the view's exact measures (count, sum, min, max, avg;
 * null where the cell has no numeric value of the field, as the query API answers), summed
 * over the batches from the one where the cell first differed; uniq and pNN are compared by
 * their inputs and named in `differs` only (rollout/view-diff.ts).
 */
export function diffAnswer(id: string, d: RolloutDiff, limit: number) {
  const rate = (n: number) => (d.compared === 0 ? 0 : n / d.compared);
  const per = new Map<string, number>();
  const samples = d.samples.filter((s) => {
    const n = per.get(s.kind) ?? 0;
    per.set(s.kind, n + 1);
    return n < limit;
  });
  return {
    id,
    compared: d.compared,
    identical: d.identical,
    changed: d.changed,
    dropped: d.dropped,
    dead_lettered: d.dead_lettered,
    rates: { diff: diffRate(d), changed: rate(d.changed), dropped: rate(d.dropped), dead_lettered: rate(d.dead_lettered) },
    samples: samples.map(wireEventSample),
    views: (d.views ?? []).map((v) => wireView(v, limit)),
  };
}

export type DiffAnswer = ReturnType<typeof diffAnswer>;

/** A sample with its stored outputs' event time as RFC 3339, as every other answer gives times (the diff keeps epoch ms). */
function wireEventSample(s: { kind: string }) {
  const out: Record<string, unknown> = { ...s };
  for (const side of ['active', 'candidate'] as const) {
    const o = (s as { active?: Output; candidate?: Output })[side];
    if (o && 'stored' in o && typeof o.stored.ts === 'number') out[side] = { stored: { ...o.stored, ts: new Date(o.stored.ts).toISOString() } };
  }
  return out;
}

function wireView(v: ViewDiff, limit: number) {
  return {
    tenant: v.tenant,
    view: v.view,
    buckets_compared: v.buckets_compared,
    buckets_identical: v.buckets_compared - v.buckets_differing,
    buckets_differing: v.buckets_differing,
    samples: v.samples.slice(0, limit).map((s) => wireSample(v.measures, s)),
  };
}

function wireSample(measures: readonly string[], s: ViewDiffSample) {
  return { bucket: new Date(s.bucket).toISOString(), group: s.group, differs: s.differs, active: exact(measures, s.active), candidate: exact(measures, s.candidate) };
}

/** The exact measures of one side of a cell, by name. */
function exact(measures: readonly string[], c: CellState): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const name of measures) {
    const m = parseMeasure(name, 'measures');
    if (m.kind === 'count') out[name] = c.events;
    else if (m.kind === 'sum' || m.kind === 'min' || m.kind === 'max' || m.kind === 'avg') {
      const x = c.numbers[m.field!.name];
      out[name] = !x ? null : m.kind === 'sum' ? x.sum : m.kind === 'min' ? x.min : m.kind === 'max' ? x.max : x.sum / x.n;
    }
  }
  return out;
}
