import type { Clock } from '../core/clock.js';
import type { LogRecord } from '../core/types.js';
import type { Catalog } from '../ports/catalog.js';
import type { RolloutSide, RolloutTally } from '../ports/rollouts.js';
import { compile, newAjv } from '../schema/registry.js';
import { processBatch, type Stage } from '../worker/pipeline.js';
import { enforceSchema, pipelineVersionStages } from './changes.js';
import { cohortPoint, COHORT_POINTS } from './cohort.js';
import { diffBatch, EMPTY_DIFF } from './diff.js';
import { EMPTY_TALLY, addTally } from './guardrails.js';
import { shadowSample, type Rollout } from './machine.js';
import { fromRecord } from './service.js';
import { routeByCohort, type LiveRoute } from './route.js';

/** The consumer group of the shadow run (its own offsets; it stores nothing). */
export const SHADOW_GROUP = 'rollout-shadow';

/**
 * The largest share of the store thread's time the shadow takes: after each batch it waits
 * (1 / SHADOW_DUTY − 1) times as long as the batch took, so that live processing keeps the
 * rest. Under a burst the shadow falls behind and catches up after (it has its own offsets),
 * as a backfill does.
 */
export const SHADOW_DUTY = 0.2;

/** Samples kept per diff kind and batch flush (the catalog keeps at most this many of each kind). */
export const DIFF_SAMPLES = 100;

interface Active {
  rollout: Rollout;
  candidate: Stage[];
}

/**
 * The rollouts as the workers of one process run them: the active rollouts and their
 * candidate stages (refreshed by the controller), the live group's cohort route, the shadow
 * group's stage, and the tallies and diffs both observe, kept in memory by minute until
 * `flush` adds them to the catalog.
 *
 * Tallies are statistics, not data: a batch retried after a transient failure or redelivered
 * after a crash may count twice in them; the events themselves are never doubled.
 */
export class RolloutRuntime {
  private active = new Map<string, Active>();
  private tallies = new Map<string, RolloutTally>();
  private diffs = new Map<string, typeof EMPTY_DIFF>();
  private lastShadowEnd = 0;

  constructor(
    private readonly catalog: Catalog,
    private readonly clock: Pick<Clock, 'now'> & Partial<Pick<Clock, 'sleep'>>,
  ) {}

  /** Whether any rollout is active (the shadow group runs only then). */
  get any(): boolean {
    return this.active.size > 0;
  }

  /** Loads the active rollouts and builds each one's candidate stages. Answers the rollouts that were active and are no more. */
  async refresh(rollouts?: readonly Rollout[]): Promise<{ tenant: string; id: string }[]> {
    const list = rollouts ?? (await this.catalog.rollouts.active()).map(fromRecord);
    const next = new Map<string, Active>();
    for (const r of list) {
      if (r.state === 'promoted' || r.state === 'rolled_back' || r.state === 'aborted') continue;
      const prev = this.active.get(r.id);
      next.set(r.id, { rollout: r, candidate: prev && prev.candidate.length > 0 ? prev.candidate : await this.candidateStages(r) });
    }
    const gone = [...this.active.values()].filter((a) => !next.has(a.rollout.id)).map((a) => ({ tenant: a.rollout.tenant, id: a.rollout.id }));
    this.active = next;
    return gone;
  }

  private async candidateStages(r: Rollout): Promise<Stage[]> {
    if ('pipeline_version' in r.change) return pipelineVersionStages(r.change);
    const { type, version } = r.change.schema;
    const v = (await this.catalog.schemas.versions(r.tenant, type)).find((s) => s.version === version);
    if (!v) return [];
    const compiled = compile(newAjv(), v.schema, v.version, v.owner);
    return [
      enforceSchema(type, version, (rec) => {
        let props: unknown;
        try {
          props = JSON.parse(rec.properties);
        } catch {
          return null;
        }
        return compiled.check(props);
      }),
    ];
  }

  private forTenant(tenant: string): Active[] {
    const out: Active[] = [];
    for (const a of this.active.values()) if (a.rollout.tenant === tenant) out.push(a);
    return out;
  }

  private count(id: string, side: RolloutSide, t: RolloutTally): void {
    const minute = Math.floor(this.clock.now() / 60_000) * 60_000;
    const k = `${id}\u0000${minute}\u0000${side}`;
    this.tallies.set(k, addTally(this.tallies.get(k) ?? EMPTY_TALLY, t));
  }

  /** The live group's last stage: keys in a rollout's cohort also go through its candidate. */
  routeStage(): Stage {
    return routeByCohort(
      (tenant): LiveRoute | null => {
        // One route per tenant: the first active rollout with a share (one per change kind at most).
        for (const a of this.forTenant(tenant)) if (a.rollout.share > 0) return { rolloutId: a.rollout.id, share: a.rollout.share, candidate: a.candidate };
        return null;
      },
      (id, _tenant, cohort, baseline) => {
        this.count(id, 'cohort', cohort);
        this.count(id, 'baseline', baseline);
      },
    );
  }

  /**
   * The shadow group's only stage: for each tenant under a rollout, a sample of its records
   * (by a hash of the key: the same keys every batch) goes through the live stages and through
   * the live stages plus the candidate; both outputs are diffed. It answers nothing live, so
   * the shadow group stores nothing and dead-letters nothing: what would fail is only counted
   * and sampled. Records received before the rollout began are skipped.
   */
  shadowStage(live: readonly Stage[]): Stage {
    return {
      name: 'shadow',
      run: async (records, ctx) => {
        if (this.active.size === 0) return { live: [], dead: [] };
        const started = performance.now();
        const byRollout = new Map<Active, LogRecord[]>();
        for (const r of records) {
          for (const a of this.forTenant(r.tenant)) {
            if (r.receivedAt < a.rollout.created_at) continue;
            const sample = shadowSample(a.rollout);
            if (sample < 1 && cohortPoint('shadow:' + a.rollout.id, r.tenant, r.key) >= Math.round(sample * COHORT_POINTS)) continue;
            let list = byRollout.get(a);
            if (!list) byRollout.set(a, (list = []));
            list.push(r);
          }
        }
        for (const [a, list] of byRollout) {
          const t0 = performance.now();
          const active = await processBatch(list, live, ctx);
          const t1 = performance.now();
          // The candidate is the live stages and then its own: it goes on from the live output (run once).
          const after = await processBatch(active.live, a.candidate, ctx);
          const candidate = { live: after.live, dead: [...active.dead, ...after.dead], held: [...active.held, ...after.held], dropped: [...active.dropped, ...after.dropped], outcomes: after.outcomes };
          const t2 = performance.now();
          const d = diffBatch(list, active, candidate, EMPTY_DIFF, DIFF_SAMPLES);
          const id = a.rollout.id;
          this.diffs.set(id, mergeDiffs(this.diffs.get(id) ?? EMPTY_DIFF, d));
          const diffs = d.changed + d.dropped + d.dead_lettered;
          const considered = list.length - active.held.length;
          if (a.rollout.share === 0) {
            // Shadow and compare: the candidate's run is the cohort, the active run on the same events the baseline.
            const dropped = (p: typeof active) => considered - p.live.length - p.dead.length;
            this.count(id, 'cohort', { events: considered, dead: candidate.dead.length, dropped: Math.max(0, dropped(candidate)), compared: d.compared, diffs, costMs: t1 - t0 + (t2 - t1) });
            this.count(id, 'baseline', { events: considered, dead: active.dead.length, dropped: Math.max(0, dropped(active)), compared: 0, diffs: 0, costMs: t1 - t0 });
          } else this.count(id, 'cohort', { ...EMPTY_TALLY, compared: d.compared, diffs });
        }
        // The batch's cost includes its read from the log (since the last batch ended), capped at a second.
        const end = performance.now();
        const took = Math.min(1_000, end - Math.max(started - 1_000, this.lastShadowEnd));
        if (this.clock.sleep && took > 1) await this.clock.sleep(took * (1 / SHADOW_DUTY - 1), ctx.signal);
        this.lastShadowEnd = performance.now();
        return { live: [], dead: [] };
      },
    };
  }

  /** Adds what was observed since the last flush to the catalog. */
  async flush(): Promise<void> {
    const tallies = this.tallies;
    const diffs = this.diffs;
    this.tallies = new Map();
    this.diffs = new Map();
    const byId = new Map<string, { minute: number; side: RolloutSide; tally: RolloutTally }[]>();
    for (const [k, tally] of tallies) {
      const [id, minute, side] = k.split('\u0000') as [string, string, RolloutSide];
      let rows = byId.get(id);
      if (!rows) byId.set(id, (rows = []));
      rows.push({ minute: Number(minute), side, tally });
    }
    for (const [id, rows] of byId) await this.catalog.rollouts.addTallies(id, rows);
    for (const [id, d] of diffs) await this.catalog.rollouts.addDiff(id, d, DIFF_SAMPLES);
  }
}

function mergeDiffs(a: typeof EMPTY_DIFF, b: typeof EMPTY_DIFF): typeof EMPTY_DIFF {
  const per = new Map<string, number>();
  const samples = [...a.samples];
  for (const s of samples) per.set(s.kind, (per.get(s.kind) ?? 0) + 1);
  for (const s of b.samples) if ((per.get(s.kind) ?? 0) < DIFF_SAMPLES) (per.set(s.kind, (per.get(s.kind) ?? 0) + 1), samples.push(s));
  return { compared: a.compared + b.compared, identical: a.identical + b.identical, changed: a.changed + b.changed, dropped: a.dropped + b.dropped, dead_lettered: a.dead_lettered + b.dead_lettered, samples };
}
