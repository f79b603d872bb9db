import { Worker } from 'node:worker_threads';
import { systemClock, type Clock } from '../core/clock.js';
import { SluiceError, type ErrorCode } from '../core/errors.js';
import type { PipelineTester } from '../transform/versions.js';

/**
 * Pipeline tests (`POST /v1/pipeline/test`) in threads of their own, so that what one tenant's
 * steps cost on the events it chose cannot hold the HTTP thread every tenant is served by.
 * The static bounds of src/transform (iteration-cost.ts, the value size) refuse the known
 * costly forms; this bounds what they do not foresee: each test runs in a new worker thread
 * with `timeoutMs` of wall time and a heap of `heapMb`, and is ended at either (422
 * `SLUICE_ERR_TRANSFORM_TOO_COSTLY`, field `pipeline.steps`). At most `perTenant` tests of a
 * tenant and `perProcess` in all run at once; beyond, 429 with Retry-After 1 (field
 * `pipeline_tests`). A new thread per test costs about 30-60 ms of start-up: a test is an
 * operator's click, not a hot path.
 */
export interface PipelineTestLimits {
  /** Wall time a test may take, ms. */
  timeoutMs: number;
  /** The test thread's old-generation heap, MiB. */
  heapMb: number;
  perTenant: number;
  perProcess: number;
}

/** The defaults: 1,000 events through ten steps take milliseconds; 5 s is thousands of times that. */
export const PIPELINE_TEST_LIMITS: PipelineTestLimits = { timeoutMs: 5_000, heapMb: 256, perTenant: 1, perProcess: 2 };

type Reply = { ok: true; results: string } | { ok: false; code: ErrorCode; message: string; field?: string; details?: unknown };

/**
 * A PipelineTester that runs each test in a worker thread (pipeline-test-thread.js beside this
 * module, or `entry`). The clock times the deadline.
 */
export function isolatedPipelineTests(options: Partial<PipelineTestLimits> & { clock?: Clock; entry?: URL } = {}): PipelineTester {
  const limits = { ...PIPELINE_TEST_LIMITS, ...options };
  const clock = options.clock ?? systemClock;
  const entry = options.entry ?? new URL('./pipeline-test-thread.js', import.meta.url);
  const running = new Map<string, number>();
  let total = 0;
  return async (tenant, doc, events, salt) => {
    if (total >= limits.perProcess || (running.get(tenant) ?? 0) >= limits.perTenant) {
      throw new SluiceError(
        'SLUICE_ERR_QUOTA_EXCEEDED',
        total >= limits.perProcess
          ? `${total} pipeline tests are running (at most ${limits.perProcess} at once); retry in a second`
          : `a pipeline test of tenant "${tenant}" is running (at most ${limits.perTenant} at once per tenant); retry when it has answered`,
        { field: 'pipeline_tests', retryAfter: 1 },
      );
    }
    total++;
    running.set(tenant, (running.get(tenant) ?? 0) + 1);
    try {
      return await runInThread(entry, { doc, events, salt }, limits, clock, events.length);
    } finally {
      total--;
      const n = running.get(tenant)! - 1;
      if (n === 0) running.delete(tenant);
      else running.set(tenant, n);
    }
  };
}

function runInThread(entry: URL, data: unknown, limits: PipelineTestLimits, clock: Clock, count: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(entry, { workerData: data, resourceLimits: { maxOldGenerationSizeMb: limits.heapMb, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 } });
    const tooCostly = (what: string) =>
      new SluiceError(
        'SLUICE_ERR_TRANSFORM_TOO_COSTLY',
        `testing the steps on ${count} event${count === 1 ? '' : 's'} ${what}, and was stopped: some step costs too much on these events. ` +
          'Try the steps on fewer events, or on one event at a time to find the step (the answer names it when it fails)',
        { field: 'pipeline.steps' },
      );
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      f();
      void worker.terminate();
    };
    const timer = clock.setTimeout(() => settle(() => reject(tooCostly(`took longer than ${limits.timeoutMs / 1000} s`))), limits.timeoutMs);
    worker.on('message', (m: Reply) =>
      settle(() => (m.ok ? resolve(m.results) : reject(new SluiceError(m.code, m.message, { field: m.field, details: m.details })))),
    );
    worker.on('error', (e: Error & { code?: string }) =>
      settle(() => reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? tooCostly(`needed more than ${limits.heapMb} MiB`) : new SluiceError('SLUICE_ERR_INTERNAL', `the pipeline test's thread failed: ${e.message}`))),
    );
    worker.on('exit', () => settle(() => reject(new SluiceError('SLUICE_ERR_INTERNAL', "the pipeline test's thread ended without an answer"))));
  });
}
