import fs from 'node:fs';
import path from 'node:path';
import type { LogRecord } from '../src/core/types.js';
import { compileTransform } from '../src/transform/run.js';
import { transformStage } from '../src/worker/transform.js';
import { batchBodies, eventsFor, post, queriedTotal } from './load.js';
import { freePort, keysFrom, startSluice } from './proc.js';

/**
 * The cost of a transform pipeline: sent → queryable through `sluice up` with a 5-step
 * pipeline (one cast, one set with an expression, one redact, one rename, one conditional
 * drop that drops nothing, so that both runs store every event), beside the same run
 * without a pipeline. Runs alternate (none, pipeline, none, pipeline) so that both share the
 * host's drift; each figure is the median of its runs. Beside them, the steps' own CPU time
 * per event, measured in this process over the same events (less exposed to a busy host).
 */
export const BENCH_PIPELINE = {
  steps: [
    { cast: { field: 'properties.amount', to: 'string' } },
    { set: { field: 'properties.amount_cents', value: 'int(double(properties.amount) * 100.0)' } },
    { redact: { fields: ['properties.plan'], how: 'hash' } },
    { rename: { from: 'context.locale', to: 'context.language' } },
    { drop: { when: 'properties.path == "/products/none"' } },
  ],
};

export async function transformBench(work: string, events: number, batch: number, concurrency: number, say: (s: string) => void) {
  const bodies = batchBodies(`transform-${Date.now()}`, events, batch);
  const perBody = (i: number): number => Math.min(batch, events - i * batch);
  const run = async (withPipeline: boolean, n: number): Promise<number> => {
    const dataDir = path.join(work, `transform-${n}`);
    const c = await startSluice(dataDir, await freePort());
    try {
      const { writeKey, readKey, adminKey } = keysFrom(c.stdout);
      if (withPipeline) {
        const res = await fetch(`${c.url}/v1/pipeline`, { method: 'PUT', headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' }, body: JSON.stringify(BENCH_PIPELINE) });
        if (!res.ok) throw new Error(`PUT /v1/pipeline: ${res.status} ${await res.text()}`);
      }
      const start = performance.now();
      await post(c.url, writeKey, bodies, perBody, concurrency);
      // Give up when the count stops moving (events dead-lettered would never be counted).
      for (let last = -1, since = performance.now(); ; ) {
        const n = await queriedTotal(c.url, readKey);
        if (n >= events) break;
        if (n !== last) [last, since] = [n, performance.now()];
        else if (performance.now() - since > 30_000) throw new Error(`transform: the query counts ${n} of ${events} and has not moved for 30 s (see GET /v1/dlq)`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const total = await queriedTotal(c.url, readKey);
      if (total !== events) throw new Error(`transform: the query counts ${total}, ${events} were sent`);
      return events / ((performance.now() - start) / 1000);
    } finally {
      await c.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  };
  const none: number[] = [];
  const with5: number[] = [];
  const RUNS = 3;
  for (let i = 0; i < RUNS; i++) {
    say(`transform: run ${i + 1} of ${RUNS} without a pipeline`);
    none.push(await run(false, 2 * i));
    say(`transform: run ${i + 1} of ${RUNS} with the 5-step pipeline`);
    with5.push(await run(true, 2 * i + 1));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { events, none: median(none), pipeline: median(with5), runs: { none, pipeline: with5 }, microsPerEvent: await stepsCpu(Math.min(events, 100_000)) };
}

/**
 * The transform stage's CPU time per event (µs of user CPU) in this process, over the same
 * events, as the workers run it: parse, steps, print, the record's copy.
 */
async function stepsCpu(n: number): Promise<number> {
  // Compiled once, as the workers' registry keeps a version's compiled pipeline (and its
  // redaction memo) across batches; compiling per batch would add ~0.1–0.3 µs per event.
  const pipeline = { version: 1, salt: 'salt', transform: compileTransform(BENCH_PIPELINE) };
  const stage = transformStage(async () => pipeline);
  const records: LogRecord[] = eventsFor('cpu', 0, n).map((x, i) => {
    const e = JSON.parse(x) as { type: string; key: string; properties: unknown; context: unknown };
    return { tenant: 't', type: e.type, key: e.key, idempotencyKey: `k${i}`, ts: i, receivedAt: i, partition: 0, origin: 'live', offset: i, attempt: 1, properties: JSON.stringify(e.properties), context: JSON.stringify(e.context) };
  });
  const ctx = { signal: new AbortController().signal };
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const start = process.cpuUsage();
    let kept = 0;
    for (let i = 0; i < n; i += 500) kept += (await stage.run(records.slice(i, i + 500), ctx)).live.length;
    if (kept !== n) throw new Error(`transform: ${n - kept} of ${n} events did not pass the bench pipeline`);
    best = Math.min(best, process.cpuUsage(start).user / n);
  }
  return best;
}
