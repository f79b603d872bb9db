import type { DeadLetter, LogRecord } from '../core/types.js';
import { processBatch, type Stage, type StageResult } from '../worker/pipeline.js';
import { inCohort } from './cohort.js';
import { EMPTY_TALLY, type Tally } from './guardrails.js';

/** The live route of a tenant under a rollout at cohort or ramp: which share, which candidate stages. */
export interface LiveRoute {
  rolloutId: string;
  share: number;
  candidate: Stage[];
  /**
   * Whether a record takes the candidate; absent: its key is in the cohort at `share`
   * (inCohort). An operator-wide rollout routes whole tenants (tenantInCohort), and its route
   * is live even at share 0 when it names tenants.
   */
  admits?: (tenant: string, key: string) => boolean;
}

function isRouted(route: LiveRoute | null): route is LiveRoute {
  return route !== null && (route.admits !== undefined || route.share > 0);
}

function admits(route: LiveRoute, tenant: string, key: string): boolean {
  return route.admits ? route.admits(tenant, key) : inCohort(route.rolloutId, tenant, key, route.share);
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
      const dropped: DeadLetter[] = [];
      const byTenant = new Map<string, LogRecord[]>();
      for (const r of records) {
        let list = byTenant.get(r.tenant);
        if (!list) byTenant.set(r.tenant, (list = []));
        list.push(r);
      }
      for (const [tenant, list] of byTenant) {
        const route = routeOf(tenant);
        if (!isRouted(route)) {
          live.push(...list);
          continue;
        }
        const inside: LogRecord[] = [];
        for (const r of list) (admits(route, tenant, r.key) ? inside : live).push(r);
        const started = performance.now();
        const p = inside.length === 0 ? { live: [], dead: [], held: [], dropped: [] } : await processBatch(inside, route.candidate, ctx);
        const cost = performance.now() - started;
        live.push(...p.live);
        dead.push(...p.dead);
        const outside = list.length - inside.length;
        observe(route.rolloutId, tenant, { ...EMPTY_TALLY, events: inside.length, dead: p.dead.length, dropped: inside.length - p.live.length - p.dead.length - p.held.length, costMs: cost }, { ...EMPTY_TALLY, events: outside });
        held.push(...p.held);
        dropped.push(...p.dropped);
      }
      return { live, dead, held, dropped };
    },
  };
}

/**
 * The cohort route in place of a live stage that a change replaces (a pipeline version
 * replaces `transform`): for a tenant under such a rollout, the records of keys in the cohort
 * go through the candidate's stages instead of `stage`, the others through `stage`. Both sides
 * are tallied in the same batch: the cohort as the candidate did, the baseline as the live
 * stage did over the other keys (events, dead-lettered, dropped, time).
 */
export function routeInPlaceOf(stage: Stage, routeOf: (tenant: string) => LiveRoute | null, observe: (rolloutId: string, tenant: string, cohort: Tally, baseline: Tally) => void): Stage {
  return {
    name: stage.name,
    async run(records, ctx) {
      let routed: Map<string, { route: LiveRoute; inside: LogRecord[]; outside: LogRecord[] }> | null = null;
      const plain: LogRecord[] = [];
      // Looked up once per tenant and batch.
      const routes = new Map<string, LiveRoute | null>();
      for (const r of records) {
        let route = routes.get(r.tenant);
        if (route === undefined) routes.set(r.tenant, (route = routeOf(r.tenant)));
        if (!isRouted(route)) {
          plain.push(r);
          continue;
        }
        routed ??= new Map();
        let t = routed.get(r.tenant);
        if (!t) routed.set(r.tenant, (t = { route, inside: [], outside: [] }));
        (admits(route, r.tenant, r.key) ? t.inside : t.outside).push(r);
      }
      if (!routed) return stage.run(records, ctx);
      const out: Required<StageResult> = { live: [], dead: [], held: [], dropped: [] };
      const add = (p: StageResult) => {
        out.live.push(...p.live);
        out.dead.push(...p.dead);
        out.held.push(...(p.held ?? []));
        out.dropped.push(...(p.dropped ?? []));
      };
      if (plain.length > 0) add(await stage.run(plain, ctx));
      for (const [tenant, { route, inside, outside }] of routed) {
        const t0 = performance.now();
        const c = inside.length === 0 ? null : await processBatch(inside, route.candidate, ctx);
        const t1 = performance.now();
        const b = outside.length === 0 ? null : await stage.run(outside, ctx);
        const t2 = performance.now();
        if (c) add(c);
        if (b) add(b);
        const tally = (n: number, p: StageResult | null, costMs: number): Tally => ({
          ...EMPTY_TALLY,
          events: n,
          dead: p?.dead.length ?? 0,
          dropped: p ? n - p.live.length - p.dead.length - (p.held?.length ?? 0) : 0,
          costMs,
        });
        observe(route.rolloutId, tenant, tally(inside.length, c, t1 - t0), tally(outside.length, b, t2 - t1));
      }
      return out;
    },
  };
}
