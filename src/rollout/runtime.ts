import type { Clock } from '../core/clock.js';
import { OPERATOR_SCOPE } from '../core/operator.js';
import type { ViewDef } from '../core/query.js';
import type { LogRecord } from '../core/types.js';
import type { EnrichOptions } from '../worker/enrich.js';
import type { Catalog } from '../ports/catalog.js';
import { mergeDiff, ZERO_DIFF, type RolloutDiff, type RolloutSide, type RolloutTally } from '../ports/rollouts.js';
import { sampleKey, type ViewDiff } from '../ports/view-diff.js';
import { compile, newAjv } from '../schema/registry.js';
import { compileStored } from '../transform/registry.js';
import { SaltCache } from '../transform/salts.js';
import { processBatch, type Processed, type Stage, type StageContext } from '../worker/pipeline.js';
import { enforceSchema, enrichStages, missingStages, operatorVersionStages, pipelineVersionStages, REPLACEABLE, schemaStages, type ChangeStages } from './changes.js';
import { cohortPoint, COHORT_POINTS, tenantInCohort } from './cohort.js';
import { diffBatch, EMPTY_DIFF } from './diff.js';
import { EMPTY_TALLY, addTally } from './guardrails.js';
import { isLive, shadowSample, type Rollout } from './machine.js';
import { fromRecord, storedCandidate } from './service.js';
import { routeByCohort, routeInPlaceOf, type LiveRoute } from './route.js';
import { diffViews } from './view-diff.js';

/** The consumer group of the shadow run (its own offsets; it stores nothing). */
export const SHADOW_GROUP = 'rollout-shadow';

/**
 * The largest share of the store thread's time the shadow takes: after each batch it waits
 * (1 / SHADOW_DUTY − 1) times as long as the batch took, so that live processing keeps the
 * rest. Under a burst the shadow falls behind and catches up after (it has its own offsets),
 * as a backfill does.
 */
export const SHADOW_DUTY = 0.2;

/** Records the shadow runs at a time before it lets the live consumer's work go first. */
export const SHADOW_SLICE = 500;

/** Samples kept per diff kind and per view, and per batch flush (the catalog keeps at most this many of each kind and view). */
export const DIFF_SAMPLES = 100;

/** How long a tenant's view definitions are used before they are read again from the store (ms): a view declared meanwhile is compared from then on. */
export const VIEWS_REFRESH_MS = 5_000;

const NOTHING_FOLLOWED: ReadonlySet<string> = new Set();

interface Active {
  rollout: Rollout;
  stages: ChangeStages;
}

/**
 * How long a promoted pipeline version stays routed to every key after its promote (ms): the
 * workers' registry sees the new live version within `events.schemaRefreshMs` (1 s by
 * default) of the catalog's epoch moving, so no event falls back to the old version between.
 */
export const PROMOTED_GRACE_MS = 10_000;

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
  private diffs = new Map<string, RolloutDiff>();
  /** Per rollout, the view cells sampled in the catalog or in `diffs`: later batches of them add to their samples. */
  private followed = new Map<string, Set<string>>();
  private views = new Map<string, { at: number; defs: readonly ViewDef[] }>();
  /** Pipeline versions promoted in the last PROMOTED_GRACE_MS, still routed to every key. */
  private promoted = new Map<string, Active & { until: number }>();
  private lastShadowEnd = 0;
  /** Tenants' redaction salts, for an operator pipeline's candidate. */
  private readonly salts: SaltCache;

  constructor(
    private readonly catalog: Catalog,
    private readonly clock: Pick<Clock, 'now'> & Partial<Pick<Clock, 'sleep'>>,
    /** The live enrichment (switches and plugins), for an enrichment rollout's candidate; absent: such a rollout's candidate changes nothing. */
    private readonly enrich?: () => Promise<EnrichOptions>,
    /** A tenant's view definitions (the store's), for the per-view compare; absent: views are not compared. */
    private readonly viewsOf?: (tenant: string) => Promise<readonly ViewDef[]>,
  ) {
    this.salts = new SaltCache(catalog.pipelines);
  }

  /** Whether any rollout is active (the shadow group runs only then). */
  get any(): boolean {
    return this.active.size > 0;
  }

  /** When the oldest active rollout began (epoch ms; null when none): the shadow compares events received from then on. */
  get since(): number | null {
    let min: number | null = null;
    for (const a of this.active.values()) if (min === null || a.rollout.created_at < min) min = a.rollout.created_at;
    return min;
  }

  /** Loads the active rollouts and builds each one's candidate stages. Answers the rollouts that were active and are no more. */
  async refresh(rollouts?: readonly Rollout[]): Promise<{ tenant: string; id: string }[]> {
    const list = rollouts ?? (await this.catalog.rollouts.active()).map(fromRecord);
    const next = new Map<string, Active>();
    for (const r of list) {
      if (r.state === 'promoted' || r.state === 'rolled_back' || r.state === 'aborted') continue;
      const prev = this.active.get(r.id);
      next.set(r.id, { rollout: r, stages: prev && prev.stages.missing === undefined ? prev.stages : await this.candidateStages(r) });
    }
    const gone = [...this.active.values()].filter((a) => !next.has(a.rollout.id));
    for (const a of gone) {
      if (!('pipeline_version' in a.rollout.change) && !('operator_pipeline_version' in a.rollout.change) && !('enrich' in a.rollout.change)) continue;
      const now = await this.catalog.rollouts.get(a.rollout.tenant, a.rollout.id);
      if (now?.state === 'promoted') this.promoted.set(a.rollout.id, { rollout: { ...a.rollout, share: 100 }, stages: a.stages, until: this.clock.now() + PROMOTED_GRACE_MS });
    }
    for (const [id, p] of this.promoted) if (p.until <= this.clock.now()) this.promoted.delete(id);
    for (const id of this.followed.keys()) if (!next.has(id)) this.followed.delete(id);
    this.active = next;
    return gone.map((a) => ({ tenant: a.rollout.tenant, id: a.rollout.id }));
  }

  private async candidateStages(r: Rollout): Promise<ChangeStages> {
    const found = await storedCandidate(this.catalog, r);
    switch (found.kind) {
      case 'missing':
        return missingStages(found.missing);
      case 'enrich':
        return this.enrich ? enrichStages(found.document, this.enrich) : { candidate: [], replaces: null };
      case 'operator_pipeline':
        return operatorVersionStages(found.stored.version, compileStored(found.stored.steps, found.stored.version), this.salts.of);
      case 'pipeline':
        return pipelineVersionStages(found.stored.version, compileStored(found.stored.steps, found.stored.version), await this.catalog.pipelines.salt(r.tenant));
    }
    const { type, version, schema, owner } = found.stored;
    const compiled = compile(newAjv(), schema, version, owner);
    return schemaStages(
      enforceSchema(type, version, (rec) => {
        let props: unknown;
        try {
          props = JSON.parse(rec.properties);
        } catch {
          return null;
        }
        return compiled.check(props);
      }),
    );
  }

  /** The rollouts that apply to a tenant's records: its own, and the operator-wide ones (every tenant's). */
  private forTenant(tenant: string): Active[] {
    const out: Active[] = [];
    for (const a of this.active.values()) if (a.rollout.tenant === tenant || a.rollout.tenant === OPERATOR_SCOPE) out.push(a);
    return out;
  }

  /**
   * Adds to the tally of the rollout's current bucket: the minute's start, or the phase's start
   * when the phase began within this minute. A phase's window reads buckets from its start on
   * (see evaluateAll), so what the previous phase observed (the shadow's candidate runs) never
   * counts in the next phase's first decision.
   */
  private count(id: string, side: RolloutSide, t: RolloutTally): void {
    const a = this.active.get(id);
    const bucket = Math.max(Math.floor(this.clock.now() / 60_000) * 60_000, a?.rollout.phase_started_at ?? 0);
    const k = `${id}\u0000${bucket}\u0000${side}`;
    this.tallies.set(k, addTally(this.tallies.get(k) ?? EMPTY_TALLY, t));
  }

  /** Reads the view definitions of `tenants` not read in the last VIEWS_REFRESH_MS; a tenant whose read fails keeps what it had (or none). */
  private async loadViews(tenants: Iterable<string>): Promise<void> {
    if (!this.viewsOf) return;
    const now = this.clock.now();
    for (const t of tenants) {
      const had = this.views.get(t);
      if (had && now - had.at < VIEWS_REFRESH_MS) continue;
      const defs = await this.viewsOf(t).catch(() => had?.defs ?? []);
      this.views.set(t, { at: now, defs });
    }
  }

  private viewDefs = (tenant: string): readonly ViewDef[] => this.views.get(tenant)?.defs ?? [];

  /** Adds a batch's diff to what the next flush adds to the catalog, and follows the view cells it samples. */
  private addDiff(id: string, d: RolloutDiff): void {
    const merged = mergeDiff(this.diffs.get(id) ?? ZERO_DIFF, d, DIFF_SAMPLES);
    this.diffs.set(id, merged);
    if (merged.views) this.followed.set(id, followedOf(merged.views, this.followed.get(id)));
  }

  /** The route of `tenant` for the change that replaces `stage` (null: added after the live stages). */
  private routeOf(tenant: string, stage: string | null): LiveRoute | null {
    // One route per tenant and stage: the first active rollout with a share (one per change kind at most).
    for (const a of this.forTenant(tenant)) {
      // A candidate not found yet is not routed: its cohort's events would count as passing a change that never ran.
      if (!isLive(a.rollout) || a.stages.replaces !== stage || a.stages.missing !== undefined) continue;
      const r = a.rollout;
      if (r.tenant !== OPERATOR_SCOPE) return { rolloutId: r.id, share: r.share, candidate: a.stages.candidate };
      // Operator-wide: the whole tenant is in or out; a tenant out of the cohort is routed too, as the baseline.
      const inside = tenantInCohort(r.id, tenant, r.share, r.tenants ?? []);
      return { rolloutId: r.id, share: r.share, candidate: a.stages.candidate, admits: () => inside };
    }
    if (stage !== null) {
      for (const p of this.promoted.values()) {
        if ((p.rollout.tenant === tenant || p.rollout.tenant === OPERATOR_SCOPE) && p.stages.replaces === stage) return { rolloutId: p.rollout.id, share: 100, candidate: p.stages.candidate };
      }
    }
    return null;
  }

  private observe = (id: string, _tenant: string, cohort: RolloutTally, baseline: RolloutTally): void => {
    if (!this.active.has(id)) return;
    this.count(id, 'cohort', cohort);
    this.count(id, 'baseline', baseline);
  };

  /**
   * The live group's stages under the rollouts: each live stage that a change may replace
   * routes the cohort's keys to the candidate in its place (a pipeline version's transform),
   * and a last stage sends the cohort's keys through the candidates added after the live
   * stages (a schema version's enforcement).
   */
  liveStages(live: readonly Stage[]): Stage[] {
    return [...live.map((s) => (REPLACEABLE.has(s.name) ? routeInPlaceOf(s, (tenant) => this.routeOf(tenant, s.name), this.observe) : s)), this.routeStage()];
  }

  /** The live group's last stage: keys in a rollout's cohort also go through its candidate. */
  routeStage(): Stage {
    return routeByCohort((tenant) => this.routeOf(tenant, null), this.observe);
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
        let own = 0;
        const byRollout = new Map<Active, LogRecord[]>();
        const tenants = new Map<string, Active[]>();
        for (const r of records) {
          let mine = tenants.get(r.tenant);
          if (!mine) tenants.set(r.tenant, (mine = this.forTenant(r.tenant)));
          for (const a of mine) {
            if (r.receivedAt < a.rollout.created_at) continue;
            const sample = shadowSample(a.rollout);
            if (sample < 1 && cohortPoint('shadow:' + a.rollout.id, r.tenant, r.key) >= Math.round(sample * COHORT_POINTS)) continue;
            let list = byRollout.get(a);
            if (!list) byRollout.set(a, (list = []));
            list.push(r);
          }
        }
        await this.loadViews([...tenants].filter(([, mine]) => mine.length > 0).map(([t]) => t));
        for (const [a, all] of byRollout) {
          // A candidate published after the controller's last pass (a schema version pushed
          // just before its events) is looked up now. While it is still missing, the records
          // are not compared at all: compared with an empty candidate they would count as
          // identical, a verdict on a change that never ran.
          if (a.stages.missing !== undefined) a.stages = await this.candidateStages(a.rollout);
          if (a.stages.missing !== undefined) continue;
          for (let from = 0; from < all.length; from += SHADOW_SLICE) {
            // Between slices the live consumer's work goes first: a large shadow batch never holds the thread for long.
            if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
            const sliceStarted = performance.now();
            const list = all.slice(from, from + SHADOW_SLICE);
            const { active, candidate, activeMs, candidateMs } = await runBoth(list, live, a.stages, ctx);
            const d = diffBatch(list, active, candidate, EMPTY_DIFF, DIFF_SAMPLES);
            const id = a.rollout.id;
            const views = this.viewsOf ? diffViews(active.live, candidate.live, this.viewDefs, this.followed.get(id) ?? NOTHING_FOLLOWED, DIFF_SAMPLES) : undefined;
            this.addDiff(id, views ? { ...d, views } : d);
            const diffs = d.changed + d.dropped + d.dead_lettered;
            const considered = list.length - active.held.length;
            if (!isLive(a.rollout)) {
              // Shadow and compare: the candidate's run is the cohort, the active run on the same events the baseline.
              const dropped = (p: typeof active) => considered - p.live.length - p.dead.length;
              this.count(id, 'cohort', { events: considered, dead: candidate.dead.length, dropped: Math.max(0, dropped(candidate)), compared: d.compared, diffs, costMs: candidateMs });
              this.count(id, 'baseline', { events: considered, dead: active.dead.length, dropped: Math.max(0, dropped(active)), compared: 0, diffs: 0, costMs: activeMs });
            } else this.count(id, 'cohort', { ...EMPTY_TALLY, compared: d.compared, diffs });
            own += performance.now() - sliceStarted;
          }
        }
        // The batch's cost: its own slices, and its read from the log (since the last batch ended), capped at a second.
        const took = Math.min(1_000, own + started - Math.max(started - 1_000, this.lastShadowEnd));
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
    for (const [id, d] of diffs) {
      const stored = await this.catalog.rollouts.addDiff(id, d, DIFF_SAMPLES);
      // The catalog's samples (another process may have kept some), and those added since this flush began.
      if (stored.views) this.followed.set(id, followedOf([...stored.views, ...(this.diffs.get(id)?.views ?? [])]));
    }
  }
}

/**
 * The live stages and the candidate over the same records. The stages before the one the
 * candidate replaces (or all of them, when it replaces none) run once and both sides go on
 * from their output. Times in ms: each side's whole path, the shared part included.
 */
async function runBoth(records: readonly LogRecord[], live: readonly Stage[], change: ChangeStages, ctx: StageContext) {
  const at = change.replaces === null ? -1 : live.findIndex((s) => s.name === change.replaces);
  const shared = at < 0 ? live : live.slice(0, at);
  const t0 = performance.now();
  const first = await processBatch(records, shared, ctx);
  const t1 = performance.now();
  const activeRest = at < 0 ? null : await processBatch(first.live, live.slice(at), ctx);
  const t2 = performance.now();
  const candidateRest = await processBatch(first.live, at < 0 ? change.candidate : [...change.candidate, ...live.slice(at + 1)], ctx);
  const t3 = performance.now();
  return { active: activeRest ? join(first, activeRest) : first, candidate: join(first, candidateRest), activeMs: t2 - t0, candidateMs: t1 - t0 + (t3 - t2) };
}

function join(a: Processed, b: Processed): Processed {
  return { live: b.live, dead: [...a.dead, ...b.dead], held: [...a.held, ...b.held], dropped: [...a.dropped, ...b.dropped], outcomes: b.outcomes };
}

/** The cells of the samples of `views`, with those of `also`. */
function followedOf(views: readonly ViewDiff[], also?: ReadonlySet<string>): Set<string> {
  const out = new Set(also);
  for (const v of views) for (const s of v.samples) out.add(sampleKey(v, s));
  return out;
}
