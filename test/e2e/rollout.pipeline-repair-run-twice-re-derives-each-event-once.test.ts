import { afterEach, expect, it } from 'vitest';
import { processBatch } from '../../src/worker/pipeline.js';
import { startWorkers, WORKER_GROUP } from '../../src/worker/workers.js';
import { pipelineVersionStages } from '../../src/rollout/changes.js';
import { parseRolloutSpec } from '../../src/rollout/document.js';
import { abort, startRollout, type Rollout } from '../../src/rollout/machine.js';
import { finishPipelineRepair, planPipelineRepair } from '../../src/rollout/repair-pipeline.js';
import { compileTransform } from '../../src/transform/run.js';
import { entry } from '../helpers/entries.js';
import { repairDeps } from '../helpers/repair.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Rollback with repair of a pipeline version, on the embedded engines in this process: the
 * events version 2 stored are re-derived with version 1 from the log, and a repair that runs
 * again from its saved positions (as after a crash between its append and its save) changes
 * nothing more: each event is stored once, by version 1.
 */
let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

const N = 300;

/** Version 1 live, version 2 stored; N events appended, then stored by version 2 and acked (the candidate live for every key). */
async function storedByTheCandidate(pipeline: Pipeline): Promise<string> {
  const { log, store, catalog } = pipeline;
  const tenant = pipeline.tenant.tenant;
  const v1 = [{ set: { field: 'properties.v', value: '1' } }];
  const v2 = [{ set: { field: 'properties.v', value: '2' } }];
  await catalog.pipelines.put(tenant, { steps: v1, actor: 'test', audit: () => null });
  await catalog.pipelines.put(tenant, { steps: v2, actor: 'test', activate: false, audit: () => null });
  const partitions = log.capabilities.partitions;
  await log.append(Array.from({ length: N }, (_, i) => entry(tenant, i, partitions)));

  // The candidate, live for every key: the live group's records go through version 2 and are committed and acked.
  const candidate = pipelineVersionStages(2, compileTransform({ steps: v2 }), await catalog.pipelines.salt(tenant)).candidate;
  for (let partition = 0; partition < partitions; partition++) {
    const lease = (await log.acquire(WORKER_GROUP, partition, 'candidate', 10_000))!;
    const records = await log.read(lease, 10_000);
    if (records.length === 0) continue;
    const out = await processBatch(records, candidate, { signal: new AbortController().signal });
    await store.commit({ records: out.live, partitions: [{ partition, token: lease.token, upTo: records.at(-1)!.offset }] });
    await log.ack(lease, records.at(-1)!.offset);
    await log.release(lease);
  }
  expect((await store.producedBy(tenant, 2)).length).toBe(N);
  return tenant;
}

it('rollout.pipeline-repair-run-twice-re-derives-each-event-once', async () => {
  p = await startPipeline({}, { workers: false });
  const { log, store, catalog, config } = p;
  const tenant = await storedByTheCandidate(p);

  // Rolled back: the repair is pending from the moment version 2 went live.
  const spec = parseRolloutSpec({ change: { pipeline_version: 2 }, steps: [{ ramp: { percents: [100], step_duration: '1h' } }], guardrails: { min_events: 1 }, auto: true });
  const started = startRollout('ro_test', tenant, spec, Date.now() - 60_000, 'test');
  const rolledBack: Rollout = abort(started, Date.now(), 'test');
  expect(rolledBack.repair).toMatchObject({ status: 'pending' });
  const deps = repairDeps(p);
  const planned = (await planPipelineRepair(deps, rolledBack, Date.now()))!;
  expect(planned.repair!.withdrawing).toHaveLength(N);
  const first = await finishPipelineRepair(deps, planned, Date.now());
  expect(first.repair).toMatchObject({ status: 'done', repaired: N, past_retention: 0 });
  // Again from the same saved positions: nothing is withdrawn twice, nothing appended twice.
  const again = await finishPipelineRepair(deps, planned, Date.now());
  expect(again.repair).toMatchObject({ status: 'done', repaired: N, past_retention: 0 });

  // The live group (version 1) processes the re-derived records.
  const workers = await startWorkers(config, { log, store, catalog });
  try {
    await until(async () => (await store.rawStats(tenant)).events >= N && (await store.producedBy(tenant, 1)).length === N, 30_000, 100);
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    await workers.stop();
  }
  expect(await store.rawStats(tenant)).toEqual({ events: N, distinctKeys: N });
  expect(await store.producedBy(tenant, 2)).toEqual([]);
  expect((await store.producedBy(tenant, 1)).length).toBe(N);
  const sample = await store.findEvent(tenant, 'k-7');
  expect(JSON.parse(sample!.properties)).toEqual({ amount: 7, v: 1 });
  expect(sample!.origin).toBe('replay');
});

it('rollout.pipeline-repair-keeps-the-candidates-output-of-events-past-the-logs-retention-and-loses-none', async () => {
  let now = Date.now();
  p = await startPipeline({ log: { retentionMs: 60_000 } }, { workers: false, logClock: { now: () => now } });
  const { log, store, catalog, config } = p;
  const tenant = await storedByTheCandidate(p);
  // The oldest acked records of each partition go past the log's retention and are pruned.
  now += 120_000;
  const pruned = log.prune(5).deleted;
  expect(pruned).toBeGreaterThan(0);
  expect(pruned).toBeLessThan(N);

  const rolledBack = abort(startRollout('ro_past', tenant, parseRolloutSpec({ change: { pipeline_version: 2 }, steps: [{ ramp: { percents: [100], step_duration: '1h' } }], guardrails: { min_events: 1 }, auto: true }), Date.now() - 60_000, 'test'), Date.now(), 'test');
  const deps = repairDeps(p);
  const done = await finishPipelineRepair(deps, (await planPipelineRepair(deps, rolledBack, Date.now()))!, Date.now());
  // What the log no longer holds keeps the candidate's output: never withdrawn, so never lost.
  expect(done.repair).toMatchObject({ status: 'done', repaired: N - pruned, past_retention: pruned });
  expect(done.decisions.at(-1)!.reason).toContain(`(${pruned} more are past the log's retention and keep version 2's output)`);
  const workers = await startWorkers(config, { log, store, catalog });
  try {
    await until(async () => (await store.producedBy(tenant, 1)).length === N - pruned, 30_000, 100);
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    await workers.stop();
  }
  expect(await store.rawStats(tenant)).toEqual({ events: N, distinctKeys: N });
  expect((await store.producedBy(tenant, 2)).length).toBe(pruned);
});
