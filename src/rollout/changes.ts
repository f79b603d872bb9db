import { SluiceError } from '../core/errors.js';
import type { DeadLetter, LogRecord } from '../core/types.js';
import type { Stage } from '../worker/pipeline.js';
import type { Change } from './document.js';

/**
 * What a change is to the rollout machinery: something that yields, for a tenant, the stage
 * list the candidate adds to the active pipeline. The shadow consumer runs active + candidate
 * stages over a copy of each batch; the live consumer routes the keys in the cohort through
 * them. Nothing else about the change is known here.
 */
export interface ChangeStages {
  /** Stages run after the active ones for the candidate (e.g. an enforcement stage). */
  candidate: Stage[];
  /** Stages run instead of the active version's own change-specific stages; empty when nothing is replaced. */
  replaces: string[];
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
 * The adapter for `{"pipeline_version": N}` (transforms, issue 22): connect it to the catalog's
 * pipeline versions and the transform stage when that feature is merged. Until then a rollout
 * of a pipeline version is refused with 400 and what to do instead.
 */
export function pipelineVersionStages(_change: { pipeline_version: number }): never {
  throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'pipeline versions need the transforms feature, which this server does not have; roll out a schema version\'s enforcement ({"change": {"schema": {"type": "…", "version": N}}})', {
    field: 'change.pipeline_version',
  });
}

/** Refuses, at creation, a change this server cannot roll out. */
export function checkRollable(change: Change): void {
  if ('pipeline_version' in change) pipelineVersionStages(change);
}
