import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshnessMs, quantile, steadyIngest } from '../helpers/neighbour.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Tenant alpha declares as many views as it may (query.viewsPerTenant), each of the costliest
 * kind allowed (five group-by dimensions; distinct counts and percentiles, which are sketches),
 * over events it keeps sending, while tenant beta sends steady traffic. Beta's ingest p99
 * stays within 2x of the same run before alpha's views, nothing of beta is refused or
 * dead-lettered, and /readyz says what the store's health says.
 *
 * Beta's freshness stays under a second (or within 2x of the run before alpha's views). It did
 * not while every commit maintained each of alpha's views in its transaction: 1.1-1.5 s against
 * 30-70 ms without them on an idle machine, 12.5 s with other tests beside it. The embedded
 * store now folds views between commits, one step of about 50 ms at a time
 * (src/backends/duckdb/view-folds.ts), and a build's swap takes in the built table: 80-340 ms
 * alone, 170-850 ms beside another heavy test file; 130-310 ms against 36-54 ms quiet (2.8-8.1x)
 * in four runs on an idle machine. Not DuckDB's checkpoints: with them held off for the whole
 * run (a 4 GiB threshold) it was 130-270 ms (3.7-6.9x). A trace of the writer showed beta's
 * commits each waiting 80-390 ms behind a fold step: fold steps now give way to commits
 * (view-folds.ts), and it is 96-109 ms against 40-56 ms (1.80x, 2.40x, 2.32x in three runs on an
 * idle machine). What remains: commits that carry alpha's rows into `view_pending` take about
 * twice as long (95 ms against 40), beside the builds' chunks on the same two cores; every fifth
 * turn a fold step runs whatever waits; and DuckDB's checkpoints in a commit (one of 499 ms).
 * Later, in a clean-clone CI, 5.25x (546 ms against 104): the builds' chunks, up to 200,000
 * events each, took both cores for their length. Chunks now aim at 100 ms (ops/backfill.ts
 * CHUNK_MS): 2.16x and 2.58x in two runs beside another process's load (5.14x and 16.95x before).
 *
 * Memory: while the view tables had a PRIMARY KEY, its ART index (held in memory by DuckDB)
 * reached 449 MiB of the store's 512 MiB with 9 of the 20 views built, and on a slower machine
 * beta's reads failed out of memory. View tables now have no key (maintained by MERGE,
 * src/backends/duckdb/query-sql.ts viewTableDdl): ART 4-5 MiB, 19 of 20 built in the same time.
 */
const VIEWS = 20;
let p: Pipeline;
let alphaKey: string;
let betaKey: string;
let betaReadKey: string;

/** Alpha's traffic: batches of events with properties its views group by and measure. */
async function alphaTraffic(prefix: string, until: () => boolean): Promise<number> {
  let b = 0;
  for (; !until(); b++) {
    const ts = new Date().toISOString();
    const events = Array.from({ length: 200 }, (_, i) => ({
      type: 'order',
      key: `u${(b * 200 + i) % 5_000}`,
      idempotency_key: `${prefix}-${b}-${i}`,
      ts,
      properties: { amount: (b * 7 + i) % 997, country: `c${i % 50}`, path: `/p/${(b + i) % 300}`, plan: `plan${i % 7}`, device: `d${i % 13}`, note: `${prefix}${b}x${i}` },
    }));
    const res = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${alphaKey}` }, payload: events });
    expect(res.statusCode).toBe(202);
    await new Promise((r) => setTimeout(r, 20));
  }
  return b * 200;
}

/** Beta's queries, one after another until `until`: a count by path over the last hour, timed (ms). */
async function betaQueries(until: () => boolean): Promise<number[]> {
  const ms: number[] = [];
  while (!until()) {
    const now = Date.now();
    const t0 = performance.now();
    const res = await p.app.inject({
      method: 'POST',
      url: '/v1/query',
      headers: { authorization: `Bearer ${betaReadKey}` },
      payload: { event: 'page', from: new Date(now - 3_600_000).toISOString(), to: new Date(now + 60_000).toISOString(), interval: null, group_by: ['properties.path'], measures: ['count'] },
    });
    ms.push(performance.now() - t0);
    expect(res.statusCode, res.body).toBe(200);
  }
  return ms;
}

/** Beta's steady run beside alpha's traffic: ingest times, freshness of its events, and its query times meanwhile. */
async function betaRun(prefix: string): Promise<{ ingestP99: number; freshP99: number; queryP95: number; statuses: Map<number, number> }> {
  let done = false;
  const alpha = alphaTraffic(`a-${prefix}`, () => done);
  const queries = betaQueries(() => done);
  const steady = await steadyIngest(p, betaKey, prefix, 60, 20);
  done = true;
  await alpha;
  const queryMs = await queries;
  const fresh = await freshnessMs(p, 'beta', prefix, 60 * 20, 120_000);
  return { ingestP99: quantile(steady.ingestMs, 0.99), freshP99: quantile(fresh, 0.99), queryP95: quantile(queryMs, 0.95), statuses: steady.statuses };
}

beforeAll(async () => {
  p = await startPipeline({ query: { viewsPerTenant: VIEWS } });
  alphaKey = p.tenant.writeKey;
  const beta = await p.catalog.createTenant('beta');
  betaKey = beta.writeKey;
  betaReadKey = beta.readKey;
  // Alpha's past, for its views' builds to read.
  let n = 0;
  await alphaTraffic('a-past', () => (n += 1) > 200);
}, 120_000);
afterAll(async () => {
  await p?.close();
});

describe("one tenant's views do not stall another's commits", () => {
  it('views.tenant-b-ingest-and-freshness-hold-while-tenant-a-declares-its-costliest-views', async () => {
    const quiet = await betaRun('quiet');

    const measures = ['count', 'uniq:key', 'uniq:properties.note', 'uniq:properties.path', 'p50:amount', 'p95:amount', 'p99:amount', 'p99.9:amount', 'sum:amount', 'avg:amount'];
    const dims = ['properties.country', 'properties.path', 'properties.plan', 'properties.device', 'key'];
    for (let i = 0; i < VIEWS; i++) {
      const res = await p.app.inject({
        method: 'PUT',
        url: `/v1/views/costly_${i}`,
        headers: { authorization: `Bearer ${p.tenant.adminKey}` },
        payload: { event: 'order', dimensions: [...dims.slice(i % 5), ...dims.slice(0, i % 5)], measures: [...measures.slice(i % 10), ...measures.slice(0, i % 10)], grain: i % 2 ? '1m' : '1h' },
      });
      expect(res.statusCode, res.body).toBe(201);
    }
    const more = await p.app.inject({ method: 'PUT', url: '/v1/views/one_more', headers: { authorization: `Bearer ${p.tenant.adminKey}` }, payload: { event: 'order', measures: ['count'] } });
    expect(more.statusCode).toBe(409);

    const loud = await betaRun('loud');
    const ready = await p.app.inject({ method: 'GET', url: '/readyz' });
    const health = await p.store.health();
    const built = (await p.store.views.list(p.tenant.tenant)).filter((v) => v.status === 'ready').length;
    console.info(
      `beta beside alpha's ${VIEWS} views (${built} built by the end): ingest p99 ${loud.ingestP99.toFixed(1)} ms against ${quiet.ingestP99.toFixed(1)} ms without (${(loud.ingestP99 / quiet.ingestP99).toFixed(2)}x); freshness p99 ${loud.freshP99.toFixed(0)} ms against ${quiet.freshP99.toFixed(0)} ms (${(loud.freshP99 / quiet.freshP99).toFixed(2)}x); query p95 ${loud.queryP95.toFixed(1)} ms against ${quiet.queryP95.toFixed(1)} ms (${(loud.queryP95 / quiet.queryP95).toFixed(2)}x)`,
    );
    expect([...quiet.statuses, ...loud.statuses].filter(([s]) => s !== 202)).toEqual([]);
    expect(await p.catalog.deadLetters.counts('beta')).toEqual({});
    expect(ready.statusCode === 200).toBe(health.ok); // readiness tells the store's truth
    // Within 2x, with a floor of 100 ms: A's view builds take CPU from the same two cores, and a
    // quiet p99 of 25 ms doubles with any other work on the machine (2.38x in one run beside a build).
    expect(loud.ingestP99).toBeLessThanOrEqual(2 * Math.max(quiet.ingestP99, 100));
    expect(loud.freshP99, `beta's freshness p99: ${loud.freshP99} ms beside alpha's views, ${quiet.freshP99} ms before`).toBeLessThan(Math.max(2 * quiet.freshP99, 1_000));
    expect(loud.queryP95, `beta's query p95: ${loud.queryP95} ms beside alpha's views, ${quiet.queryP95} ms before`).toBeLessThan(Math.max(2 * quiet.queryP95, 1_000));
    // Alpha's views fall behind on their own time, and catch up: nothing stays pending.
    await until(async () => p.store.pendingViewRows === 0, 120_000);
    // …and every view is built in the end (the builds are not stranded behind one another).
    // How long is the machine's: twenty builds of the costliest views, one at a time, took over
    // 120 s beside the suite's other files in one clean-clone run (and under it in the next).
    await until(async () => (await p.store.views.list(p.tenant.tenant)).filter((v) => v.status === 'ready').length === VIEWS, 300_000);
  }, 540_000);
});
