import type { DeadLetter, LogRecord } from '../core/types.js';
import { processBatch, type Stage } from '../worker/pipeline.js';
import { inCohort } from './cohort.js';
import { EMPTY_TALLY, type Tally } from './guardrails.js';

/** The live route of a tenant under a rollout at cohort or ramp: which share, which candidate stages. */
export interface LiveRoute {
  rolloutId: string;
  share: number;
  candidate: Stage[];
}

/**
 * The cohort routing stage, last in the live stage list: the records of keys in a rollout's
 * cohort also go through the candidate's stages; the others go on unchanged. A key is wholly
 * on one side, so per-key order holds. `observe` receives, per rollout and batch, the tallies
 * of both sides (the guardrails' input: the cohort and the rest in the same minutes).
 */
export function routeByCohort(routeOf: (tenant: string) => LiveRoute | null, observe: (rolloutId: string, tenant: string, cohort: Tally, baseline: Tally) => void): Stage {
  return {
    name: 'route',
    async run(records, ctx) {
      const live: LogRecord[] = [];
      const dead: DeadLetter[] = [];
      const held: DeadLetter[] = [];
      const byTenant = new Map<string, LogRecord[]>();
      for (const r of records) {
        let list = byTenant.get(r.tenant);
        if (!list) byTenant.set(r.tenant, (list = []));
        list.push(r);
      }
      for (const [tenant, list] of byTenant) {
        const route = routeOf(tenant);
        if (!route || route.share <= 0) {
          live.push(...list);
          continue;
        }
        const inside: LogRecord[] = [];
        for (const r of list) (inCohort(route.rolloutId, tenant, r.key, route.share) ? inside : live).push(r);
        const started = performance.now();
        const p = inside.length === 0 ? { live: [], dead: [], held: [] } : await processBatch(inside, route.candidate, ctx);
        const cost = performance.now() - started;
        live.push(...p.live);
        dead.push(...p.dead);
        const outside = list.length - inside.length;
        observe(route.rolloutId, tenant, { ...EMPTY_TALLY, events: inside.length, dead: p.dead.length, dropped: inside.length - p.live.length - p.dead.length - p.held.length, costMs: cost }, { ...EMPTY_TALLY, events: outside });
        held.push(...p.held);
      }
      return { live, dead, held };
    },
  };
}
