import { afterEach, describe, expect, it } from 'vitest';
import type { RolloutTarget } from './rollout-scenarios.js';
import { apiCall } from './api.js';
import { poll } from './poll.js';

/**
 * A pipeline version rolled out on a real `sluice up`: stored without being made live, then
 * shadowed, compared, ramped and promoted, or rolled back and repaired. Run on the embedded
 * engines (test/e2e) and on NATS + PostgreSQL (test/scale-out).
 */
export function pipelineRolloutScenarios(name: string, start: () => Promise<RolloutTarget>): void {
  describe(`rollout of a pipeline version on sluice up (${name})`, () => {
    let server: RolloutTarget | null = null;
    afterEach(async () => {
      await server?.stop();
      server = null;
    });

    async function up() {
      server = await start();
      const keys = server.keys;
      const call = (key: string, method: string, path: string, body?: unknown) => apiCall(server!.url, key, method, path, body);
      const query = async (q: Record<string, unknown>) => (await call(keys.readKey, 'POST', '/v1/query', { interval: null, from: '-1h', ...q })).body!;
      return { keys, call, query };
    }

    /** Events whose amount is i mod 100, each with its own key. */
    const events = (from: number, n: number, prefix: string) =>
      Array.from({ length: n }, (_, i) => ({ type: 'checkout', key: `user-${prefix}-${from + i}`, idempotency_key: `${prefix}-${from + i}`, properties: { amount: (from + i) % 100, email: `u${from + i}@example.com` } }));

    const cents = { set: { field: 'properties.amount_cents', value: 'int(properties.amount * 100.0)' } };

    it('rollout.a-pipeline-version-that-changes-nothing-shows-diff-rate-0-and-promotes', async () => {
      const { keys, call, query } = await up();
      expect((await call(keys.adminKey, 'PUT', '/v1/pipeline', { steps: [cents] })).body).toMatchObject({ version: 1 });
      // The same checks as PUT /v1/pipeline: a step that does not compile is refused, naming it.
      expect(await call(keys.adminKey, 'POST', '/v1/pipeline/versions', { steps: [cents, { set: { field: 'properties.x', value: 'nope(' } }] })).toMatchObject({
        status: 400,
        body: { field: 'steps[1]', message: expect.stringMatching(/^step 1 \(set\): value: /) },
      });
      // Version 2 removes a field no event has: it changes nothing. Stored, not live.
      const stored = await call(keys.adminKey, 'POST', '/v1/pipeline/versions', { steps: [cents, { remove: { fields: ['properties.nothing'] } }] });
      expect(stored).toMatchObject({ status: 201, body: { version: 2, live: false } });
      expect((await call(keys.adminKey, 'GET', '/v1/pipeline')).body).toMatchObject({ version: 1 });
      expect((await call(keys.adminKey, 'GET', '/v1/pipeline/versions')).body!.versions.map((v: { version: number; live: boolean }) => [v.version, v.live])).toEqual([
        [2, false],
        [1, true],
      ]);
      // A view with every kind of measure: compared bucket by bucket too.
      expect((await call(keys.adminKey, 'PUT', '/v1/views/checkouts', { event: 'checkout', measures: ['count', 'sum:amount_cents', 'avg:amount', 'uniq:email', 'p95:amount'], grain: '1m' })).status).toBe(201);
      const created = await call(keys.adminKey, 'POST', '/v1/rollouts', {
        change: { pipeline_version: 2 },
        steps: [{ shadow: { sample: 1, duration: '2s' } }, { ramp: { percents: [100], step_duration: '2s' } }],
        guardrails: { diff_rate: 0.001, dead_letter_rate: 0.01, min_events: 100 },
        auto: true,
      });
      expect(created.status).toBe(201);
      const id = created.body!.id as string;
      let sent = 0;
      const end = Date.now() + 45_000;
      let state = 'shadow';
      while (state !== 'promoted' && Date.now() < end) {
        expect((await call(keys.writeKey, 'POST', '/v1/events', events(sent, 100, 'a'))).status).toBe(202);
        sent += 100;
        await new Promise((r) => setTimeout(r, 300));
        state = (await call(keys.adminKey, 'GET', `/v1/rollouts/${id}`)).body!.state;
      }
      const r = (await call(keys.adminKey, 'GET', `/v1/rollouts/${id}`)).body!;
      expect(r.state).toBe('promoted');
      expect(r.decisions.map((d: { verdict: string }) => d.verdict).filter((v: string) => v !== 'hold')).toEqual(['start', 'advance', 'promote']);
      // The shadow's advance (a loaded machine may hold it first, for too few events compared yet).
      const advanced = r.decisions.find((d: { verdict: string }) => d.verdict === 'advance');
      const diffCheck = advanced.checks.find((c: { guardrail: string }) => c.guardrail === 'diff_rate');
      expect(diffCheck).toMatchObject({ cohort: 0, breached: false });
      expect(diffCheck.cohort_events).toBeGreaterThanOrEqual(100);
      const diff = (await call(keys.adminKey, 'GET', `/v1/rollouts/${id}/diff`)).body!;
      expect(diff.compared).toBeGreaterThan(0);
      expect(diff).toMatchObject({ identical: diff.compared, changed: 0, dropped: 0, dead_lettered: 0, rates: { diff: 0 }, samples: [] });
      const checkouts = diff.views.find((v: { view: string }) => v.view === 'checkouts');
      expect(checkouts).toMatchObject({ buckets_differing: 0, samples: [] });
      expect(checkouts.buckets_compared).toBeGreaterThan(0);
      expect(checkouts.buckets_identical).toBe(checkouts.buckets_compared);
      // Promoted: version 2 is the live version, and every event was stored once by version 1 or 2.
      expect((await call(keys.adminKey, 'GET', '/v1/pipeline')).body).toMatchObject({ version: 2 });
      expect((await call(keys.adminKey, 'GET', '/v1/pipeline/versions')).body!.live_version).toBe(2);
      await poll(() => query({ source: 'raw' }), (q) => q.rows[0]?.[0] === sent);
      const byVersion = await query({ source: 'raw', group_by: ['pipeline_version'], measures: ['count', 'sum:amount_cents'] });
      expect(byVersion.rows.reduce((s: number, row: number[]) => s + row[1]!, 0)).toBe(sent);
      expect(byVersion.rows.map((row: string[]) => row[0]).sort()).toEqual(['1', '2']);
      let cents100 = 0;
      for (let i = 0; i < sent; i++) cents100 += (i % 100) * 100;
      expect(byVersion.rows.reduce((s: number, row: number[]) => s + row[2]!, 0)).toBe(cents100);
      const audit = JSON.stringify((await call(keys.adminKey, 'GET', '/v1/audit')).body);
      expect(audit).toContain('pipeline.store');
      expect(audit).toContain('pipeline.activate');
    });

    it('rollout.a-pipeline-version-that-drops-a-field-shows-the-exact-diff-and-its-samples-and-stores-nothing-of-its-own', async () => {
      const { keys, call, query } = await up();
      const stored = await call(keys.adminKey, 'POST', '/v1/pipeline/versions', { steps: [{ remove: { fields: ['properties.email'] } }] });
      expect(stored).toMatchObject({ status: 201, body: { version: 1, live: false } });
      expect((await call(keys.adminKey, 'GET', '/v1/pipeline')).body).toMatchObject({ version: 0 });
      const created = await call(keys.adminKey, 'POST', '/v1/rollouts', {
        change: { pipeline_version: 1 },
        steps: [{ shadow: { sample: 1, duration: '1h' } }, { ramp: { percents: [100], step_duration: '1h' } }],
        // No diff_rate guardrail here: it would roll the rollout back (every event differs) while the diff is read.
        guardrails: { dead_letter_rate: 0.01, min_events: 100 },
        auto: false,
      });
      const id = created.body!.id as string;
      // While it is under way, no other version is made live behind its back.
      expect(await call(keys.adminKey, 'PUT', '/v1/pipeline', { steps: [] })).toMatchObject({ status: 409, body: { message: expect.stringContaining(`rollout ${id} is taking a pipeline version live`) } });
      expect((await call(keys.writeKey, 'POST', '/v1/events', events(0, 300, 'b'))).status).toBe(202);
      const diff = await poll(
        () => call(keys.adminKey, 'GET', `/v1/rollouts/${id}/diff?limit=3`),
        (x) => x.body?.compared === 300,
      );
      expect(diff.body).toMatchObject({ compared: 300, identical: 0, changed: 300, dropped: 0, dead_lettered: 0, rates: { diff: 1, changed: 1 } });
      expect(diff.body!.samples).toHaveLength(3);
      for (const s of diff.body!.samples) {
        expect(s).toMatchObject({ kind: 'changed', fields: ['properties.email'] });
        const n = Number(s.idempotency_key.slice(2));
        expect(s.active.stored.properties).toEqual({ amount: n % 100, email: `u${n}@example.com` });
        expect(s.candidate.stored.properties).toEqual({ amount: n % 100 });
      }
      // The shadow stored nothing of its own: every event once, with its email, by version 0.
      expect(await poll(() => query({ source: 'raw' }), (q) => q.rows[0]?.[0] === 300).then((q) => q.rows[0][0])).toBe(300);
      expect((await query({ source: 'raw', group_by: ['pipeline_version'], measures: ['count', 'uniq:properties.email'] })).rows).toEqual([['0', 300, 300]]);
      // Never live: aborting it has nothing to repair.
      expect((await call(keys.adminKey, 'POST', `/v1/rollouts/${id}/abort`)).body).toMatchObject({ state: 'aborted', share: 0, repair: { status: 'not_needed' } });
    });

    it('rollout.a-pipeline-version-that-changes-a-summed-field-shows-the-differing-buckets-of-a-view-with-both-exact-sums', async () => {
      const { keys, call } = await up();
      expect((await call(keys.adminKey, 'PUT', '/v1/pipeline', { steps: [cents] })).body).toMatchObject({ version: 1 });
      // Version 2 counts cents ten times too high.
      expect((await call(keys.adminKey, 'POST', '/v1/pipeline/versions', { steps: [{ set: { field: 'properties.amount_cents', value: 'int(properties.amount * 1000.0)' } }] })).body).toMatchObject({ version: 2 });
      // A view of the cents, and one the change leaves alone.
      expect((await call(keys.adminKey, 'PUT', '/v1/views/cents', { event: 'checkout', measures: ['count', 'sum:amount_cents', 'max:amount_cents'], grain: '1d' })).status).toBe(201);
      expect((await call(keys.adminKey, 'PUT', '/v1/views/emails', { event: 'checkout', dimensions: ['type'], measures: ['count', 'uniq:email'], grain: '1d' })).status).toBe(201);
      const created = await call(keys.adminKey, 'POST', '/v1/rollouts', {
        change: { pipeline_version: 2 },
        steps: [{ shadow: { sample: 1, duration: '1h' } }, { ramp: { percents: [100], step_duration: '1h' } }],
        guardrails: { min_events: 100 },
        auto: false,
      });
      const id = created.body!.id as string;
      expect((await call(keys.writeKey, 'POST', '/v1/events', events(0, 300, 'd'))).status).toBe(202);
      const diff = (
        await poll(
          () => call(keys.adminKey, 'GET', `/v1/rollouts/${id}/diff`),
          (x) => x.body?.compared === 300,
        )
      ).body!;
      expect(diff).toMatchObject({ compared: 300, changed: 297, identical: 3 });
      const byView = Object.fromEntries(diff.views.map((v: { view: string }) => [v.view, v]));
      expect(byView.emails).toMatchObject({ buckets_differing: 0, samples: [] });
      expect(byView.emails.buckets_compared).toBeGreaterThan(0);
      // The day's bucket (two, across midnight UTC) differs in the sum and the greatest cents, with the exact sums of both sides.
      const view = byView.cents;
      expect(view.buckets_differing).toBeGreaterThan(0);
      expect(view.samples.length).toBeGreaterThanOrEqual(1);
      expect(view.samples.length).toBeLessThanOrEqual(2);
      let active = 0;
      for (let i = 0; i < 300; i++) active += (i % 100) * 100;
      const total = (side: 'active' | 'candidate', m: string) => view.samples.reduce((s: number, x: Record<string, Record<string, number>>) => s + x[side]![m]!, 0);
      expect([total('active', 'count'), total('active', 'sum:amount_cents'), total('candidate', 'count'), total('candidate', 'sum:amount_cents')]).toEqual([300, active, 300, active * 10]);
      const max = (side: 'active' | 'candidate') => Math.max(...view.samples.map((x: Record<string, Record<string, number>>) => x[side]!['max:amount_cents']!));
      expect([max('active'), max('candidate')]).toEqual([9900, 99000]);
      for (const s of view.samples) {
        expect(s).toMatchObject({ group: {}, differs: expect.arrayContaining(['sum:amount_cents']) });
        expect(s.differs).not.toContain('count');
        expect(s.bucket).toMatch(/^\d{4}-\d{2}-\d{2}T00:00:00.000Z$/);
      }
      expect((await call(keys.adminKey, 'POST', `/v1/rollouts/${id}/abort`)).body).toMatchObject({ state: 'aborted', repair: { status: 'not_needed' } });
    });

    it('rollout.a-pipeline-version-dead-lettering-5-percent-rolls-back-during-the-ramp-and-its-repair-leaves-views-as-if-it-never-ran', async () => {
      const { keys, call, query } = await up();
      expect((await call(keys.adminKey, 'PUT', '/v1/pipeline', { steps: [cents] })).body).toMatchObject({ version: 1 });
      // Version 2 counts cents ten times too high and dead-letters amounts of 95 and above (5%).
      const bad = [{ set: { field: 'properties.amount_cents', value: 'int(properties.amount * 1000.0)' } }, { dead_letter: { when: 'properties.amount >= 95.0', reason: 'too_big' } }];
      expect((await call(keys.adminKey, 'POST', '/v1/pipeline/versions', { steps: bad })).body).toMatchObject({ version: 2 });
      const view = { event: 'checkout', dimensions: [], measures: ['count', 'sum:amount_cents'], grain: '1m' };
      expect((await call(keys.adminKey, 'PUT', '/v1/views/cents', view)).status).toBe(201);
      await poll(() => call(keys.readKey, 'GET', '/v1/views/cents'), (x) => x.body?.status === 'ready');
      const created = await call(keys.adminKey, 'POST', '/v1/rollouts', {
        change: { pipeline_version: 2 },
        steps: [{ ramp: { percents: [50, 100], step_duration: '1h' } }],
        guardrails: { dead_letter_rate: 0.01, min_events: 200 },
        auto: true,
      });
      const id = created.body!.id as string;
      // The workers take the share at the controller's next pass.
      await new Promise((r) => setTimeout(r, 2_500));
      for (const from of [0, 1000]) expect((await call(keys.writeKey, 'POST', '/v1/events', events(from, 1000, 'c'))).status).toBe(202);
      const r = await poll(
        () => call(keys.adminKey, 'GET', `/v1/rollouts/${id}`),
        (x) => x.body?.state === 'rolled_back',
      );
      expect(r.body).toMatchObject({ state: 'rolled_back', share: 0 });
      const d = r.body!.decisions.at(-1);
      expect(d).toMatchObject({ verdict: 'roll_back', step: 'ramp', share: 50, actor: 'controller' });
      const check = d.checks.find((c: { guardrail: string }) => c.guardrail === 'dead_letter_rate');
      expect(check).toMatchObject({ breached: true, baseline: 0 });
      expect(check.cohort).toBeGreaterThan(0.01);
      const fixed = await poll(
        () => call(keys.adminKey, 'GET', `/v1/rollouts/${id}`),
        (x) => x.body?.repair?.status === 'done',
      );
      expect(fixed.body!.repair).toMatchObject({ status: 'done', past_retention: 0 });
      expect(fixed.body!.repair.repaired).toBeGreaterThan(0);
      expect(fixed.body!.repair.repaired).toBeLessThanOrEqual(2000);
      const repair = fixed.body!.decisions.at(-1);
      expect(repair).toMatchObject({ verdict: 'repair', actor: 'controller' });
      // Both kinds of output were re-derived: the events version 2 stored, and those it dead-lettered.
      const [, storedByV2, deadByV2] = /^re-derived with the active version: (\d+) events version 2 stored, (\d+) it dead-lettered$/.exec(repair.reason) ?? [];
      expect(Number(storedByV2)).toBeGreaterThan(0);
      expect(Number(deadByV2)).toBeGreaterThan(0);
      expect(Number(storedByV2) + Number(deadByV2)).toBe(fixed.body!.repair.repaired);
      expect((await call(keys.adminKey, 'GET', '/v1/pipeline')).body).toMatchObject({ version: 1 });

      // As if version 2 had never run: every event stored once, by version 1, with version 1's cents; 0 lost, 0 doubled.
      let expected = 0;
      for (let i = 0; i < 2000; i++) expected += (i % 100) * 100;
      const settled = await poll(
        () => query({ source: 'raw', group_by: ['pipeline_version'], measures: ['count', 'uniq:key', 'sum:amount_cents'] }),
        (q) => q.rows.length === 1 && q.rows[0][1] === 2000,
      );
      expect(settled.rows).toEqual([['1', 2000, 2000, expected]]);
      expect((await call(keys.adminKey, 'GET', '/v1/dlq?limit=1000')).body!.entries.filter((e: { status: string }) => e.status === 'open')).toEqual([]);
      // The view, rebuilt over the repaired minutes, equals the computation from the raw events (the per-minute counts too).
      const fromView = await poll(
        () => query({ event: 'checkout', measures: ['count', 'sum:amount_cents'] }),
        (q) => q.source === 'view:cents' && q.rows[0]?.[1] === expected,
      );
      expect(fromView.source).toBe('view:cents');
      expect(fromView.rows).toEqual([[2000, expected]]);
      expect((await query({ event: 'checkout', measures: ['count'] })).rows).toEqual([[2000]]);
    });
  });
}
