import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { apiCall } from '../helpers/api.js';
import { CLI, freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { poll } from '../helpers/poll.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Operator-wide rollouts on a real `sluice up` (embedded engines), driven as an operator
 * drives them: `sluice pipeline … --global` and `sluice rollout … --global` on the catalog
 * while the server runs.
 */
let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
});

interface Keys {
  writeKey: string;
  readKey: string;
  adminKey: string;
}

/**
 * `sluice up` on a new data directory, and the CLI on that directory while it runs: `sluice`
 * answers a command's output (and throws when it fails), `json` its `--json` answer parsed.
 * `first` holds the keys of the tenant `up` made.
 */
async function up() {
  const dir = tmpDir();
  server = await startServer(dir, await freePort());
  const sluice = (...args: string[]): string => {
    const r = spawnSync(process.execPath, [CLI, ...args, '--data-dir', dir], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`sluice ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return r.stdout;
  };
  const json = (...args: string[]) => JSON.parse(sluice(...args, '--json'));
  const first: Keys = keysFrom(server.stdout);
  return { dir, url: server.url, first, sluice, json };
}

it('rollout.global-an-operator-pipeline-removing-context-ip-goes-to-a-named-tenant-then-a-share-of-tenants-then-promotes-and-a-bad-one-rolls-back', async () => {
  const { dir, url, first, sluice, json } = await up();
  const write = (name: string, doc: unknown) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, JSON.stringify(doc));
    return file;
  };

  // Three tenants: the first one `up` made, acme and globex.
  const tenants: Record<string, Keys> = { first };
  for (const name of ['acme', 'globex']) {
    const t = json('tenant', 'create', name);
    tenants[name] = { writeKey: t.write_key, readKey: t.read_key, adminKey: t.admin_key };
  }
  let n = 0;
  const sent: Record<string, number> = { first: 0, acme: 0, globex: 0 };
  /** The sum of the amounts sent to each tenant. */
  let amounts = 0;
  /** `count` events for each tenant, each with an address in context.ip and an amount of i mod 100. */
  const send = async (count: number, prefix = 'e') => {
    for (const [name, k] of Object.entries(tenants)) {
      const batch = Array.from({ length: count }, (_, i) => ({ type: 'checkout', key: `${prefix}-${n + i}`, idempotency_key: `${name}-${prefix}-${n + i}`, properties: { amount: (n + i) % 100 }, context: { ip: '203.0.113.7' } }));
      expect((await apiCall(url, k.writeKey, 'POST', '/v1/events', batch)).status).toBe(202);
      sent[name]! += count;
    }
    for (let i = 0; i < count; i++) amounts += (n + i) % 100;
    n += count;
  };
  /** Every stored event of a tenant (GET /v1/events, page by page). */
  const stored = async (tenant: string) => {
    const out: { key: string; operator_version: number; properties: { amount: number } }[] = [];
    let cursor: string | null = null;
    do {
      const page = await apiCall(url, tenants[tenant]!.readKey, 'GET', `/v1/events?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      out.push(...page.body!.events);
      cursor = page.body!.next_cursor;
    } while (cursor);
    return out;
  };
  /** Whether the stored event of `tenant` with this key still has context.ip (waits until it is stored). */
  const hasIp = async (tenant: string, key: string): Promise<boolean> => {
    const r = await poll(
      () => apiCall(url, tenants[tenant]!.readKey, 'GET', `/v1/events?key=${encodeURIComponent(key)}`),
      (x) => x.body?.events?.length === 1,
    );
    expect(r.body!.events).toHaveLength(1);
    return 'ip' in r.body!.events[0].context;
  };
  const probe = async (label: string) => {
    await send(1, label);
    const key = `${label}-${n - 1}`;
    return Object.fromEntries(await Promise.all(Object.keys(tenants).map(async (t) => [t, await hasIp(t, key)] as const)));
  };
  const show = (id: string) => json('rollout', 'show', id, '--global');

  // The operator pipeline: version 1 removes context.ip, stored without being made live.
  expect(sluice('pipeline', 'push', write('op-v1.json', { steps: [{ remove: { fields: ['context.ip'] } }] }), '--global', '--no-activate')).toContain('stored: operator pipeline version 1 (1 steps), not live');
  expect(json('pipeline', 'versions', '--global').versions).toMatchObject([{ version: 1, live: false, step_count: 1 }]);
  // As a table, with the tenant pipeline's header and columns.
  expect(sluice('pipeline', 'versions', '--global')).toMatch(/^VERSION\tLIVE\tSTEPS\tCREATED\tBY\n1\tno\t1\t/);
  // A tenant's admin key does not see it: its own pipeline is still empty.
  expect((await apiCall(url, tenants.acme!.adminKey, 'GET', '/v1/pipeline')).body).toMatchObject({ version: 0, steps: [] });
  expect(await probe('before')).toEqual({ first: true, acme: true, globex: true });

  // Named tenant first, then a ramp over a share of the tenants; each step waits for the operator (auto false).
  const good = json(
    'rollout',
    'create',
    write('rollout-good.json', {
      change: { operator_pipeline_version: 1 },
      steps: [{ shadow: { sample: 1, duration: '2s' } }, { cohort: { tenants: ['acme'], duration: '2s' } }, { ramp: { percents: [50, 100], step_duration: '2s' } }],
      guardrails: { dead_letter_rate: 0.01, drop_rate: 0.01, min_events: 20 },
      auto: false,
    }),
    '--global',
  );
  expect(good).toMatchObject({ scope: 'global', state: 'shadow', share: 0, tenants: [], change: { operator_pipeline_version: 1 } });
  // (Holding already when the machine is slow: the step is 2 s.)
  expect(sluice('rollout', 'list', '--global')).toMatch(new RegExp(`${good.id}  (shadow |holding) +0%  operator pipeline version 1`));
  // While it runs, no other operator version is made live behind its back.
  const refused = spawnSync(process.execPath, [CLI, 'pipeline', 'push', write('op-other.json', { steps: [] }), '--global', '--data-dir', dir], { encoding: 'utf8' });
  expect([refused.status, refused.stderr]).toEqual([1, expect.stringContaining(`rollout ${good.id} is taking an operator pipeline version live`)]);
  // A tenant's rollouts do not list the operator's.
  expect((await apiCall(url, tenants.acme!.adminKey, 'GET', '/v1/rollouts')).body).toEqual({ rollouts: [] });

  // Traffic while each step runs; when the step's time is up, the operator decides.
  const holding = async (step: string, share: number) => {
    return poll(
      async () => {
        await send(20);
        return show(good.id);
      },
      (r) => r.state === 'holding' && r.step === step && r.share === share,
    );
  };
  // Shadow: every tenant's events also go through the candidate on a copy, diffed per event; nothing live changes.
  // The step's 2 s can end before the shadow group (started by the first rollout) has compared
  // anything on a loaded machine: the operator looks at the diff once it has events.
  await holding('shadow', 0);
  const diff = await poll(
    async () => {
      await send(20);
      return json('rollout', 'diff', good.id, '--global', '--limit', '2');
    },
    (d) => d.compared > 0 && d.samples.length === 2,
  );
  expect(diff.compared).toBeGreaterThan(0);
  expect(diff).toMatchObject({ changed: diff.compared, identical: 0, dropped: 0, dead_lettered: 0, rates: { diff: 1 } });
  expect(diff.samples).toHaveLength(2);
  for (const s of diff.samples) expect(s).toMatchObject({ kind: 'changed', fields: ['context.ip'] });
  expect(await probe('shadow')).toEqual({ first: true, acme: true, globex: true });
  expect(json('rollout', 'advance', good.id, '--global')).toMatchObject({ state: 'cohort', share: 0, tenants: ['acme'] });
  expect(sluice('rollout', 'list', '--global')).toMatch(new RegExp(`${good.id}  (cohort |holding) +0% \\+ acme  operator pipeline version 1`));

  const atCohort = await holding('cohort', 0);
  expect(atCohort.hold_reason).toMatch(/waiting for an advance \(auto is false\): sluice rollout advance .*|too few events/);
  // Only acme's events go through the candidate.
  expect(await probe('cohort')).toEqual({ first: true, acme: false, globex: true });
  // The guardrails compared acme with the other tenants in the same minutes.
  const judged = atCohort.decisions.at(-1);
  expect(judged).toMatchObject({ verdict: 'hold', step: 'cohort', share: 0 });
  const dl = judged.checks.find((c: { guardrail: string }) => c.guardrail === 'dead_letter_rate');
  expect(dl).toMatchObject({ cohort: 0, baseline: 0, breached: false });
  expect(dl.cohort_events).toBeGreaterThan(0);
  // (Tallies are kept by minute: the shadow's, in the same minute, are part of these numbers too.)
  expect(dl.baseline_events).toBeGreaterThan(0);

  expect(json('rollout', 'advance', good.id, '--global')).toMatchObject({ state: 'ramp', share: 50, tenants: ['acme'] });
  await holding('ramp', 50);
  // acme stays in; at 100% every tenant is.
  expect((await probe('half')).acme).toBe(false);
  expect(json('rollout', 'advance', good.id, '--global')).toMatchObject({ state: 'ramp', share: 100 });
  await holding('ramp', 100);
  expect(await probe('all')).toEqual({ first: false, acme: false, globex: false });
  expect(json('rollout', 'advance', good.id, '--global')).toMatchObject({ state: 'promoted', share: 100 });
  // Promoted: version 1 is the operator's live version, for every tenant.
  expect(json('pipeline', 'versions', '--global').versions).toMatchObject([{ version: 1, live: true }]);
  expect(JSON.parse(sluice('pipeline', 'show', '--global'))).toEqual({ steps: [{ remove: { fields: ['context.ip'] } }] });
  await new Promise((r) => setTimeout(r, 12_000));
  expect(await probe('after')).toEqual({ first: false, acme: false, globex: false });
  const verdicts = show(good.id).decisions.map((d: { verdict: string }) => d.verdict);
  expect(verdicts.filter((v: string) => v !== 'hold')).toEqual(['start', 'advance', 'advance', 'advance', 'promote']);

  // Every event stored so far records the operator version that produced it: 0 before version 1 went live, then 1.
  const versions = new Set((await stored('acme')).map((e) => e.operator_version));
  expect([...versions].sort()).toEqual([0, 1]);
  // A view of acme's amounts, to show the repair leaves views as if the bad version had never run.
  expect((await apiCall(url, tenants.acme!.adminKey, 'PUT', '/v1/views/amounts', { event: 'checkout', dimensions: [], measures: ['count', 'sum:amount'], grain: '1m' })).status).toBe(201);
  await poll(() => apiCall(url, tenants.acme!.readKey, 'GET', '/v1/views/amounts'), (x) => x.body?.status === 'ready');

  // A bad version: it also dead-letters amounts of 90 and above (10% of events), and adds 1000 to the amount of those it
  // stores. Rolled out to acme first, it trips the guardrail.
  const bad = [{ remove: { fields: ['context.ip'] } }, { dead_letter: { when: 'properties.amount >= 90.0', reason: 'too_big' } }, { set: { field: 'properties.amount', value: 'properties.amount + 1000.0' } }];
  expect(sluice('pipeline', 'push', write('op-v2.json', { steps: bad }), '--global', '--no-activate')).toContain('stored: operator pipeline version 2');
  const badRollout = json(
    'rollout',
    'create',
    write('rollout-bad.json', {
      change: { operator_pipeline_version: 2 },
      steps: [{ cohort: { tenants: ['acme'], duration: '1h' } }, { ramp: { percents: [100], step_duration: '1h' } }],
      guardrails: { dead_letter_rate: 0.01, min_events: 100 },
    }),
    '--global',
  );
  const before = { ...sent };
  const rolled = await poll(
    async () => {
      await send(100, 'bad');
      return show(badRollout.id);
    },
    (r) => r.state === 'rolled_back' && r.repair?.status === 'done',
    60_000,
  );
  expect(rolled).toMatchObject({ state: 'rolled_back', share: 0, tenants: [] });
  const back = rolled.decisions.find((d: { verdict: string }) => d.verdict === 'roll_back');
  expect(back).toMatchObject({ step: 'cohort', actor: 'controller' });
  const check = back.checks.find((c: { guardrail: string }) => c.guardrail === 'dead_letter_rate');
  expect(check).toMatchObject({ breached: true, baseline: 0 });
  expect(check.cohort).toBeGreaterThan(0.05);
  // Rollback with repair: acme's events version 2 stored and those it dead-lettered were re-derived through the live version 1, with the same keys.
  const repair = rolled.decisions.at(-1);
  expect(repair).toMatchObject({ verdict: 'repair', actor: 'controller' });
  const [, storedByV2, deadByV2] = /^re-derived with the active operator version: (\d+) events operator pipeline version 2 stored, (\d+) it dead-lettered$/.exec(repair.reason) ?? [];
  expect(Number(storedByV2)).toBeGreaterThan(0);
  expect(Number(deadByV2)).toBeGreaterThan(0);
  expect(rolled.repair).toMatchObject({ repaired: Number(storedByV2) + Number(deadByV2), past_retention: 0 });
  expect(json('pipeline', 'versions', '--global').versions.map((v: { version: number; live: boolean }) => [v.version, v.live])).toEqual([
    [2, false],
    [1, true],
  ]);
  expect(sent.acme).toBeGreaterThan(before.acme!);
  // Every event of every tenant stored exactly once (0 lost, 0 doubled) with its own amount, and no dead letter left open.
  const query = (name: string, q: Record<string, unknown>) => apiCall(url, tenants[name]!.readKey, 'POST', '/v1/query', { interval: null, from: '-1h', ...q });
  for (const [name, k] of Object.entries(tenants)) {
    const q = await poll(
      () => query(name, { source: 'raw', measures: ['count', 'uniq:key', 'sum:amount'], group_by: [] }),
      (x) => x.body?.rows?.[0]?.[0] === sent[name],
    );
    expect([name, q.body!.rows[0]]).toEqual([name, [sent[name], sent[name], amounts]]);
    const dlq = (await apiCall(url, k.adminKey, 'GET', '/v1/dlq?limit=1000')).body!.entries.filter((e: { status: string }) => e.status === 'open');
    expect([name, dlq]).toEqual([name, []]);
    // No stored event is version 2's any more.
    const rows = await stored(name);
    expect([name, rows.length, rows.filter((e) => e.operator_version === 2 || e.properties.amount >= 1000).length]).toEqual([name, sent[name], 0]);
  }
  // acme's view, rebuilt over the repaired minutes, equals what version 1 alone gives.
  const fromView = await poll(
    () => query('acme', { event: 'checkout', measures: ['count', 'sum:amount'] }),
    (x) => x.body?.source === 'view:amounts' && x.body?.rows?.[0]?.[1] === amounts,
  );
  expect(fromView.body).toMatchObject({ source: 'view:amounts', rows: [[sent.acme, amounts]] });
}, 180_000);

it('rollout.global-the-enrichment-document-rolls-out-to-a-named-tenant-then-promoted-overrides-the-configuration', async () => {
  const { dir, url, first, json } = await up();
  const tenants: Record<string, Keys> = { first };
  const t = json('tenant', 'create', 'acme');
  tenants.acme = { writeKey: t.write_key, readKey: t.read_key, adminKey: t.admin_key };
  const ua = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
  let n = 0;
  /** One event per tenant with a user agent; whether each was stored with context.ua (the parsed agent). */
  const probe = async () => {
    const key = `p-${n++}`;
    const out: Record<string, boolean> = {};
    for (const k of Object.values(tenants)) {
      expect((await apiCall(url, k.writeKey, 'POST', '/v1/events', [{ type: 'page', key, context: { user_agent: ua } }])).status).toBe(202);
    }
    for (const [name, k] of Object.entries(tenants)) {
      const r = await poll(() => apiCall(url, k.readKey, 'GET', `/v1/events?key=${key}`), (x) => x.body?.events?.length === 1);
      out[name] = 'ua' in r.body!.events[0].context;
    }
    return out;
  };
  // The configuration parses user agents (enrich.userAgent, on by default).
  expect(await probe()).toEqual({ first: true, acme: true });
  const file = path.join(dir, 'enrich.json');
  fs.writeFileSync(file, JSON.stringify({ change: { enrich: { userAgent: false } }, steps: [{ cohort: { tenants: ['acme'], duration: '1h' } }], guardrails: { dead_letter_rate: 0.01, min_events: 10 } }));
  const r = json('rollout', 'create', file, '--global');
  expect(r).toMatchObject({ scope: 'global', state: 'cohort', tenants: ['acme'], change: { enrich: { userAgent: false } } });
  // The workers take the route at the controller's next pass: then only acme's events go without the parsed agent.
  expect(await poll(probe, (x) => !x.acme)).toEqual({ first: true, acme: false });
  expect(json('rollout', 'promote', r.id, '--global')).toMatchObject({ state: 'promoted', share: 100 });
  // Promoted: the catalog's document overrides the configuration for every tenant.
  expect(await poll(probe, (x) => !x.first)).toEqual({ first: false, acme: false });
  await new Promise((res) => setTimeout(res, 11_000));
  expect(await probe()).toEqual({ first: false, acme: false });
  // Rolled back (aborted): every tenant is on the live document again at once; nothing to re-derive.
  fs.writeFileSync(file, JSON.stringify({ change: { enrich: { userAgent: true } }, steps: [{ cohort: { tenants: ['acme'], duration: '1h' } }] }));
  const again = json('rollout', 'create', file, '--global');
  expect(await poll(probe, (x) => x.acme)).toEqual({ first: false, acme: true });
  expect(json('rollout', 'abort', again.id, '--global')).toMatchObject({ state: 'aborted', share: 0, tenants: [] });
  const repaired = await poll(() => json('rollout', 'show', again.id, '--global'), (x) => x.repair?.status === 'done');
  expect(repaired.decisions.at(-1)).toMatchObject({ verdict: 'repair', reason: expect.stringMatching(/^enrichment: every tenant is back on the live enrichment/) });
  expect(await poll(probe, (x) => !x.acme)).toEqual({ first: false, acme: false });
}, 120_000);
