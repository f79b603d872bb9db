import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { OPERATOR_SCOPE } from '../../src/core/operator.js';
import type { LogRecord } from '../../src/core/types.js';
import { checkTenantName } from '../../src/backends/api-keys.js';
import { enrichStages, operatorVersionStages } from '../../src/rollout/changes.js';
import { tenantInCohort } from '../../src/rollout/cohort.js';
import { parseRolloutSpec } from '../../src/rollout/document.js';
import { type Tally } from '../../src/rollout/guardrails.js';
import { isLive, phasesOf, promote, startRollout, type Rollout } from '../../src/rollout/machine.js';
import { routeInPlaceOf } from '../../src/rollout/route.js';
import { compileTransform } from '../../src/transform/run.js';
import { enrichStage, judge, processBatch } from '../../src/worker/pipeline.js';
import { operatorTransformStage, transformStage } from '../../src/worker/transform.js';
import { record as logRecord } from '../helpers/entries.js';
import { drive, healthy, MIN } from '../helpers/rollout-clock.js';

const ctx = { signal: new AbortController().signal };

const SPEC = parseRolloutSpec(
  {
    change: { operator_pipeline_version: 2 },
    steps: [
      { shadow: { sample: 1, duration: '10m' } },
      { cohort: { tenants: ['acme'], duration: '15m' } },
      { ramp: { percents: [10, 50, 100], step_duration: '10m' } },
    ],
    guardrails: { dead_letter_rate: 0.001, drop_rate: 0.01, min_events: 1000 },
  },
  { global: true },
);

const TENANTS = Array.from({ length: 2000 }, (_, i) => `tenant-${i}`);
const cohortAt = (r: Rollout) => new Set(['acme', ...TENANTS].filter((t) => tenantInCohort(r.id, t, r.share, r.tenants ?? [])));

describe('the operator-wide rollout document', () => {
  it('rollout.global-document-names-tenants-and-changes-only-the-operator-pipeline', () => {
    expect(phasesOf(SPEC).map((p) => [p.step, p.share, p.tenants])).toEqual([
      ['shadow', 0, []],
      ['cohort', 0, ['acme']],
      ['ramp', 10, ['acme']],
      ['ramp', 50, ['acme']],
      ['ramp', 100, ['acme']],
    ]);
    const bad = (body: unknown, global: boolean) => () => parseRolloutSpec(body, { global });
    // A tenant's rollout neither names tenants nor changes the operator pipeline; an operator-wide one changes only it.
    expect(bad({ change: { pipeline_version: 2 }, steps: [{ cohort: { tenants: ['acme'], duration: '1m' } }] }, false)).toThrow(/steps\[0\]\.cohort\.tenants: unknown field/);
    expect(bad({ change: { operator_pipeline_version: 2 } }, false)).toThrow(/change\.operator_pipeline_version: the operator pipeline is rolled out operator-wide: sluice rollout create FILE --global/);
    expect(bad({ change: { pipeline_version: 2 } }, true)).toThrow(/^change: an operator-wide rollout changes \{"operator_pipeline_version": N\}/);
    expect(bad({ change: { operator_pipeline_version: 2 }, steps: [{ cohort: { tenants: [], duration: '1m' } }] }, true)).toThrow(/steps\[0\]\.cohort\.tenants: expected a non-empty list of tenant names/);
    expect(bad({ change: { operator_pipeline_version: 2 }, steps: [{ cohort: { duration: '1m' } }] }, true)).toThrow(/steps\[0\]\.cohort\.percent: expected a percent/);
    // The operator's scope is no tenant name: no tenant can be created under it.
    expect(() => checkTenantName(OPERATOR_SCOPE)).toThrow(/is not valid/);
  });
});

describe('an operator-wide rollout on a manual clock', () => {
  it('rollout.global-named-tenants-first-then-a-hash-share-of-tenants-sticky-and-monotonic-then-promote', async () => {
    const clock = new ManualClock();
    let r = startRollout('g1', OPERATOR_SCOPE, SPEC, clock.now(), 'cli');
    expect([r.state, r.share, r.tenants, isLive(r), r.live_since]).toEqual(['shadow', 0, [], false, null]);
    expect(cohortAt(r).size).toBe(0);
    const seen: { state: string; share: number; cohort: Set<string> }[] = [];
    for (let i = 0; i < 100 && r.state !== 'promoted'; i++) {
      r = await drive(clock, r, 1, () => [healthy(5000), healthy(50_000)]);
      if (seen.at(-1)?.state !== r.state || seen.at(-1)?.share !== r.share) seen.push({ state: r.state, share: r.share, cohort: cohortAt(r) });
    }
    expect(seen.map((s) => [s.state, s.share])).toEqual([
      ['shadow', 0],
      ['cohort', 0],
      ['ramp', 10],
      ['ramp', 50],
      ['ramp', 100],
      ['promoted', 100],
    ]);
    // The named cohort is exactly the named tenant, live from that step on.
    expect([...seen[1]!.cohort]).toEqual(['acme']);
    expect(r.live_since).toBe(r.created_at + 10 * MIN);
    // Then a share of the tenants by hash, about the share (binomial, ±3σ), the named one still in; each cohort holds the last.
    for (const [i, share] of [[2, 10], [3, 50]] as const) {
      const n = seen[i]!.cohort.size - 1;
      const sd = Math.sqrt(TENANTS.length * (share / 100) * (1 - share / 100));
      expect(Math.abs(n - TENANTS.length * (share / 100))).toBeLessThan(3 * sd);
      expect(seen[i]!.cohort.has('acme')).toBe(true);
    }
    for (let i = 2; i < seen.length; i++) for (const t of seen[i - 1]!.cohort) expect(seen[i]!.cohort.has(t)).toBe(true);
    expect(seen[4]!.cohort.size).toBe(TENANTS.length + 1);
    // Sticky: the same tenant answers the same at the same share, whatever else was asked.
    expect(TENANTS.filter((t) => tenantInCohort('g1', t, 10, [])).join()).toBe(TENANTS.filter((t) => tenantInCohort('g1', t, 10, [])).join());
    expect(r.decisions.map((d) => d.verdict)).toEqual(['start', 'advance', 'advance', 'advance', 'advance', 'promote']);
  });

  it('rollout.global-too-few-events-in-the-named-tenants-holds-with-the-reason', async () => {
    const clock = new ManualClock();
    let r = startRollout('g1', OPERATOR_SCOPE, SPEC, clock.now(), 'cli');
    r = await drive(clock, r, 11, () => [healthy(5000), healthy(5000)]);
    expect([r.state, r.tenants]).toEqual(['cohort', ['acme']]);
    // acme sends 10 events a minute, all dead-lettered: never a verdict on so few.
    r = await drive(clock, r, 60, () => [{ ...healthy(10), dead: 10 }, healthy(50_000)]);
    expect([r.state, r.hold_reason]).toEqual(['holding', 'too few events to judge: the cohort has 10 events; min_events is 1000']);
    expect(r.tenants).toEqual(['acme']);
    r = await drive(clock, r, 1, () => [healthy(2000), healthy(50_000)]);
    expect([r.state, r.share, r.decisions.at(-1)!.verdict]).toEqual(['ramp', 10, 'advance']);
  });

  it('rollout.global-a-dead-letter-breach-in-the-ramp-rolls-back-every-tenant-at-once', async () => {
    const clock = new ManualClock();
    let r = startRollout('g1', OPERATOR_SCOPE, SPEC, clock.now(), 'cli');
    r = await drive(clock, r, 26, () => [healthy(5000), healthy(50_000)]);
    expect([r.state, r.share]).toEqual(['ramp', 10]);
    const liveSince = r.live_since!;
    // The cohort's tenants dead-letter 5% while the others dead-letter 0.1%: an excess of 4.9 points over a 0.1 tolerance.
    r = await drive(clock, r, 1, () => [{ ...healthy(4000), dead: 200 }, { ...healthy(40_000), dead: 40 }]);
    expect([r.state, r.share, r.tenants]).toEqual(['rolled_back', 0, []]);
    expect(cohortAt(r).size).toBe(0);
    const d = r.decisions.at(-1)!;
    expect(d).toMatchObject({ verdict: 'roll_back', step: 'ramp', share: 10, actor: 'controller' });
    expect(d.checks!.find((c) => c.guardrail === 'dead_letter_rate')).toMatchObject({ cohort: 0.05, baseline: 0.001, breached: true, cohort_events: 4000, baseline_events: 40_000 });
    expect(r.repair).toEqual({ status: 'pending', from: liveSince, to: clock.now(), repaired: 0, past_retention: 0 });
  });

  it('rollout.global-promote-by-the-operator-takes-every-tenant', async () => {
    const clock = new ManualClock();
    let r = startRollout('g1', OPERATOR_SCOPE, SPEC, clock.now(), 'cli');
    r = await drive(clock, r, 11, () => [healthy(5000), healthy(50_000)]);
    r = promote(r, clock.now(), 'cli');
    expect([r.state, r.share]).toEqual(['promoted', 100]);
    expect(cohortAt(r).size).toBe(TENANTS.length + 1);
  });
});

describe('the operator pipeline on the live route', () => {
  const record = (tenant: string, n: number): LogRecord => logRecord(tenant, n, { key: `user-${n}`, properties: JSON.stringify({ amount: n % 100 }), context: JSON.stringify({ ip: '10.0.0.1', app: 'web' }) });

  it('rollout.global-routes-whole-tenants-through-the-candidate-before-their-own-steps', async () => {
    const records = ['acme', 'globex', 'initech'].flatMap((t) => Array.from({ length: 200 }, (_, i) => record(t, i)));
    const salts = async (t: string) => `salt-${t}`;
    // The live operator version tags every event; the candidate removes context.ip and dead-letters amounts of 95 and above.
    const liveOp = operatorTransformStage(async () => ({ version: 1, transform: compileTransform({ steps: [{ set: { field: 'context.op', value: '1' } }] }) }), salts);
    const v2 = operatorVersionStages(2, compileTransform({ steps: [{ remove: { fields: ['context.ip'] } }, { dead_letter: { when: 'properties.amount >= 95.0', reason: 'too_big' } }] }), salts);
    expect(v2.replaces).toBe('operator_transform');
    const tenantOwn = transformStage(async (t) => ({ version: t === 'acme' ? 3 : 0, transform: t === 'acme' ? compileTransform({ steps: [{ set: { field: 'properties.own', value: 'true' } }] }) : null, salt: 's' }));
    const tallies: [string, Tally, Tally][] = [];
    // The named tenant acme is in; the others are routed too, as the baseline.
    const route = routeInPlaceOf(liveOp, (t) => ({ rolloutId: 'g1', share: 0, candidate: v2.candidate, admits: () => tenantInCohort('g1', t, 0, ['acme']) }), (_id, t, c, b) => tallies.push([t, c, b]));
    const out = await processBatch(records, [judge(5), route, tenantOwn], ctx);
    for (const r of out.live) {
      const c = JSON.parse(r.context) as Record<string, unknown>;
      expect('ip' in c).toBe(r.tenant !== 'acme');
      expect(c.op).toBe(r.tenant === 'acme' ? undefined : 1);
      // The tenant's own steps ran after, and pipeline_version stays the tenant's own version.
      expect(r.pipelineVersion).toBe(r.tenant === 'acme' ? 3 : 0);
      // Each stored event records the operator version that produced it, through the tenant's own steps.
      expect(r.operatorVersion).toBe(r.tenant === 'acme' ? 2 : 1);
      if (r.tenant === 'acme') expect(JSON.parse(r.properties).own).toBe(true);
    }
    expect(out.dead.map((d) => [d.record.tenant, d.reason])).toEqual(Array(10).fill(['acme', 'too_big']));
    expect(out.dead[0]!.message).toMatch(/\(operator pipeline version 2\)$/);
    const byTenant = new Map(tallies.map(([t, c, b]) => [t, [c.events, c.dead, b.events, b.dead]]));
    expect(byTenant).toEqual(
      new Map([
        ['acme', [200, 10, 0, 0]],
        ['globex', [0, 0, 200, 0]],
        ['initech', [0, 0, 200, 0]],
      ]),
    );
  });

  it('rollout.operator-pipeline-runs-for-every-tenant-and-leaves-pipeline-version-alone', async () => {
    const records = [record('acme', 1), record('globex', 2)];
    const op = operatorTransformStage(async () => ({ version: 4, transform: compileTransform({ steps: [{ redact: { fields: ['context.ip'], how: 'hash' } }] }) }), async (t) => `salt-${t}`);
    const out = await processBatch(records, [op], ctx);
    expect(out.live.map((r) => r.pipelineVersion ?? 0)).toEqual([0, 0]);
    expect(out.live.map((r) => r.operatorVersion)).toEqual([4, 4]);
    const ips = out.live.map((r) => JSON.parse(r.context).ip as string);
    // Hashed with each tenant's own salt: the same address does not match across tenants.
    expect(ips[0]).not.toBe('10.0.0.1');
    expect(ips[0]).not.toBe(ips[1]);
    // No operator pipeline: records pass as they are.
    const none = operatorTransformStage(async () => ({ version: 0, transform: null }), async () => '');
    expect((await processBatch(records, [none], ctx)).live).toEqual(records);
  });
});

describe('the operator-level enrichment as a change', () => {
  it('rollout.global-enrichment-document-is-validated-and-replaces-the-live-enrich-stage-for-cohort-tenants', async () => {
    const spec = parseRolloutSpec({ change: { enrich: { userAgent: false } }, steps: [{ cohort: { tenants: ['acme'], duration: '1m' } }] }, { global: true });
    expect(spec.change).toEqual({ enrich: { userAgent: false } });
    const bad = (change: unknown) => () => parseRolloutSpec({ change }, { global: true });
    expect(bad({ enrich: {} })).toThrow(/change\.enrich: expected the enrichment settings to change/);
    expect(bad({ enrich: { geo: true } })).toThrow(/change\.enrich\.geo: unknown field; expected one of anonymizeIp, userAgent/);
    expect(bad({ enrich: { userAgent: 'no' } })).toThrow(/change\.enrich\.userAgent: expected true or false/);
    expect(() => parseRolloutSpec({ change: { enrich: { userAgent: false } } })).toThrow(/expected exactly one of pipeline_version, schema|unknown change/);

    const ua = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
    const records = ['acme', 'globex'].flatMap((t) => Array.from({ length: 5 }, (_, i) => logRecord(t, i, { context: JSON.stringify({ user_agent: ua }) })));
    const live = async () => ({ anonymizeIp: true, userAgent: true, plugins: [] });
    const candidate = enrichStages({ userAgent: false }, live);
    expect(candidate.replaces).toBe('enrich');
    const tallies: [string, Tally, Tally][] = [];
    const route = routeInPlaceOf(enrichStage(live), (t) => ({ rolloutId: 'g2', share: 0, candidate: candidate.candidate, admits: () => tenantInCohort('g2', t, 0, ['acme']) }), (_id, t, c, b) => tallies.push([t, c, b]));
    const out = await processBatch(records, [route], ctx);
    for (const r of out.live) expect('ua' in JSON.parse(r.context)).toBe(r.tenant !== 'acme');
    expect(tallies.map(([t, c, b]) => [t, c.events, b.events])).toEqual([
      ['acme', 5, 0],
      ['globex', 0, 5],
    ]);
  });
});
