import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { batchBodies, eventsFor, percentile, post, postEvents, queriedTotal, type LoadResult } from './load.js';
import { freePort, keysFrom, startSluice, type Child } from './proc.js';

/**
 * Rollouts: what a shadow at sample 1.0 costs the live pipeline, and how fast a breach rolls back.
 *
 * - Live end-to-end throughput (sent → queryable, at full speed) and freshness p99 (a steady
 *   producer at `rate` ev/s, each batch timed from its send to the first poll that counts
 *   it), with a schema rollout in shadow at sample 1.0 (every event run twice more and
 *   diffed), beside the same load and schemas without a rollout; and with a candidate pipeline version
 *   in shadow beside the same live pipeline without a rollout; two runs of each, alternating.
 * - The time from a guardrail breach to share 0: a rollout at 50% whose candidate
 *   dead-letters 5% of the cohort; from the send of the batch that breaches to the first
 *   poll that sees the rollout rolled back.
 */
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function call(c: Child, key: string, method: string, p: string, body?: unknown): Promise<any> {
  const r = await fetch(new URL(p, c.url), { method, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A schema rollout of page_view (half of the bench's events) from v1 to v2, v2 a no-op or rejecting amounts ≥ `max`. */
async function rollout(c: Child, admin: string, steps: unknown[], guardrails: unknown, max?: number): Promise<string> {
  await call(c, admin, 'PUT', '/v1/schemas/page_view', { schema: { type: 'object' }, owner: 'bench' });
  const r = await call(c, admin, 'POST', '/v1/rollouts', { change: { schema: { type: 'page_view', version: 2 } }, steps, guardrails, auto: true });
  const v2 = { type: 'object', properties: { amount: { type: 'number', ...(max === undefined ? {} : { maximum: max }) } } };
  await call(c, admin, 'PUT', '/v1/schemas/page_view', { schema: v2, force: true, reason: 'bench' });
  // The controller's next pass starts the shadow group and takes the routes.
  await sleep(2_500);
  return r.id as string;
}

/** The live pipeline of the pipeline runs, and the candidate: the same steps and one more (it removes a context field). */
const LIVE_STEPS = [{ cast: { field: 'properties.amount', to: 'number' } }, { set: { field: 'properties.amount_cents', value: 'int(properties.amount * 100.0)' } }];
const CANDIDATE_STEPS = [...LIVE_STEPS, { remove: { fields: ['context.locale'] } }];

/**
 * What runs beside the live load: nothing; a schema version's enforcement in shadow; a live
 * transform pipeline alone (the baseline of the next); the same with a candidate pipeline
 * version in shadow.
 */
export type RolloutMode = 'schema-live' | 'schema' | 'pipeline-live' | 'pipeline';

async function setUp(c: Child, admin: string, mode: RolloutMode): Promise<string | null> {
  if (mode === 'schema') return rollout(c, admin, [{ shadow: { sample: 1, duration: '1h' } }], { min_events: 1000 });
  if (mode === 'schema-live') {
    // The same schemas published, without a rollout: what the store does for a declared property (typed columns) is in both runs.
    await call(c, admin, 'PUT', '/v1/schemas/page_view', { schema: { type: 'object' }, owner: 'bench' });
    await call(c, admin, 'PUT', '/v1/schemas/page_view', { schema: { type: 'object', properties: { amount: { type: 'number' } } }, force: true, reason: 'bench' });
    await sleep(2_500);
    return null;
  }
  await call(c, admin, 'PUT', '/v1/pipeline', { steps: LIVE_STEPS });
  // A view of what the steps derive, in both runs: the shadow compares it bucket by bucket.
  await call(c, admin, 'PUT', '/v1/views/cents_by_path', { event: 'page_view', filters: [], dimensions: ['properties.path'], measures: ['count', 'sum:amount_cents', 'max:amount_cents'], grain: '1m' });
  if (mode === 'pipeline-live') return null;
  const v = await call(c, admin, 'POST', '/v1/pipeline/versions', { steps: CANDIDATE_STEPS });
  const r = await call(c, admin, 'POST', '/v1/rollouts', { change: { pipeline_version: v.version }, steps: [{ shadow: { sample: 1, duration: '1h' } }], guardrails: { min_events: 1000 }, auto: true });
  await sleep(2_500);
  return r.id as string;
}

async function liveRun(dir: string, mode: RolloutMode, events: number, batch: number, concurrency: number, rate: number, seconds: number) {
  const c = await startSluice(dir, await freePort());
  try {
    const keys = keysFrom(c.stdout);
    const id = await setUp(c, keys.adminKey, mode);
    const bodies = batchBodies(`rollout-${mode}-${Date.now()}`, events, batch);
    const start = performance.now();
    const ingest: LoadResult = await post(c.url, keys.writeKey, bodies, (i) => Math.min(batch, events - i * batch), concurrency);
    while ((await queriedTotal(c.url, keys.readKey)) < events) await sleep(100);
    const e2e = events / ((performance.now() - start) / 1000);
    // Freshness: a steady producer, batches of 100.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const sentAt: { total: number; at: number }[] = [];
    const freshness: number[] = [];
    let sent = 0;
    const end = Date.now() + seconds * 1000;
    const producer = (async () => {
      const every = (100 / rate) * 1000;
      for (let next = Date.now(); Date.now() < end; next += every) {
        const body = '[' + eventsFor(`steady-${mode}`, sent, 100).join(',') + ']';
        const r = await postEvents(c.url, keys.writeKey, body, agent);
        if (r.status !== 202) throw new Error(`steady producer refused: ${r.status}`);
        sent += 100;
        sentAt.push({ total: events + sent, at: Date.now() });
        await sleep(Math.max(0, next + every - Date.now()));
      }
    })();
    const poller = (async () => {
      let seen = 0;
      while (Date.now() < end + 30_000 && (Date.now() < end || seen < sentAt.length)) {
        await sleep(50);
        const n = await queriedTotal(c.url, keys.readKey);
        const now = Date.now();
        while (seen < sentAt.length && sentAt[seen]!.total <= n) freshness.push((now - sentAt[seen++]!.at) / 1000);
      }
    })();
    await Promise.all([producer, poller]);
    agent.destroy();
    const diff = id ? await call(c, keys.adminKey, 'GET', `/v1/rollouts/${id}/diff?limit=0`) : null;
    const compared = (diff?.compared as number | undefined) ?? 0;
    // Cells of the views compared (view, bucket and group), per batch: see rollout/view-diff.ts.
    const buckets = ((diff?.views ?? []) as { buckets_compared: number }[]).reduce((n, v) => n + v.buckets_compared, 0);
    return { ingest: ingest.eventsPerSecond, e2e, freshnessP99: percentile(freshness, 0.99), compared, buckets, total: events + sent };
  } finally {
    await c.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The pipeline version of the breach: the live steps, and amounts of 95 and above (5% of
 * events) dead-lettered.
 */
async function pipelineBreach(c: Child, admin: string): Promise<string> {
  await call(c, admin, 'PUT', '/v1/pipeline', { steps: LIVE_STEPS });
  const v = await call(c, admin, 'POST', '/v1/pipeline/versions', { steps: [...LIVE_STEPS, { dead_letter: { when: 'properties.amount >= 95.0', reason: 'bench' } }] });
  const r = await call(c, admin, 'POST', '/v1/rollouts', { change: { pipeline_version: v.version }, steps: [{ ramp: { percents: [50, 100], step_duration: '1h' } }], guardrails: { dead_letter_rate: 0.01, min_events: 500 }, auto: true });
  await sleep(2_500);
  return r.id as string;
}

/**
 * From the send of the breaching events to share 0 (a schema version's enforcement, or a
 * pipeline version); for a pipeline version also to its repair done, with how many events
 * it re-derived.
 */
async function breachToZero(dir: string, change: 'schema' | 'pipeline'): Promise<{ ms: number; decisionMs: number; state: string; repairMs: number | null; repaired: number | null }> {
  const c = await startSluice(dir, await freePort());
  try {
    const keys = keysFrom(c.stdout);
    // amount = (n % 10000) / 100: amounts ≥ 95 are 5% of events.
    const id =
      change === 'schema'
        ? await rollout(c, keys.adminKey, [{ ramp: { percents: [50, 100], step_duration: '1h' } }], { dead_letter_rate: 0.01, min_events: 500 }, 94.99)
        : await pipelineBreach(c, keys.adminKey);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    // 10,000 events (half of them page_views, 5% of those with amount ≥ 95), in batches of 1,000.
    const bodies = Array.from({ length: 10 }, (_, i) => '[' + eventsFor('breach', i * 1000, 1000).join(',') + ']');
    const t0 = Date.now();
    for (const b of bodies) await postEvents(c.url, keys.writeKey, b, agent);
    agent.destroy();
    let r: any;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(20)) {
      r = await call(c, keys.adminKey, 'GET', `/v1/rollouts/${id}`);
      if (r.share === 0) break;
    }
    const seen = Date.now();
    const decided = Date.parse(r.decisions.find((d: { verdict: string }) => d.verdict === 'roll_back')?.at ?? r.decisions.at(-1).at);
    let repairMs: number | null = null;
    let repaired: number | null = null;
    if (change === 'pipeline') {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline && r.repair?.status !== 'done'; await sleep(20)) r = await call(c, keys.adminKey, 'GET', `/v1/rollouts/${id}`);
      repairMs = r.repair?.status === 'done' ? Date.now() - t0 : null;
      repaired = r.repair?.repaired ?? null;
    }
    return { ms: seen - t0, decisionMs: decided - t0, state: r.state as string, repairMs, repaired };
  } finally {
    await c.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const SAYS: Record<RolloutMode, string> = {
  'schema-live': 'with schema versions published, without a rollout',
  schema: 'with a schema version in shadow at sample 1.0',
  'pipeline-live': 'through a live transform pipeline, without a rollout',
  pipeline: 'through a live transform pipeline, with a candidate version in shadow at sample 1.0',
};

export async function rolloutBench(work: string, events: number, batch: number, concurrency: number, say: (s: string) => void) {
  const rate = 5_000;
  const seconds = 10;
  const runs: { mode: RolloutMode; r: Awaited<ReturnType<typeof liveRun>> }[] = [];
  const order: RolloutMode[] = ['schema-live', 'schema', 'pipeline-live', 'pipeline'];
  for (const mode of [...order, ...order]) {
    say(`rollout: live load ${SAYS[mode]} (${events} events at full speed, then ${rate} ev/s for ${seconds} s)`);
    runs.push({ mode, r: await liveRun(path.join(work, `rollout-${runs.length}`), mode, events, batch, concurrency, rate, seconds) });
  }
  const mean = (mode: RolloutMode, f: (r: Awaited<ReturnType<typeof liveRun>>) => number) => {
    const xs = runs.filter((x) => x.mode === mode).map((x) => f(x.r));
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const of = (mode: RolloutMode) => ({ e2e: mean(mode, (r) => r.e2e), ingest: mean(mode, (r) => r.ingest), freshnessP99: mean(mode, (r) => r.freshnessP99), compared: mean(mode, (r) => r.compared), buckets: mean(mode, (r) => r.buckets), total: mean(mode, (r) => r.total) });
  say('rollout: time from a guardrail breach to share 0 (a schema version, then a pipeline version and its repair)');
  const breach = await breachToZero(path.join(work, 'rollout-breach'), 'schema');
  const pipelineBreach = await breachToZero(path.join(work, 'rollout-breach-pipeline'), 'pipeline');
  return { without: of('schema-live'), shadow: of('schema'), pipelineLive: of('pipeline-live'), pipelineShadow: of('pipeline'), breach, pipelineBreach };
}
