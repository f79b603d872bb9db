import { afterEach, expect, it } from 'vitest';
import { OPERATOR_SCOPE } from '../../src/core/operator.js';
import type { LogRecord } from '../../src/core/types.js';
import { processBatch } from '../../src/worker/pipeline.js';
import { operatorTransformStage } from '../../src/worker/transform.js';
import { startWorkers, WORKER_GROUP } from '../../src/worker/workers.js';
import { operatorVersionStages } from '../../src/rollout/changes.js';
import { parseRolloutSpec } from '../../src/rollout/document.js';
import { abort, startRollout, type Rollout } from '../../src/rollout/machine.js';
import { finishPipelineRepair, planPipelineRepair } from '../../src/rollout/repair-pipeline.js';
import { compileTransform } from '../../src/transform/run.js';
import { entry } from '../helpers/entries.js';
import { repairDeps } from '../helpers/repair.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Rollback with repair of an operator pipeline version, on the embedded engines in this
 * process: the events the candidate (version 2, live for acme only) stored are re-derived
 * with the live operator version 1 from the log, globex's are left alone, and a repair that
 * runs again from its saved positions (as after a crash between its append and its save)
 * changes nothing more: each event is stored once, by operator version 1.
 */
let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

const N = 200;

it('rollout.operator-repair-run-twice-re-derives-each-event-once-in-the-tenants-the-candidate-ran-for', async () => {
  p = await startPipeline({}, { workers: false });
  const { log, store, catalog, config } = p;
  const acme = p.tenant.tenant;
  const globex = (await catalog.createTenant('globex')).tenant;
  const v1 = [{ set: { field: 'properties.op', value: '1' } }];
  const v2 = [{ set: { field: 'properties.op', value: '2' } }];
  await catalog.pipelines.put(OPERATOR_SCOPE, { steps: v1, actor: 'test', audit: () => null });
  await catalog.pipelines.put(OPERATOR_SCOPE, { steps: v2, actor: 'test', activate: false, audit: () => null });
  const partitions = log.capabilities.partitions;
  await log.append([...Array.from({ length: N }, (_, i) => entry(acme, i, partitions)), ...Array.from({ length: N }, (_, i) => entry(globex, N + i, partitions))]);

  // The candidate, live for acme (its cohort): acme's records go through version 2, globex's through version 1; committed and acked.
  const salt = async (t: string) => catalog.pipelines.salt(t);
  const candidate = operatorVersionStages(2, compileTransform({ steps: v2 }), salt).candidate;
  const live = [operatorTransformStage(async () => ({ version: 1, transform: compileTransform({ steps: v1 }) }), salt)];
  const ctx = { signal: new AbortController().signal };
  for (let partition = 0; partition < partitions; partition++) {
    const lease = (await log.acquire(WORKER_GROUP, partition, 'candidate', 10_000))!;
    const records = await log.read(lease, 10_000);
    if (records.length === 0) continue;
    const of = (t: string): LogRecord[] => records.filter((r) => r.tenant === t);
    const out = [...(await processBatch(of(acme), candidate, ctx)).live, ...(await processBatch(of(globex), live, ctx)).live];
    await store.commit({ records: out, partitions: [{ partition, token: lease.token, upTo: records.at(-1)!.offset }] });
    await log.ack(lease, records.at(-1)!.offset);
    await log.release(lease);
  }
  expect((await store.producedBy(acme, 2, 'operator')).length).toBe(N);
  expect((await store.producedBy(globex, 1, 'operator')).length).toBe(N);

  // Rolled back: the repair is pending from the moment version 2 went live.
  const spec = parseRolloutSpec({ change: { operator_pipeline_version: 2 }, steps: [{ cohort: { tenants: [acme], duration: '1h' } }], guardrails: { min_events: 1 }, auto: true }, { global: true });
  const started = startRollout('ro_optest', OPERATOR_SCOPE, spec, Date.now() - 60_000, 'test');
  const rolledBack: Rollout = abort(started, Date.now(), 'test');
  expect(rolledBack.repair).toMatchObject({ status: 'pending' });
  const deps = repairDeps(p);
  const planned = (await planPipelineRepair(deps, rolledBack, Date.now()))!;
  // Each saved position names its tenant: only acme's, the candidate's.
  expect(planned.repair!.withdrawing).toHaveLength(N);
  expect(new Set(planned.repair!.withdrawing!.map((x) => x[3]))).toEqual(new Set([acme]));
  const first = await finishPipelineRepair(deps, planned, Date.now());
  expect(first.repair).toMatchObject({ status: 'done', repaired: N, past_retention: 0 });
  expect(first.decisions.at(-1)).toMatchObject({ verdict: 'repair', reason: `re-derived with the active operator version: ${N} events operator pipeline version 2 stored, 0 it dead-lettered` });
  // Again from the same saved positions: nothing is withdrawn twice, nothing appended twice.
  const again = await finishPipelineRepair(deps, planned, Date.now());
  expect(again.repair).toMatchObject({ status: 'done', repaired: N, past_retention: 0 });

  // The live group (operator version 1) processes the re-derived records.
  const workers = await startWorkers(config, { log, store, catalog });
  try {
    await until(async () => (await store.rawStats(acme)).events >= N && (await store.producedBy(acme, 1, 'operator')).length === N, 30_000, 100);
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    await workers.stop();
  }
  for (const t of [acme, globex]) {
    expect(await store.rawStats(t)).toEqual({ events: N, distinctKeys: N });
    expect(await store.producedBy(t, 2, 'operator')).toEqual([]);
    expect((await store.producedBy(t, 1, 'operator')).length).toBe(N);
  }
  const sample = await store.findEvent(acme, 'k-7');
  expect(JSON.parse(sample!.properties)).toEqual({ amount: 7, op: 1 });
  expect(sample).toMatchObject({ origin: 'replay', operatorVersion: 1 });
  // globex's events were never the candidate's: stored once, live, as they were.
  expect(await store.findEvent(globex, `k-${N + 7}`)).toMatchObject({ origin: 'live', operatorVersion: 1 });
});
