import type { DeadLetter, LogRecord } from '../core/types.js';
import type { ExpressionEvent } from '../transform/expression.js';
import type { TenantPipeline } from '../transform/registry.js';
import { CONTEXT_CHANGED, PROPERTIES_CHANGED, type Transform } from '../transform/run.js';
import type { Stage, StageResult } from './pipeline.js';

/**
 * `transform`: runs each tenant's transform pipeline (src/transform/) over its live records,
 * after enrich and before commit, so that live traffic, replays and backfills go through
 * the same steps. Each record leaves with the version that produced it (`pipelineVersion`,
 * 0 for none); a record the steps dead-letter goes to the dead letters with the step's
 * reason (or `transform_failed`, which feeds the breaker); a dropped one is recorded as a
 * discarded dead letter with reason `dropped`, so that it is still counted.
 *
 * `pipelineOf` answers the tenant's current pipeline (cached: see PipelineRegistry); it may
 * throw a transient error, and the consumer retries the batch.
 */
export function transformStage(pipelineOf: (tenant: string) => Promise<TenantPipeline>): Stage {
  return {
    name: 'transform',
    async run(records) {
      const pipelines = new Map<string, TenantPipeline>();
      for (const tenant of new Set(records.map((r) => r.tenant))) pipelines.set(tenant, await pipelineOf(tenant));
      return runPipelines(records, (tenant) => pipelines.get(tenant)!, true, 'pipeline version');
    },
  };
}

/** The operator pipeline's live version as the workers see it (version 0 and no transform: none). */
export interface OperatorPipeline {
  version: number;
  transform: Transform | null;
}

/**
 * `operator_transform`: the operator pipeline (one document for every tenant, kept under the
 * operator's scope, src/core/operator.ts), run over every tenant's live records before the
 * tenant's own `transform`, with the same step grammar and outcomes. Each record leaves with
 * the operator version that produced it (`operatorVersion`, stored as `operator_version`;
 * records pass untouched, version 0, when there is no operator pipeline) and its
 * `pipelineVersion` alone (a stored event's `pipeline_version` is the tenant's own version).
 * A redaction hashes with the record's tenant's salt, so a hashed value cannot be matched
 * across tenants. Dead letters name "operator pipeline version N".
 */
export function operatorTransformStage(pipelineOf: () => Promise<OperatorPipeline>, saltOf: (tenant: string) => Promise<string>): Stage {
  return {
    name: 'operator_transform',
    async run(records) {
      const p = await pipelineOf();
      if (!p.transform && p.version === 0) return { live: [...records], dead: [] };
      const salts = new Map<string, TenantPipeline>();
      for (const tenant of new Set(records.map((r) => r.tenant))) salts.set(tenant, { version: p.version, transform: p.transform, salt: await saltOf(tenant) });
      return runPipelines(records, (tenant) => salts.get(tenant)!, false, 'operator pipeline version');
    },
  };
}

/**
 * The steps of each record's pipeline; `mark`: the output records carry the version as their
 * `pipelineVersion`, else (the operator's) as their `operatorVersion`.
 */
function runPipelines(records: readonly LogRecord[], pipelineFor: (tenant: string) => TenantPipeline, mark: boolean, label: string): StageResult {
  const live: LogRecord[] = [];
  const dead: DeadLetter[] = [];
  const dropped: DeadLetter[] = [];
  for (const r of records) {
    const p = pipelineFor(r.tenant);
    if (!p.transform) {
      if (mark) live.push(p.version === (r.pipelineVersion ?? 0) ? r : output(r, r.properties, r.context, p.version, r.operatorVersion ?? 0));
      else live.push(stamp(r, p.version));
      continue;
    }
    const reads = p.transform.reads;
    const out = p.transform.run(eventOf(r, reads), p.salt, true, false);
    const at = `${label} ${p.version}`;
    switch (out.outcome) {
      case 'stored': {
        // A map no step changed keeps the producer's text (no parse and print round trip).
        const e = out.output!;
        const properties = out.maps & PROPERTIES_CHANGED && reads.has('properties') ? JSON.stringify(e.properties) : r.properties;
        const context = out.maps & CONTEXT_CHANGED && reads.has('context') ? JSON.stringify(e.context) : r.context;
        if (mark) live.push(output(r, properties, context, p.version, r.operatorVersion ?? 0));
        else live.push(properties === r.properties && context === r.context ? stamp(r, p.version) : output(r, properties, context, r.pipelineVersion ?? 0, p.version));
        break;
      }
      case 'dropped':
        dropped.push({ record: r, reason: 'dropped', message: `dropped by step ${out.step} (drop) of ${at}` });
        break;
      case 'dead_lettered':
        dead.push({ record: r, reason: out.reason!, message: `${out.message} (${at})`, path: '' });
    }
  }
  return { live, dead, dropped };
}

/**
 * A copy of `r` with the pipeline's output. Copied with Object.assign and then set: a spread
 * with a key the record lacks (`pipelineVersion`) costs about a microsecond per record in V8,
 * as much as the steps of a small pipeline. Both versions are always set, so that every
 * output record has the same keys in the same order (one hidden class for the stages after).
 */
function output(r: LogRecord, properties: string, context: string, pipelineVersion: number, operatorVersion: number): LogRecord {
  const o = Object.assign({}, r);
  o.properties = properties;
  o.context = context;
  o.pipelineVersion = pipelineVersion;
  o.operatorVersion = operatorVersion;
  return o;
}

/**
 * `r` itself, marked as passed by the operator pipeline's `version`: set in place, not copied.
 * A copy costs about 0.6 µs per record (measured on 100k records, 2 cores; more than a step
 * that changes nothing), and the operator stage passes every record of every tenant. The
 * records of a batch are the consumer's own (read from the log for this batch), and the stage
 * sets the same version again when a batch is retried; where the shadow runs the live and the
 * candidate operator versions over the same records, only the diff reads them, and it
 * compares no versions.
 */
function stamp(r: LogRecord, version: number): LogRecord {
  r.operatorVersion = version;
  return r;
}

/**
 * The event a record carries, as the steps see it: the maps in `reads` parsed (all by
 * default), the others empty objects of their own.
 */
export function eventOf(r: LogRecord, reads?: ReadonlySet<string>): ExpressionEvent {
  const properties = !reads || reads.has('properties') ? (JSON.parse(r.properties) as Record<string, unknown>) : {};
  const context = !reads || reads.has('context') ? (JSON.parse(r.context) as Record<string, unknown>) : {};
  return { type: r.type, key: r.key, ts: r.ts, properties, context };
}
