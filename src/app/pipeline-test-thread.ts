import { parentPort, workerData } from 'node:worker_threads';
import { SluiceError } from '../core/errors.js';
import type { ExpressionEvent } from '../transform/expression.js';
import { runPipelineTest } from '../transform/versions.js';

/**
 * One pipeline test in a thread of its own (see pipeline-tests.ts): `workerData` is
 * `{doc, events, salt}`; the thread posts `{ok: true, results}` (the results' JSON text) or `{ok: false, code,
 * message, field}` and ends.
 */
const { doc, events, salt } = workerData as { doc: unknown; events: ExpressionEvent[]; salt: string };
try {
  parentPort!.postMessage({ ok: true, results: runPipelineTest(doc, events, salt) });
} catch (e: unknown) {
  const err = e instanceof SluiceError ? e : new SluiceError('SLUICE_ERR_INTERNAL', 'the pipeline test failed');
  parentPort!.postMessage({ ok: false, code: err.code, message: err.message, field: err.field, details: err.details });
}
