import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI } from './server.js';
import { apiCall, rolloutShare } from './api.js';
import { poll } from './poll.js';

/** A running `sluice up` for the scenarios: its URL, the tenant's keys, and how to stop it. */
export interface RolloutTarget {
  url: string;
  keys: { writeKey: string; readKey: string; adminKey: string };
  stop(): Promise<void>;
}

/**
 * A schema version's enforcement rolled out on a real `sluice up` (the store thread's
 * controller and shadow group): what it would reject shows in shadow and nothing is rejected
 * until its enforcement takes the cohort; a breach rolls back by itself and is repaired.
 * Run on the embedded engines (test/e2e) and on NATS + PostgreSQL (test/scale-out).
 */
export function rolloutScenarios(name: string, start: () => Promise<RolloutTarget>): void {
  describe(`rollout of a schema version on sluice up (${name})`, () => {
    let server: RolloutTarget | null = null;
    afterEach(async () => {
      await server?.stop();
      server = null;
    });

    async function up() {
      server = await start();
      const keys = server.keys;
      const call = (key: string, method: string, path: string, body?: unknown) => apiCall(server!.url, key, method, path, body);
      return { keys, call };
    }

    const v1 = { type: 'object', properties: { amount: { type: 'number' } } };
    const v2 = { type: 'object', properties: { amount: { type: 'number', maximum: 969 } } };
    /** Events whose amount is i: under v2, those with i ≥ 970 fail. */
    const events = (from: number, n: number, prefix: string) =>
      Array.from({ length: n }, (_, i) => ({ type: 'checkout', key: `user-${from + i}`, idempotency_key: `${prefix}-${from + i}`, properties: { amount: (from + i) % 1000 } }));

    it('rollout.schema-version-rejecting-3-percent-shows-exactly-that-in-shadow-and-rejects-nothing-until-it-ramps', async () => {
      const { keys, call } = await up();
      expect((await call(keys.adminKey, 'PUT', '/v1/schemas/checkout', { schema: v1, owner: 'payments' })).status).toBe(201);
      // The rollout of version 2 is created before version 2 is published: ingest never enforces it on its own.
      const created = await call(keys.adminKey, 'POST', '/v1/rollouts', {
        change: { schema: { type: 'checkout', version: 2 } },
        steps: [{ shadow: { sample: 1, duration: '1h' } }, { ramp: { percents: [100], step_duration: '1h' } }],
        guardrails: { dead_letter_rate: 0.5, min_events: 100 },
        auto: false,
      });
      expect(created.status).toBe(201);
      const id = created.body!.id as string;
      const pub = await call(keys.adminKey, 'PUT', '/v1/schemas/checkout', { schema: v2, force: true, reason: 'amounts above 969 are refunds, sent as another type' });
      expect(pub.status).toBe(201);

      // 1000 events, 30 of which fail version 2: all accepted, all stored, none dead-lettered.
      const sent = await call(keys.writeKey, 'POST', '/v1/events', events(0, 1000, 'a'));
      expect(sent.status).toBe(202);
      const count = async () => (await call(keys.readKey, 'POST', '/v1/query', { interval: null, from: '-1h', source: 'raw' })).body?.rows[0]?.[0];
      expect(await poll(count, (n) => n === 1000)).toBe(1000);
      const diff = await poll(
        () => call(keys.adminKey, 'GET', `/v1/rollouts/${id}/diff?limit=5`),
        (r) => r.body?.compared === 1000,
      );
      expect(diff.body).toMatchObject({ compared: 1000, identical: 970, changed: 0, dropped: 0, dead_lettered: 30, rates: { dead_lettered: 0.03, diff: 0.03 } });
      expect(diff.body!.samples).toHaveLength(5);
      for (const s of diff.body!.samples) {
        expect(s).toMatchObject({ kind: 'dead_lettered', active: { stored: { type: 'checkout', ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/) } }, candidate: { dead_letter: { reason: 'schema_violation' } } });
        expect(s.active.stored.properties.amount).toBeGreaterThanOrEqual(970);
      }
      expect((await call(keys.adminKey, 'GET', '/v1/dlq')).body!.entries).toEqual([]);

      // Enforcement ramps to every key: now, and only now, the failing events are dead-lettered.
      expect((await call(keys.adminKey, 'POST', `/v1/rollouts/${id}/advance`)).body).toMatchObject({ state: 'ramp', share: 100 });
      // The workers take the new share at the controller's next pass, which then reports it
      // (a fixed wait was too short on a loaded machine).
      const shareOf = () => rolloutShare(server!.url, id);
      expect(await poll(shareOf, (s) => s === '100')).toBe('100');
      expect((await call(keys.writeKey, 'POST', '/v1/events', events(2000, 1000, 'b'))).status).toBe(202);
      expect(await poll(count, (n) => n === 1970)).toBe(1970);
      const dlq = await poll(
        () => call(keys.adminKey, 'GET', '/v1/dlq?limit=100'),
        (r) => r.body?.entries.length === 30,
      );
      expect(dlq.body!.entries.map((e: { reason: string }) => e.reason)).toEqual(Array(30).fill('schema_violation'));
      expect(await rolloutShare(server!.url, id)).toBe('100');
      // The CLI shows the same rollout, each decision with its actor and reason (compare goes on during the ramp: both batches); and promotes it.
      // The shadow compares the second batch too, in its own consumer group: wait until it has.
      await poll(
        () => call(keys.adminKey, 'GET', `/v1/rollouts/${id}/diff?limit=1`),
        (r) => r.body?.compared === 2000,
      );
      const sluice = (...args: string[]) => spawnSync(process.execPath, [CLI, 'rollout', ...args, '--url', server!.url, '--key', keys.adminKey], { encoding: 'utf8', timeout: 30_000 });
      const shown = sluice('show', id);
      expect(shown.status).toBe(0);
      expect(shown.stdout).toMatch(new RegExp(`^${id}  ramp +100%  schema checkout v2`));
      expect(shown.stdout).toMatch(/advance +shadow 0% +by \w+: advanced by/);
      expect(sluice('diff', id, '--limit', '1').stdout).toMatch(/^compared 2000: identical 1940, changed 0, dropped 0, dead-lettered 60 \(diff rate 0\.03\)\n  \{"kind":"dead_lettered"/);
      expect(sluice('promote', id).stdout).toMatch(new RegExp(`^${id}  promoted +100%`));
      // (Operator-wide rollouts, --global, are on the catalog: test/e2e/rollouts.operator-wide.test.ts.)
    });

    it('rollout.a-guardrail-breach-during-the-ramp-rolls-back-by-itself-and-enforcement-stops', async () => {
      const { keys, call } = await up();
      expect((await call(keys.adminKey, 'PUT', '/v1/schemas/checkout', { schema: v1, owner: 'payments' })).status).toBe(201);
      const created = await call(keys.adminKey, 'POST', '/v1/rollouts', {
        change: { schema: { type: 'checkout', version: 2 } },
        steps: [{ ramp: { percents: [50, 100], step_duration: '1h' } }],
        guardrails: { dead_letter_rate: 0.01, min_events: 200 },
        auto: true,
      });
      const id = created.body!.id as string;
      expect((await call(keys.adminKey, 'PUT', '/v1/schemas/checkout', { schema: v2, force: true, reason: 'refunds move' })).status).toBe(201);
      await new Promise((r) => setTimeout(r, 2_500));
      // 3% of all events fail version 2: the cohort (half the keys) dead-letters about 3%, the baseline 0%.
      const breachedAt = Date.now();
      for (const from of [0, 1000]) expect((await call(keys.writeKey, 'POST', '/v1/events', events(from, 1000, 'a'))).status).toBe(202);
      const r = await poll(
        () => call(keys.adminKey, 'GET', `/v1/rollouts/${id}`),
        (x) => x.body?.state === 'rolled_back',
      );
      expect(r.body).toMatchObject({ state: 'rolled_back', share: 0, repair: { status: 'pending' } });
      const d = r.body!.decisions.at(-1);
      expect(d).toMatchObject({ verdict: 'roll_back', step: 'ramp', share: 50, actor: 'controller' });
      const check = d.checks.find((c: { guardrail: string }) => c.guardrail === 'dead_letter_rate');
      expect(check.breached).toBe(true);
      expect(check.baseline).toBe(0);
      expect(check.cohort).toBeGreaterThan(0.01);
      expect(check.cohort_events + check.baseline_events).toBeLessThanOrEqual(2000);
      // Seconds, not minutes: one evaluation interval after the tallies land.
      expect(Date.parse(d.at) - breachedAt).toBeLessThan(15_000);
      const audit = await call(keys.adminKey, 'GET', `/v1/audit?subject=${id}`);
      expect(JSON.stringify(audit.body)).toContain('rollout.roll_back');
      // Repair: what the candidate dead-lettered while live is re-derived with the active version from its dead letters, exactly once.
      const fixed = await poll(
        () => call(keys.adminKey, 'GET', `/v1/rollouts/${id}`),
        (x) => x.body?.repair?.status === 'done',
      );
      const repairedCount = fixed.body!.repair.repaired as number;
      expect(repairedCount).toBeGreaterThan(0);
      expect(fixed.body!.repair).toMatchObject({ status: 'done', past_retention: 0 });
      expect(fixed.body!.decisions.at(-1)).toMatchObject({ verdict: 'repair', actor: 'controller' });
      // The dead-letter groups the repair emptied are resolved, as an operator's replay resolves them.
      const groups = (await call(keys.adminKey, 'GET', '/v1/dlq/groups?status=replayed')).body!.groups as { status: string; history: { actor: string }[] }[];
      expect(groups.length).toBeGreaterThan(0);
      for (const g of groups) expect(g).toMatchObject({ status: 'resolved', history: [expect.objectContaining({ actor: expect.stringMatching(/^rollout .* repair$/) })] });
      // After the rollback, version 2 is enforced nowhere: new failing events are stored, and
      // the schema's listing says which version is (the newest is 2, the enforced 1).
      expect((await call(keys.adminKey, 'GET', '/v1/schemas/checkout')).body).toMatchObject({ version: 2, enforced_version: 1 });
      expect((await call(keys.adminKey, 'GET', '/v1/schemas')).body!.schemas).toEqual([expect.objectContaining({ type: 'checkout', version: 2, enforced_version: 1 })]);
      const listed = spawnSync(process.execPath, [CLI, 'schema', 'list', '--url', server!.url, '--key', keys.adminKey], { encoding: 'utf8', timeout: 30_000 });
      expect(listed.stdout).toMatch(/^checkout +v2 .*\(enforced: v1; v2 is under a rollout, or its rollout was rolled back or aborted: sluice rollout list\)$/m);
      // A version published directly is enforced at once, so it is judged against the enforced
      // version 1, not the rolled-back 2: publishing 2's schema again is refused as incompatible.
      const again = await call(keys.adminKey, 'PUT', '/v1/schemas/checkout', { schema: v2 });
      expect(again.status, JSON.stringify(again.body)).toBe(409);
      expect(again.body!.message).toMatch(/version 3 of "checkout" would reject events that version 1 \(the one enforced; 2 is held by a rollout\) accepts/);
      const dry = await call(keys.adminKey, 'PUT', '/v1/schemas/checkout', { schema: v1, dry_run: true });
      expect(dry.body).toMatchObject({ version: 3, compared_with: 1, compatible: true, diff: [] });
      expect((await call(keys.writeKey, 'POST', '/v1/events', events(5000, 1000, 'c'))).status).toBe(202);
      const count = async () => (await call(keys.readKey, 'POST', '/v1/query', { interval: null, from: '-1h', source: 'raw' })).body?.rows[0]?.[0];
      // 0 lost, 0 doubled: every event stored once, the repaired ones with their own keys.
      expect(await poll(count, (n) => n === 3000)).toBe(3000);
      const keysStored = await call(keys.readKey, 'POST', '/v1/query', { interval: null, from: '-1h', source: 'raw', measures: ['uniq:key'] });
      expect(keysStored.body!.rows[0][0]).toBe(3000);
      expect((await call(keys.adminKey, 'GET', '/v1/dlq?limit=1000')).body!.entries.filter((e: { status: string }) => e.status === 'open')).toEqual([]);
    });
  });
}
