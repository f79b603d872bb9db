import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { enforceSchema, pipelineVersionStages } from '../../src/rollout/changes.js';
import { cohortPoint, inCohort } from '../../src/rollout/cohort.js';
import { diffBatch, diffRate, EMPTY_DIFF } from '../../src/rollout/diff.js';
import { diffAnswer } from '../../src/rollout/diff-answer.js';
import { parseRolloutSpec, type RolloutSpec } from '../../src/rollout/document.js';
import { judge as judgeGuardrails, type Tally } from '../../src/rollout/guardrails.js';
import { abort, advance, evaluate, pause, phasesOf, promote, resume, shadowSample, startRollout } from '../../src/rollout/machine.js';
import { routeByCohort, routeInPlaceOf } from '../../src/rollout/route.js';
import { compileTransform } from '../../src/transform/run.js';
import { transformStage } from '../../src/worker/transform.js';
import { heldVersions } from '../../src/schema/registry.js';
import { judge, processBatch, type Stage } from '../../src/worker/pipeline.js';
import { record } from '../helpers/entries.js';
import { drive, healthy, MIN } from '../helpers/rollout-clock.js';
import { actionText, details } from '../../src/cli/rollout.js';
import { wireRollout } from '../../src/rollout/service.js';

const ctx = { signal: new AbortController().signal };

const SPEC = parseRolloutSpec({
  change: { schema: { type: 'checkout', version: 4 } },
  steps: [{ shadow: { sample: 0.5, duration: '30m' } }, { compare: { duration: '30m' } }, { cohort: { percent: 1, duration: '15m' } }, { ramp: { percents: [5, 25, 50, 100], step_duration: '10m' } }],
  guardrails: { dead_letter_rate: 0.001, drop_rate: 0.01, diff_rate: 0.001, min_events: 1000 },
  auto: true,
});

describe('the rollout document', () => {
  it('rollout.document-validates-every-field-and-names-it', () => {
    expect(SPEC.guardrails).toEqual({ dead_letter_rate: 0.001, drop_rate: 0.01, diff_rate: 0.001, min_events: 1000 });
    expect(phasesOf(SPEC).map((p) => [p.step, p.share, p.durationMs / MIN, p.sample])).toEqual([
      ['shadow', 0, 30, 0.5],
      ['compare', 0, 30, 0.5],
      ['cohort', 1, 15, 0.5],
      ['ramp', 5, 10, 0.5],
      ['ramp', 25, 10, 0.5],
      ['ramp', 50, 10, 0.5],
      ['ramp', 100, 10, 0.5],
    ]);
    const bad = (body: unknown) => () => parseRolloutSpec(body);
    const change = { schema: { type: 'checkout', version: 4 } };
    expect(bad({ change: { schema: { type: 'checkout' } } })).toThrow(/change\.schema\.version: expected a positive integer/);
    expect(bad({ change: { view: 'x' } })).toThrow(/change\.view: unknown change/);
    expect(bad({ change, steps: [{ shadow: { sample: 1.5, duration: '30m' } }] })).toThrow(/steps\[0\]\.shadow\.sample: expected a fraction in \(0, 1\]/);
    expect(bad({ change, steps: [{ compare: { duration: '30 minutes' } }] })).toThrow(/steps\[0\]\.compare\.duration: expected a duration such as "30m"/);
    expect(bad({ change, steps: [{ ramp: { percents: [50, 25], step_duration: '1m' } }] })).toThrow(/steps\[0\]: shares only go up/);
    expect(bad({ change, steps: [{ cohort: { percent: 1, duration: '1m' } }, { shadow: { duration: '1m' } }] })).toThrow(/steps\[1\]: steps go in the order shadow, compare, cohort, ramp/);
    expect(bad({ change, guardrails: { diff_rate: 2 } })).toThrow(/guardrails\.diff_rate: expected a tolerance in \[0, 1\]/);
    expect(bad({ change, guardrails: { p99: 1 } })).toThrow(/guardrails\.p99: unknown field/);
    expect(bad({ change, auto: 'yes' })).toThrow(/auto: expected true/);
    // Defaults: the steps, min_events 1000, auto.
    const d = parseRolloutSpec({ change });
    expect([d.steps.length, d.guardrails.min_events, d.auto]).toEqual([4, 1000, true]);
  });
});

describe('cohorts', () => {
  it('rollout.cohorts-are-sticky-monotonic-and-about-the-share', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);
    const at = (share: number) => new Set(keys.filter((k) => inCohort('r1', 't', k, share)));
    const shares = [1, 5, 25, 50, 100];
    const sets = shares.map(at);
    for (let i = 1; i < sets.length; i++) for (const k of sets[i - 1]!) expect(sets[i]!.has(k)).toBe(true);
    // About the share (binomial: 1% of 20 000 is 200 ± 3σ ≈ 42).
    expect(Math.abs(sets[0]!.size - 200)).toBeLessThan(45);
    expect(Math.abs(sets[2]!.size - 5000)).toBeLessThan(200);
    expect(sets[4]!.size).toBe(keys.length);
    expect(at(0).size).toBe(0);
    // Sticky: the same answer every time; another rollout picks other keys first.
    expect(cohortPoint('r1', 't', 'user-7')).toBe(cohortPoint('r1', 't', 'user-7'));
    const other = new Set(keys.filter((k) => inCohort('r2', 't', k, 1)));
    expect([...sets[0]!].filter((k) => other.has(k)).length).toBeLessThan(20);
  });
});

describe('guardrails', () => {
  it('rollout.guardrails-compare-the-cohort-with-the-baseline-not-a-static-threshold', () => {
    const g = { dead_letter_rate: 0.001, min_events: 1000 };
    // The baseline dead-letters 2%: a cohort at 2.05% is within 0.001 of it.
    expect(judgeGuardrails(g, { ...healthy(10_000), dead: 205 }, { ...healthy(10_000), dead: 200 }).verdict).toBe('pass');
    const j = judgeGuardrails(g, { ...healthy(10_000), dead: 500 }, { ...healthy(10_000), dead: 200 });
    expect(j.verdict).toBe('breach');
    expect(j.checks).toEqual([{ guardrail: 'dead_letter_rate', cohort: 0.05, baseline: 0.02, excess: expect.closeTo(0.03, 12), tolerance: 0.001, cohort_events: 10_000, baseline_events: 10_000, over_tolerance: true, breached: true }]);
    expect(j.reason).toMatch(/dead_letter_rate 0\.05 vs baseline 0\.02 \(excess 0\.03 > tolerance 0\.001\)/);
  });

  it('rollout.too-few-events-is-a-hold-even-when-the-numbers-look-bad', () => {
    const j = judgeGuardrails({ dead_letter_rate: 0.001, min_events: 1000 }, { ...healthy(10), dead: 10 }, healthy(5000));
    expect(j.verdict).toBe('hold');
    expect(j.reason).toBe('too few events to judge: the cohort has 10 events; min_events is 1000');
    // Over its tolerance, and not breached: too few events to judge (the CLI and console say both).
    expect(j.checks[0]).toMatchObject({ cohort: 1, over_tolerance: true, breached: false, cohort_events: 10 });
  });

  it('rollout.a-baseline-left-empty-by-a-cohort-that-takes-everything-says-so-and-what-to-do', () => {
    const j = judgeGuardrails({ dead_letter_rate: 0.001, min_events: 100 }, healthy(5000), healthy(0));
    expect(j.verdict).toBe('hold');
    expect(j.reason).toMatch(/^too few events to judge: the baseline has 0 events; min_events is 100: every event of the window went to the cohort .* name fewer tenants in the cohort step, or advance by hand \(sluice rollout advance ID\)$/);
  });
});

describe('the state machine on a manual clock', () => {
  it('rollout.every-step-transition-then-promote', async () => {
    const clock = new ManualClock();
    let r = startRollout('r1', 'acme', SPEC, clock.now(), 'key_admin');
    expect([r.state, r.share, shadowSample(r)]).toEqual(['shadow', 0, 0.5]);
    const seen: [string, number][] = [];
    for (let i = 0; i < 200 && r.state !== 'promoted'; i++) {
      r = await drive(clock, r, 1, () => [healthy(2000), healthy(50_000)]);
      if (seen.at(-1)?.[0] !== r.state || seen.at(-1)?.[1] !== r.share) seen.push([r.state, r.share]);
    }
    expect(seen).toEqual([
      ['shadow', 0],
      ['compare', 0],
      ['cohort', 1],
      ['ramp', 5],
      ['ramp', 25],
      ['ramp', 50],
      ['ramp', 100],
      ['promoted', 100],
    ]);
    // 30 + 30 + 15 + 4 × 10 minutes.
    expect((r.updated_at - r.created_at) / MIN).toBe(115);
    expect(r.decisions.map((d) => d.verdict)).toEqual(['start', 'advance', 'advance', 'advance', 'advance', 'advance', 'advance', 'promote']);
    // Each decision carries its numbers: window, both sides, every guardrail.
    const d = r.decisions[3]!;
    expect(d).toMatchObject({ step: 'cohort', share: 1, actor: 'controller', window: { from: r.created_at + 60 * MIN, to: r.created_at + 75 * MIN }, cohort: healthy(2000) });
    expect(d.checks!.map((c) => [c.guardrail, c.cohort, c.baseline, c.tolerance, c.breached])).toEqual([
      ['dead_letter_rate', 0, 0, 0.001, false],
      ['drop_rate', 0, 0, 0.01, false],
      ['diff_rate', 0, 0, 0.001, false],
    ]);
    expect(r.repair).toBeNull();
  });

  it('rollout.low-traffic-holds-with-the-reason-and-never-passes-or-rolls-back', async () => {
    const clock = new ManualClock();
    let r = startRollout('r1', 'acme', SPEC, clock.now(), 'cli');
    // 10 events a minute with every one dead-lettered: never enough to judge.
    r = await drive(clock, r, 120, () => [{ ...healthy(10), dead: 10 }, healthy(10)]);
    expect(r.state).toBe('holding');
    expect(r.phase).toBe(0);
    expect(r.hold_reason).toBe('too few events to judge: the cohort has 10 events, the baseline has 10 events; min_events is 1000');
    // One hold decision, not one a minute.
    expect(r.decisions.map((d) => d.verdict)).toEqual(['start', 'hold']);
    // Traffic that grows but stays short of min_events, judged every 2 s for 10 minutes: still
    // one hold decision, brought up to date with the latest numbers.
    const began = r.decisions.at(-1)!.at;
    for (let i = 1; i <= 300; i++) {
      await clock.advance(2_000);
      r = evaluate(r, clock.now(), healthy(10 + i), healthy(10 + i));
    }
    expect(r.decisions.map((d) => d.verdict)).toEqual(['start', 'hold']);
    const hold = r.decisions.at(-1)!;
    expect(hold.at).toBe(began);
    expect(clock.now() - hold.last_at!).toBeLessThan(60_000);
    const n = hold.cohort!.events;
    expect(n).toBeGreaterThan(250);
    expect(hold.reason).toBe(`too few events to judge: the cohort has ${n} events, the baseline has ${n} events; min_events is 1000`);
    expect(wireRollout(r).decisions.at(-1)).toMatchObject({ at: new Date(began).toISOString(), last_at: new Date(hold.last_at!).toISOString() });
    // Same numbers, judged again: `last_at` still moves (one that stood still read as a
    // controller that had stopped), and the decision stays the one hold.
    const before = r;
    await clock.advance(2_000);
    r = evaluate(r, clock.now(), healthy(310), healthy(310));
    await clock.advance(2_000);
    r = evaluate(r, clock.now(), healthy(310), healthy(310));
    expect(r).not.toBe(before);
    expect(r.decisions.map((d) => d.verdict)).toEqual(['start', 'hold']);
    expect(r.decisions.at(-1)!).toMatchObject({ at: began, last_at: clock.now() });
    // `sluice rollout show` says what a hold waits for and what the operator can do meanwhile;
    // an advance past it says the hold was not judged further.
    const shown = details(wireRollout(r)).split('\n');
    expect(shown[1]).toBe(
      `holding: judged again at every evaluation (last ${new Date(clock.now()).toISOString()}) and goes on by itself once it passes; meanwhile sluice rollout advance r1 goes on without the guardrails' verdict, sluice rollout abort r1 stops it and repairs what it did`,
    );
    expect(details(wireRollout(r), ' --global')).toContain('sluice rollout abort r1 --global stops it');
    const advanced = actionText('advance', wireRollout(advance(r, clock.now(), 'ops')));
    expect(advanced.split('\n')).toEqual([expect.stringMatching(/^r1 +compare +0% +schema checkout v\d+$/), `advanced past a hold, not judged further (${hold.reason.replace(String(n), '310')}); the guardrails judge the step it is in now`]);
    expect(actionText('pause', wireRollout(pause(r, clock.now(), 'ops')))).not.toContain('\n');
    // Traffic comes: the held step is judged again and passes.
    r = await drive(clock, r, 1, () => [healthy(5000), healthy(5000)]);
    expect([r.state, r.decisions.at(-1)!.verdict]).toEqual(['compare', 'advance']);
  });

  for (const [guardrail, bad] of [
    ['dead_letter_rate', { dead: 100 }],
    ['drop_rate', { dropped: 200 }],
    ['diff_rate', { diffs: 50 }],
    ['cost_per_event_ms', { costMs: 5000 }],
  ] as const) {
    it(`rollout.auto-rollback-on-${guardrail.replace(/_/g, '-')}-within-one-evaluation`, async () => {
      const clock = new ManualClock();
      const spec: RolloutSpec = { ...SPEC, guardrails: { ...SPEC.guardrails, cost_per_event_ms: 0.5 } };
      let r = startRollout('r1', 'acme', spec, clock.now(), 'cli');
      // Healthy until the ramp at 25%.
      r = await drive(clock, r, 85, () => [healthy(2000), healthy(50_000)]);
      expect([r.state, r.share]).toEqual(['ramp', 25]);
      const liveSince = r.live_since!;
      r = await drive(clock, r, 1, () => [{ ...healthy(2000), ...bad }, healthy(50_000)]);
      expect([r.state, r.share]).toEqual(['rolled_back', 0]);
      const d = r.decisions.at(-1)!;
      expect(d).toMatchObject({ verdict: 'roll_back', step: 'ramp', share: 25, actor: 'controller' });
      expect(d.checks!.find((c) => c.guardrail === guardrail)!.breached).toBe(true);
      expect(d.checks!.filter((c) => c.breached).length).toBe(1);
      expect(r.repair).toEqual({ status: 'pending', from: liveSince, to: clock.now(), repaired: 0, past_retention: 0 });
      // Finished: the controller leaves it, the operator cannot move it.
      expect(evaluate(r, clock.now() + MIN, healthy(5000), healthy(5000))).toBe(r);
      expect(() => advance(r, clock.now(), 'x')).toThrow(/rollout r1 is rolled_back: cannot advance; start a new rollout/);
    });
  }

  it('rollout.a-breach-in-shadow-rolls-back-with-nothing-to-repair', async () => {
    const clock = new ManualClock();
    let r = startRollout('r1', 'acme', SPEC, clock.now(), 'cli');
    r = await drive(clock, r, 3, () => [{ ...healthy(3000), dead: 90 }, healthy(3000)]);
    expect([r.state, r.share, r.repair?.status]).toEqual(['rolled_back', 0, 'not_needed']);
    expect(r.decisions.at(-1)!.step).toBe('shadow');
  });

  it('rollout.operator-pause-resume-advance-promote-abort', async () => {
    const clock = new ManualClock();
    let r = startRollout('r1', 'acme', SPEC, clock.now(), 'cli');
    await clock.advance(10 * MIN);
    r = pause(r, clock.now(), 'key_a');
    expect(() => pause(r, clock.now(), 'key_a')).toThrow(/is paused: cannot pause/);
    expect(() => advance(r, clock.now(), 'key_a')).toThrow(/resume it first/);
    // Paused: the controller judges nothing, even a breach.
    r = await drive(clock, r, 60, () => [{ ...healthy(5000), dead: 5000 }, healthy(5000)]);
    expect(r.state).toBe('paused');
    r = resume(r, clock.now(), 'key_a');
    // The 60 paused minutes do not count: 20 more minutes of shadow.
    r = await drive(clock, r, 19, () => [healthy(5000), healthy(5000)]);
    expect(r.state).toBe('shadow');
    r = await drive(clock, r, 1, () => [healthy(5000), healthy(5000)]);
    expect(r.state).toBe('compare');
    r = advance(r, clock.now(), 'key_a');
    expect([r.state, r.share, r.live_since]).toEqual(['cohort', 1, clock.now()]);
    const promoted = promote(r, clock.now(), 'key_a');
    expect([promoted.state, promoted.share]).toEqual(['promoted', 100]);
    const aborted = abort(r, clock.now() + MIN, 'key_a');
    expect([aborted.state, aborted.share, aborted.repair]).toEqual(['aborted', 0, { status: 'pending', from: clock.now(), to: clock.now() + MIN, repaired: 0, past_retention: 0 }]);
    expect(aborted.decisions.map((d) => [d.verdict, d.actor])).toEqual([
      ['start', 'cli'],
      ['pause', 'key_a'],
      ['resume', 'key_a'],
      ['advance', 'controller'],
      ['advance', 'key_a'],
      ['abort', 'key_a'],
    ]);
  });

  it('rollout.without-auto-a-passed-step-waits-for-advance', async () => {
    const clock = new ManualClock();
    let r = startRollout('r1', 'acme', { ...SPEC, auto: false }, clock.now(), 'cli');
    r = await drive(clock, r, 45, () => [healthy(5000), healthy(5000)]);
    expect([r.state, r.phase]).toEqual(['holding', 0]);
    expect(r.hold_reason).toMatch(/waiting for an advance \(auto is false\): sluice rollout advance r1, or POST \/v1\/rollouts\/r1\/advance/);
    r = advance(r, clock.now(), 'key_a');
    expect(r.state).toBe('compare');
  });
});

describe('compare and the cohort route', () => {
  const batch = Array.from({ length: 100 }, (_, i) => record('acme', i, { properties: JSON.stringify({ amount: i, plan: 'pro' }) }));
  const dropPlan: Stage = {
    name: 'transform',
    run: (records) => ({ live: records.map((r) => ({ ...r, properties: JSON.stringify({ ...JSON.parse(r.properties), plan: undefined }) })), dead: [] }),
  };

  it('rollout.diff-shows-identical-changed-dropped-and-dead-lettered-with-bounded-samples', async () => {
    const active = await processBatch(batch, [judge(5)], ctx);
    expect(diffRate(diffBatch(batch, active, await processBatch(batch, [judge(5)], ctx), EMPTY_DIFF, 3))).toBe(0);
    const changed = diffBatch(batch, active, await processBatch(batch, [judge(5), dropPlan], ctx), EMPTY_DIFF, 3);
    expect([changed.compared, changed.changed, changed.samples.length]).toEqual([100, 100, 3]);
    expect(changed.samples[0]).toMatchObject({ kind: 'changed', key: batch[0]!.key, fields: ['properties.plan'], active: { stored: { properties: { amount: 0, plan: 'pro' } } }, candidate: { stored: { properties: { amount: 0 } } } });
    const dropOdd: Stage = { name: 'transform', run: (records) => ({ live: records.filter((r) => JSON.parse(r.properties).amount % 2 === 0), dead: [] }) };
    const dropped = diffBatch(batch, active, await processBatch(batch, [dropOdd], ctx), EMPTY_DIFF, 2);
    expect([dropped.dropped, dropped.identical, diffRate(dropped)]).toEqual([50, 50, 0.5]);
    // Samples stay bounded across batches.
    expect(diffBatch(batch, active, await processBatch(batch, [dropOdd], ctx), dropped, 2).samples.length).toBe(2);
  });

  it('rollout.diff-answer-gives-rates-of-compared-and-at-most-limit-samples-of-each-kind', () => {
    const sample = (kind: 'changed' | 'dropped', n: number) => ({ kind, key: `k${n}`, idempotency_key: `i${n}`, active: null, candidate: null, fields: [] });
    const d = { compared: 10, identical: 5, changed: 3, dropped: 2, dead_lettered: 0, samples: [sample('changed', 1), sample('dropped', 2), sample('changed', 3), sample('changed', 4), sample('dropped', 5)] };
    const a = diffAnswer('r1', d, 2);
    expect(a).toMatchObject({ id: 'r1', compared: 10, identical: 5, changed: 3, dropped: 2, dead_lettered: 0, rates: { diff: 0.5, changed: 0.3, dropped: 0.2, dead_lettered: 0 } });
    expect(a.samples.map((s) => (s as { kind: string; key?: string }).key)).toEqual(['k1', 'k2', 'k3', 'k5']);
    expect(diffAnswer('r2', EMPTY_DIFF, 10)).toEqual({ id: 'r2', compared: 0, identical: 0, changed: 0, dropped: 0, dead_lettered: 0, rates: { diff: 0, changed: 0, dropped: 0, dead_lettered: 0 }, samples: [], views: [] });
  });

  it('rollout.schema-enforcement-in-shadow-counts-what-would-fail-and-rejects-nothing', async () => {
    // Version 4 requires amount < 97: 3 of 100 events would fail.
    const v4 = enforceSchema('checkout', 4, (r) => (JSON.parse(r.properties).amount >= 97 ? { message: '"amount" must be < 97', path: '/properties/amount' } : null));
    const live = await processBatch(batch, [judge(5)], ctx);
    const shadow = await processBatch(batch, [judge(5), v4], ctx);
    const d = diffBatch(batch, live, shadow, EMPTY_DIFF, 10);
    expect([live.dead.length, d.dead_lettered, diffRate(d)]).toEqual([0, 3, 0.03]);
    expect(d.samples.map((s) => [s.kind, (s.candidate as { dead_letter: { reason: string } }).dead_letter.reason])).toEqual([
      ['dead_lettered', 'schema_violation'],
      ['dead_lettered', 'schema_violation'],
      ['dead_lettered', 'schema_violation'],
    ]);
  });

  it('rollout.the-live-route-sends-only-the-cohort-keys-through-the-candidate', async () => {
    const keys = Array.from({ length: 2000 }, (_, i) => record('acme', i, { key: `user-${i}`, properties: JSON.stringify({ amount: 1000 }) }));
    const rejectAll = enforceSchema('checkout', 4, () => ({ message: 'no', path: '' }));
    const tallies: [number, number][] = [];
    for (const share of [0, 5, 25]) {
      const stage = routeByCohort(
        () => ({ rolloutId: 'r1', share, candidate: [rejectAll] }),
        (_id, _t, c, b) => tallies.push([c.events, b.events]),
      );
      const out = await processBatch(keys, [judge(5), stage], ctx);
      const expected = keys.filter((r) => inCohort('r1', 'acme', r.key, share));
      expect(out.dead.map((d) => d.record.key).sort()).toEqual(expected.map((r) => r.key).sort());
      expect(out.live.length + out.dead.length).toBe(keys.length);
    }
    expect(tallies.map(([c, b]) => c + b)).toEqual([2000, 2000]);
    expect(tallies[0]![0]).toBeLessThan(tallies[1]![0]);
  });
});

describe('a pipeline version on the live route', () => {
  it('rollout.the-cohort-keys-take-the-candidate-version-in-place-of-the-live-one-sticky-and-monotonic', async () => {
    const records = Array.from({ length: 2000 }, (_, i) => record('acme', i, { key: `user-${i}`, properties: JSON.stringify({ amount: i % 100, email: 'a@b.c' }) }));
    const liveV1 = transformStage(async () => ({ version: 1, transform: compileTransform({ steps: [{ set: { field: 'properties.v', value: '1' } }] }), salt: 's' }));
    // Version 2 removes a field and dead-letters amounts of 95 and above (5%).
    const v2 = pipelineVersionStages(2, compileTransform({ steps: [{ remove: { fields: ['properties.email'] } }, { dead_letter: { when: 'properties.amount >= 95.0', reason: 'too_big' } }] }), 's');
    expect(v2.replaces).toBe('transform');
    const cohorts: Set<string>[] = [];
    for (const share of [5, 25, 100]) {
      const tallies: [Tally, Tally][] = [];
      const stage = routeInPlaceOf(liveV1, () => ({ rolloutId: 'r1', share, candidate: v2.candidate }), (_id, _t, c, b) => tallies.push([c, b]));
      const out = await processBatch(records, [judge(5), stage], ctx);
      const inside = new Set(records.filter((r) => inCohort('r1', 'acme', r.key, share)).map((r) => r.key));
      cohorts.push(inside);
      for (const r of out.live) {
        expect(r.pipelineVersion).toBe(inside.has(r.key) ? 2 : 1);
        expect('email' in JSON.parse(r.properties)).toBe(!inside.has(r.key));
      }
      const deadKeys = out.dead.map((d) => d.record.key);
      expect(deadKeys.every((k) => inside.has(k))).toBe(true);
      expect(out.dead.every((d) => d.reason === 'too_big')).toBe(true);
      expect(out.live.length + out.dead.length).toBe(records.length);
      const [c, b] = tallies[0]!;
      expect(c.events).toBe(inside.size);
      expect(b.events).toBe(records.length - inside.size);
      expect(c.dead).toBe(deadKeys.length);
      expect(b.dead).toBe(0);
    }
    // A key in at 5% stays in at 25% and at 100%.
    for (const k of cohorts[0]!) expect(cohorts[1]!.has(k)).toBe(true);
    expect(cohorts[2]!.size).toBe(records.length);
  });

  it('rollout.with-no-route-the-live-stage-runs-as-it-is', async () => {
    const records = Array.from({ length: 10 }, (_, i) => record('acme', i));
    const liveV1 = transformStage(async () => ({ version: 1, transform: null, salt: '' }));
    const stage = routeInPlaceOf(liveV1, () => null, () => expect.fail('no tally without a route'));
    const out = await processBatch(records, [stage], ctx);
    expect(out.live.map((r) => r.pipelineVersion)).toEqual(Array(10).fill(1));
  });
});

describe('ingest and a schema rollout', () => {
  it('rollout.a-schema-version-under-rollout-or-rolled-back-is-held-from-ingest-until-promoted', () => {
    const r = (state: string, type: string, version: number) => ({ kind: 'schema', state, doc: { change: { schema: { type, version } } } });
    const held = heldVersions([
      r('shadow', 'checkout', 4),
      r('rolled_back', 'signup', 2),
      r('promoted', 'signup', 3),
      r('aborted', 'refund', 5),
      r('promoted', 'refund', 5),
      { kind: 'pipeline_version', state: 'ramp', doc: { change: { pipeline_version: 7 } } },
    ]);
    expect(Object.fromEntries([...held].map(([t, v]) => [t, [...v]]))).toEqual({ checkout: [4], signup: [2] });
  });

  it('rollout.show-says-a-step-at-100-percent-has-no-baseline-instead-of-printing-one-of-0-events', () => {
    const spec = parseRolloutSpec({ change: { pipeline_version: 2 }, steps: [{ ramp: { percents: [100], step_duration: '1m' } }], guardrails: { dead_letter_rate: 0.01, min_events: 10 }, auto: true });
    const t: Tally = { events: 100, dead: 0, dropped: 0, compared: 0, diffs: 0, costMs: 0 };
    const r = evaluate(startRollout('ro_full', 'acme', spec, 0, 'key_a'), MIN, t, null);
    expect(r.state).toBe('promoted');
    const text = details(wireRollout(r));
    expect(text).toMatch(/dead_letter_rate +cohort 0\.00+ \(n=100\)  no baseline at 100%  tolerance 0\.01/);
    expect(text).not.toContain('(n=0)');
  });
});
