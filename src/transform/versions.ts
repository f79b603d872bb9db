import { SluiceError } from '../core/errors.js';
import { canonicalJson } from '../core/hash.js';
import type { PipelineStore, PipelineVersion } from '../ports/pipelines.js';
import { PipelineError } from './document.js';
import type { ExpressionEvent } from './expression.js';
import { compileTransform, type Transform, type TransformResult } from './run.js';

/**
 * Writing and trying pipeline versions: what `PUT /v1/pipeline`, `POST /v1/pipeline/test`
 * and the CLI share. No HTTP here.
 */

/** The change between two versions' steps, by position: what the audit log records. */
export function stepsDiff(before: readonly unknown[], after: readonly unknown[]): { position: number; before: unknown; after: unknown }[] {
  const out: { position: number; before: unknown; after: unknown }[] = [];
  for (let i = 0; i < Math.max(before.length, after.length); i++) {
    const b = i < before.length ? before[i] : null;
    const a = i < after.length ? after[i] : null;
    if (canonicalJson(b) !== canonicalJson(a)) out.push({ position: i, before: b, after: a });
  }
  return out;
}

/** Compiles a document, turning a PipelineError into a 400 that names the step and its position. */
export function compileOrRefuse(doc: unknown, field = 'steps'): Transform {
  try {
    return compileTransform(doc);
  } catch (e: unknown) {
    if (e instanceof PipelineError) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', e.message, {
        field: e.position === null ? field : `${field}[${e.position}]`,
        details: { step: e.position, kind: e.kind, field: e.field },
      });
    }
    throw e;
  }
}

/**
 * Checks `steps` (400 naming the step and position when one does not compile), then writes
 * them as the tenant's next version (409 when `expectedVersion` is stale), audited with the
 * diff from the live version. `activate: false` stores it without making it live (a
 * candidate for a rollout, `POST /v1/pipeline/versions`).
 */
export async function putPipeline(store: PipelineStore, tenant: string, input: { steps: unknown; actor: string; expectedVersion?: number; activate?: boolean }): Promise<PipelineVersion> {
  compileOrRefuse({ steps: input.steps });
  const steps = input.steps as unknown[];
  return store.put(tenant, {
    steps,
    actor: input.actor,
    expectedVersion: input.expectedVersion,
    activate: input.activate ?? true,
    audit: (before) => ({ steps: steps.length, diff: stepsDiff(before ?? [], steps) }),
  });
}

/** What `POST /v1/pipeline/test` answers for each event: `doc` compiled (400 when it does not), then run over each event with the tenant's `salt`. */
export type PipelineTestResult = ReturnType<typeof wireResult>;

/**
 * Runs a pipeline test for `tenant` and answers the JSON text of its results (a list of
 * PipelineTestResult): `runPipelineTest` where it may cost what it costs, or in a thread of its
 * own with a deadline and a heap limit (src/app/pipeline-tests.ts), which then also makes the
 * JSON, off the thread that answers every tenant.
 */
export type PipelineTester = (tenant: string, doc: unknown, events: readonly ExpressionEvent[], salt: string) => Promise<string>;

/** The largest answer a pipeline test gives (bytes of JSON): 1,000 events of 16 KiB. */
export const MAX_TEST_ANSWER_BYTES = 16 * 1_048_576;

/**
 * Compiles `doc` (400 naming the step when it does not compile), runs it over `events` and
 * answers the results as JSON text: the answer of a pipeline test, in one call. An answer over
 * MAX_TEST_ANSWER_BYTES is refused (422 SLUICE_ERR_TRANSFORM_TOO_COSTLY): steps that grow each
 * event made 209 MB of one 771-byte request.
 */
export function runPipelineTest(doc: unknown, events: readonly ExpressionEvent[], salt: string): string {
  const transform = compileOrRefuse(doc, 'pipeline.steps');
  const parts: string[] = [];
  let bytes = 2;
  for (const e of events) {
    const part = JSON.stringify(wireResult(transform.run(e, salt)));
    bytes += part.length + 1;
    if (bytes > MAX_TEST_ANSWER_BYTES) {
      throw new SluiceError(
        'SLUICE_ERR_TRANSFORM_TOO_COSTLY',
        `the test's answer would pass ${MAX_TEST_ANSWER_BYTES / 1_048_576} MiB after ${parts.length} of ${events.length} events: the steps make large events; test fewer events`,
        { field: 'pipeline.steps' },
      );
    }
    parts.push(part);
  }
  return `[${parts.join(',')}]`;
}

/** The result of one event as `POST /v1/pipeline/test` answers it. */
export function wireResult(r: TransformResult) {
  return {
    output: r.output ? { type: r.output.type, key: r.output.key, ts: new Date(r.output.ts).toISOString(), properties: r.output.properties, context: r.output.context } : null,
    outcome: r.outcome,
    ...(r.reason === undefined ? {} : { reason: r.reason }),
    ...(r.step === undefined ? {} : { step: r.step }),
    ...(r.message === undefined ? {} : { message: r.message }),
    changed: r.changed,
  };
}

/**
 * An event as a test request gives it (the native shape: `type`, `key`, `ts` as RFC 3339 or
 * epoch ms, `properties`, `context`), as the steps see it. `now` stands in for a missing ts.
 */
export function testEvent(v: unknown, i: number, now: number): ExpressionEvent {
  const bad = (m: string) => new SluiceError('SLUICE_ERR_INVALID_BODY', `events[${i}]: ${m}`, { field: `events[${i}]` });
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('an event is an object {type, key, ts, properties, context}');
  const e = v as Record<string, unknown>;
  if (typeof e.type !== 'string' || e.type === '') throw bad('"type" is required');
  const obj = (x: unknown, name: string): Record<string, unknown> => {
    if (x === undefined || x === null) return {};
    if (typeof x !== 'object' || Array.isArray(x)) throw bad(`"${name}" must be an object`);
    return x as Record<string, unknown>;
  };
  let ts = now;
  if (typeof e.ts === 'number' && Number.isFinite(e.ts)) ts = e.ts;
  else if (typeof e.ts === 'string') {
    ts = Date.parse(e.ts);
    if (!Number.isFinite(ts)) throw bad('"ts" must be an RFC 3339 time or epoch milliseconds');
  } else if (e.ts !== undefined && e.ts !== null) throw bad('"ts" must be an RFC 3339 time or epoch milliseconds');
  return { type: e.type, key: typeof e.key === 'string' ? e.key : '', ts, properties: obj(e.properties, 'properties'), context: obj(e.context, 'context') };
}
