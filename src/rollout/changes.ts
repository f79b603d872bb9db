import type { DeadLetter, LogRecord } from '../core/types.js';
import type { TenantPipeline } from '../transform/registry.js';
import type { Transform } from '../transform/run.js';
import { operatorTransformStage, transformStage } from '../worker/transform.js';
import type { EnrichOptions } from '../worker/enrich.js';
import { enrichStage, type Stage } from '../worker/pipeline.js';
import type { EnrichChange } from './document.js';

/**
 * What a change is to the rollout machinery: for a tenant, the stages of the candidate and
 * which live stages they take the place of. The shadow consumer runs the live stages and the
 * candidate's over a copy of each batch; the live consumer routes the keys in the cohort
 * through the candidate's. Nothing else about the change is known here.
 *
 * - `replaces` null (a schema version's enforcement): the candidate's stages run after all
 *   the live ones.
 * - `replaces` names a live stage (a pipeline version: `transform`): the candidate's stages
 *   run in its place.
 */
/** The live stages a change may replace (routed by the cohort in the live group). */
export const REPLACEABLE: ReadonlySet<string> = new Set(['enrich', 'operator_transform', 'transform']);

export interface ChangeStages {
  candidate: Stage[];
  replaces: string | null;
  /**
   * What the candidate needs and the catalog does not hold yet (`schema checkout version 2`,
   * `pipeline version 3`): the candidate is then empty and nothing is compared against it
   * until it is found (see RolloutRuntime).
   */
  missing?: string;
}

/** A change whose candidate cannot be built yet: `what` names what the catalog lacks. */
export function missingStages(what: string): ChangeStages {
  return { candidate: [], replaces: null, missing: what };
}

/**
 * A schema version's enforcement: the events of `type` that fail `version` are dead-lettered
 * as schema_violation. `validate` answers the violation's message and path, or null when the
 * event conforms (the schema registry's compiled validator).
 *
 * In shadow this stage only runs in the shadow consumer, so what would fail is counted and
 * sampled, not dead-lettered; from cohort on it runs in the live consumer for the cohort's keys.
 */
export function enforceSchema(type: string, version: number, validate: (r: LogRecord) => { message: string; path: string } | null): Stage {
  return {
    name: 'enforce_schema',
    run(records) {
      const live: LogRecord[] = [];
      const dead: DeadLetter[] = [];
      for (const r of records) {
        const v = r.type === type ? validate(r) : null;
        if (v) dead.push({ record: r, reason: 'schema_violation', message: v.message, path: v.path, schemaVersion: version });
        else live.push(r);
      }
      return { live, dead };
    },
  };
}

/**
 * A pipeline version (transforms, src/transform/): the candidate replaces the live
 * `transform` stage, so that the candidate's steps run where the live version's would (after
 * enrich, before commit), and each record it stores carries `version` as its
 * `pipeline_version`. `transform` is the version's steps compiled; `salt` the tenant's
 * redaction salt (a hashed field keeps its value across versions).
 */
export function pipelineVersionStages(version: number, transform: Transform, salt: string): ChangeStages {
  const pipeline: TenantPipeline = { version, transform, salt };
  return { candidate: [transformStage(async () => pipeline)], replaces: 'transform' };
}

/**
 * An operator pipeline version: the candidate replaces the live `operator_transform` stage
 * (for the tenants in the cohort), before each tenant's own steps. `saltOf` answers a
 * tenant's redaction salt.
 */
export function operatorVersionStages(version: number, transform: Transform, saltOf: (tenant: string) => Promise<string>): ChangeStages {
  return { candidate: [operatorTransformStage(async () => ({ version, transform }), saltOf)], replaces: 'operator_transform' };
}

/**
 * The operator-level enrichment document: the candidate's built-in enrichers (the live
 * switches with `change` over them) replace the live `enrich` stage, for the tenants in the
 * cohort. `live` answers the switches in effect and the configured plugins (the same on both sides).
 */
export function enrichStages(change: EnrichChange, live: () => Promise<EnrichOptions>): ChangeStages {
  return { candidate: [enrichStage(async () => ({ ...(await live()), ...change }))], replaces: 'enrich' };
}

/** A schema version's enforcement as a change: added after the live stages, replacing none. */
export function schemaStages(stage: Stage): ChangeStages {
  return { candidate: [stage], replaces: null };
}
