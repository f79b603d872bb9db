import type { DeadLetter, LogRecord } from '../core/types.js';
import type { ExpressionEvent } from '../transform/expression.js';
import type { TenantPipeline } from '../transform/registry.js';
import type { Stage } from './pipeline.js';

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
      const live: LogRecord[] = [];
      const dead: DeadLetter[] = [];
      const dropped: DeadLetter[] = [];
      for (const r of records) {
        const p = pipelines.get(r.tenant)!;
        if (!p.transform) {
          live.push(p.version === r.pipelineVersion ? r : { ...r, pipelineVersion: p.version });
          continue;
        }
        const out = p.transform.run(eventOf(r), p.salt, true);
        const at = `pipeline version ${p.version}`;
        switch (out.outcome) {
          case 'stored': {
            const e = out.output!;
            live.push({ ...r, properties: JSON.stringify(e.properties), context: JSON.stringify(e.context), pipelineVersion: p.version });
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
    },
  };
}

/** The event a record carries, as the steps see it (properties and context parsed). */
export function eventOf(r: LogRecord): ExpressionEvent {
  return { type: r.type, key: r.key, ts: r.ts, properties: JSON.parse(r.properties) as Record<string, unknown>, context: JSON.parse(r.context) as Record<string, unknown> };
}
