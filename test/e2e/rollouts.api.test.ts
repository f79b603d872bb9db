import { afterEach, describe, expect, it } from 'vitest';
import { details } from '../../src/cli/rollout.js';
import { evaluateAll } from '../../src/rollout/service.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';

const MIN = 60_000;

/** The rollouts API in process (inject) on the real embedded catalog; the controller's passes driven with explicit times. */
describe('rollouts API', () => {
  let p: Pipeline;
  afterEach(async () => {
    await p?.close();
  });

  const call = async (key: string, method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown) => {
    const r = await p.app.inject({ method, url, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
    return { status: r.statusCode, body: r.body ? (JSON.parse(r.body) as Record<string, any>) : null };
  };

  async function publish(version: number): Promise<void> {
    const schema = { type: 'object', properties: { amount: { type: 'number', ...(version > 1 ? { maximum: 100 } : {}) } } };
    await p.catalog.schemas.publish('acme', 'checkout', { schema, owner: 'payments', actor: 'cli', expectedVersion: version - 1, diff: null });
  }

  const doc = {
    change: { schema: { type: 'checkout', version: 2 } },
    steps: [{ shadow: { sample: 1, duration: '5m' } }, { cohort: { percent: 10, duration: '5m' } }, { ramp: { percents: [50, 100], step_duration: '5m' } }],
    guardrails: { dead_letter_rate: 0.01, min_events: 100 },
    auto: true,
  };

  it('rollouts.create-list-get-act-one-active-per-kind-and-audit', async () => {
    p = await startPipeline({}, { workers: false });
    await publish(1);
    await publish(2);
    const admin = p.tenant.adminKey;
    // The contract's refusals, each naming what to do.
    expect(await call(p.tenant.writeKey, 'POST', '/v1/rollouts', doc)).toMatchObject({ status: 403 });
    expect(await call(admin, 'POST', '/v1/rollouts', { ...doc, change: { pipeline_version: 7 } })).toMatchObject({
      status: 404,
      body: { field: 'change.pipeline_version', message: expect.stringMatching(/^the pipeline has no version 7; store the candidate first \(POST \/v1\/pipeline\/versions/) },
    });
    expect(await call(admin, 'POST', '/v1/rollouts', { ...doc, change: { schema: { type: 'checkout', version: 9 } } })).toMatchObject({ status: 404, body: { field: 'change.schema.version' } });
    expect(await call(admin, 'POST', '/v1/rollouts', { ...doc, guardrails: { diff_rate: -1 } })).toMatchObject({ status: 400, body: { field: 'guardrails.diff_rate' } });

    const created = await call(admin, 'POST', '/v1/rollouts', doc);
    expect(created.status).toBe(201);
    const id = created.body!.id as string;
    expect(created.body).toMatchObject({ change: doc.change, state: 'shadow', share: 0, step: 'shadow', repair: null, decisions: [{ verdict: 'start', step: 'shadow', share: 0 }] });
    expect(await call(admin, 'POST', '/v1/rollouts', doc)).toMatchObject({ status: 409, body: { message: expect.stringContaining(`already has an active rollout of a schema version, ${id}; promote, abort or wait for it (sluice rollout show ${id})`) } });
    expect((await call(admin, 'GET', '/v1/rollouts')).body!.rollouts.map((r: { id: string }) => r.id)).toEqual([id]);
    expect((await call(admin, 'GET', `/v1/rollouts/${id}`)).body).toMatchObject({ id, state: 'shadow' });
    // Another tenant's admin key sees nothing of it.
    const other = await p.catalog.createTenant('beta');
    expect((await call(other.adminKey, 'GET', `/v1/rollouts/${id}`)).status).toBe(404);
    expect((await call(other.adminKey, 'POST', `/v1/rollouts/${id}/abort`)).status).toBe(404);

    expect((await call(admin, 'POST', `/v1/rollouts/${id}/pause`)).body).toMatchObject({ state: 'paused', share: 0 });
    expect(await call(admin, 'POST', `/v1/rollouts/${id}/advance`)).toMatchObject({ status: 409, body: { message: expect.stringMatching(/is paused: cannot advance \(resume it first\)/) } });
    expect((await call(admin, 'POST', `/v1/rollouts/${id}/resume`)).body).toMatchObject({ state: 'shadow' });
    expect((await call(admin, 'POST', `/v1/rollouts/${id}/advance`)).body).toMatchObject({ state: 'cohort', share: 10 });
    const aborted = await call(admin, 'POST', `/v1/rollouts/${id}/abort`);
    expect(aborted.body).toMatchObject({ state: 'aborted', share: 0, repair: { status: 'pending' } });
    expect(aborted.body!.decisions.map((d: { verdict: string }) => d.verdict)).toEqual(['start', 'pause', 'resume', 'advance', 'abort']);
    const keyId = admin.split('_')[2];
    const audit = await p.catalog.auditLog('acme', 10, id);
    expect(audit.map((e) => [e.action, e.actor])).toEqual([
      ['rollout.abort', keyId],
      ['rollout.advance', keyId],
      ['rollout.resume', keyId],
      ['rollout.pause', keyId],
      ['rollout.create', keyId],
    ]);
    // Finished: another rollout of the kind may start.
    expect((await call(admin, 'POST', '/v1/rollouts', doc)).status).toBe(201);
    expect((await call(admin, 'GET', `/v1/rollouts/${id}/diff?limit=500`)).status).toBe(400);
    expect((await call(admin, 'GET', `/v1/rollouts/${id}/diff?limit=5`)).body).toMatchObject({ compared: 0, rates: { diff: 0 }, samples: [] });
  });

  it('rollouts.created-before-its-schema-version-is-published-says-what-it-waits-for', async () => {
    p = await startPipeline({}, { workers: false });
    await publish(1);
    const admin = p.tenant.adminKey;
    const created = await call(admin, 'POST', '/v1/rollouts', doc);
    expect(created).toMatchObject({ status: 201, body: { state: 'shadow', candidate_missing: 'schema checkout version 2' } });
    const id = created.body!.id as string;
    expect((await call(admin, 'GET', `/v1/rollouts/${id}`)).body).toMatchObject({ candidate_missing: 'schema checkout version 2' });
    const shown = details((await call(admin, 'GET', `/v1/rollouts/${id}`)).body as Parameters<typeof details>[0]);
    expect(shown).toContain('waiting for schema checkout version 2: nothing is compared, counted or routed until it is published (sluice schema push checkout FILE');
    await publish(2);
    expect((await call(admin, 'GET', `/v1/rollouts/${id}`)).body).toMatchObject({ candidate_missing: null });
    expect((await call(admin, 'GET', '/v1/rollouts')).body!.rollouts).toMatchObject([{ id, candidate_missing: null }]);
    // A finished rollout waits for nothing.
    expect((await call(admin, 'POST', `/v1/rollouts/${id}/abort`)).body).toMatchObject({ state: 'aborted', candidate_missing: null });
  });

  it('rollouts.the-controller-holds-on-low-traffic-advances-then-rolls-back-on-a-breach-from-the-catalog-tallies', async () => {
    p = await startPipeline({}, { workers: false });
    await publish(1);
    await publish(2);
    const created = await call(p.tenant.adminKey, 'POST', '/v1/rollouts', doc);
    const id = created.body!.id as string;
    const t0 = Date.parse(created.body!.created_at as string);
    const tally = (events: number, dead = 0) => ({ events, dead, dropped: 0, compared: events, diffs: 0, costMs: 0 });
    const minuteOf = (at: number) => Math.floor(at / MIN) * MIN;
    // Buckets as the workers key them: a minute, or the phase's start within its first minute.
    const bucket = (at: number, phaseStart: number) => Math.max(minuteOf(at), phaseStart);
    // Shadow, 5 minutes of 10 events a minute: too few to judge; held with the reason.
    for (let m = 0; m < 6; m++) await p.catalog.rollouts.addTallies(id, [{ minute: bucket(t0 + m * MIN, t0), side: 'cohort', tally: tally(10) }, { minute: bucket(t0 + m * MIN, t0), side: 'baseline', tally: tally(10) }]);
    await evaluateAll(p.catalog, t0 + 5 * MIN);
    let r = (await call(p.tenant.adminKey, 'GET', `/v1/rollouts/${id}`)).body!;
    expect(r).toMatchObject({ state: 'holding', share: 0, step: 'shadow' });
    expect(r.hold_reason).toMatch(/^too few events to judge: the cohort has \d+ events, the baseline has \d+ events; min_events is 100$/);
    // Judged again twice, nothing new: the hold's last_at moves, and the audit log has the one hold.
    await evaluateAll(p.catalog, t0 + 5 * MIN + 10_000);
    await evaluateAll(p.catalog, t0 + 5 * MIN + 20_000);
    r = (await call(p.tenant.adminKey, 'GET', `/v1/rollouts/${id}`)).body!;
    expect(r.decisions.at(-1)).toMatchObject({ verdict: 'hold', last_at: new Date(t0 + 5 * MIN + 20_000).toISOString() });
    expect((await p.catalog.auditLog('acme', 10, id)).filter((e) => e.action === 'rollout.hold')).toHaveLength(1);
    // Traffic comes, in the minute the shadow ends: it passes and moves to the cohort. What the
    // shadow observed in that minute is not the cohort's (its decision below counts 1000, not 1500).
    await p.catalog.rollouts.addTallies(id, [{ minute: bucket(t0 + 6 * MIN - 1, t0), side: 'cohort', tally: tally(500) }, { minute: bucket(t0 + 6 * MIN - 1, t0), side: 'baseline', tally: tally(500) }]);
    await evaluateAll(p.catalog, t0 + 6 * MIN);
    r = (await call(p.tenant.adminKey, 'GET', `/v1/rollouts/${id}`)).body!;
    expect(r).toMatchObject({ state: 'cohort', share: 10 });
    // In the cohort, 5% dead-lettered against the baseline's 0.1%: rolled back at the next pass.
    const at = t0 + 7 * MIN;
    await p.catalog.rollouts.addTallies(id, [{ minute: minuteOf(at), side: 'cohort', tally: tally(1000, 50) }, { minute: minuteOf(at), side: 'baseline', tally: tally(9000, 9) }]);
    await evaluateAll(p.catalog, at);
    r = (await call(p.tenant.adminKey, 'GET', `/v1/rollouts/${id}`)).body!;
    expect(r).toMatchObject({ state: 'rolled_back', share: 0, repair: { status: 'pending', from: t0 + 6 * MIN, to: at } });
    const d = r.decisions.at(-1);
    expect(d).toMatchObject({ verdict: 'roll_back', step: 'cohort', share: 10, actor: 'controller', cohort: { events: 1000, dead: 50 }, baseline: { events: 9000, dead: 9 } });
    expect(d.checks).toEqual([{ guardrail: 'dead_letter_rate', cohort: 0.05, baseline: 0.001, excess: expect.closeTo(0.049, 9), tolerance: 0.01, cohort_events: 1000, baseline_events: 9000, over_tolerance: true, breached: true }]);
    expect((await p.catalog.auditLog('acme', 1, id))[0]).toMatchObject({ action: 'rollout.roll_back', actor: 'controller', detail: { verdict: 'roll_back', reason: expect.stringMatching(/dead_letter_rate 0\.05 vs baseline 0\.001/) } });
  });
});
