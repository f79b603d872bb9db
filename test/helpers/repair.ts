import type { PipelineRepairDeps } from '../../src/rollout/repair-pipeline.js';
import { SchemaRegistry } from '../../src/schema/registry.js';
import type { Pipeline } from './pipeline.js';

/** What a pipeline version's repair needs, from an in-process pipeline (backfills are not started). */
export function repairDeps(p: Pipeline): PipelineRepairDeps {
  const { log, catalog, store, config } = p;
  return {
    log,
    catalog,
    schemas: new SchemaRegistry(catalog, { refreshMs: 0 }),
    limits: { maxEventBytes: config.limits.eventBytes, maxDepth: config.limits.depth },
    time: config.events,
    store,
    startBackfill: async () => undefined,
  };
}
