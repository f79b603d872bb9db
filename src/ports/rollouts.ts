import { mergeViewDiffs, type ViewDiff } from './view-diff.js';

/**
 * Rollouts in the catalog: each rollout's document (kept as JSON; its shape belongs to
 * src/rollout/), the tallies the workers observe per minute for its cohort and baseline, and
 * its diff (counts and bounded samples). Every change of a rollout is audited with the
 * decision behind it.
 *
 * At most one active rollout per tenant and change kind: `create` refuses a second one with
 * SLUICE_ERR_CONFLICT (409). `save` is compare-and-set on `rev`, so the controller and an
 * operator never overwrite each other's decision silently.
 */
export interface RolloutStore {
  /** Stores a new rollout (rev 1) and audits `rollout.create`. Conflict when the tenant has an active rollout of this kind. */
  create(r: NewRolloutRecord, actor: string, detail: unknown): Promise<RolloutRecord>;

  /** One rollout; null when the tenant has none with this id. */
  get(tenant: string, id: string): Promise<RolloutRecord | null>;

  /** A tenant's rollouts, newest first. */
  list(tenant: string, limit?: number): Promise<RolloutRecord[]>;

  /** The active rollouts of every tenant (the controller's work list), oldest first. */
  active(): Promise<RolloutRecord[]>;

  /**
   * Replaces a rollout's state and document if its rev is still `r.rev` (then rev + 1), and
   * audits `action` with `detail` (the decision and its numbers). Null when the rev moved:
   * someone else changed it meanwhile; read it again.
   *
   * With `makeLive`, the same transaction makes that stored pipeline version live (as
   * PipelineStore.activate does, audited `pipeline.activate` with `{before, rollout}`), so no
   * reader ever sees a promoted rollout whose version is not yet live. Its version must exist
   * (SLUICE_ERR_NOT_FOUND otherwise, and nothing is saved).
   */
  /** `action` null: nothing audited (a decision brought up to date in place, audited when it was made). */
  save(r: RolloutRecord, actor: string, action: string | null, detail: unknown, makeLive?: MakeLive): Promise<RolloutRecord | null>;

  /**
   * Adds tallies observed in bucket `minute` (epoch ms: a minute's start, or a phase's start
   * when the phase began within that minute) to the rollout's side.
   */
  addTallies(id: string, rows: readonly { minute: number; side: RolloutSide; tally: RolloutTally }[]): Promise<void>;

  /** Both sides' tallies summed over the buckets in [from, to). */
  tallies(id: string, from: number, to: number): Promise<Record<RolloutSide, RolloutTally>>;

  /**
   * Adds a batch's diff: counts add up; samples are kept up to `limitPerKind` of each kind,
   * first come first kept; views merge as `mergeViewDiffs` says (up to `limitPerKind` samples
   * per view). Answers the diff as stored after the merge.
   */
  addDiff(id: string, diff: RolloutDiff, limitPerKind: number): Promise<RolloutDiff>;

  /** The rollout's diff so far (zeros and no samples before any). */
  diff(id: string): Promise<RolloutDiff>;
}

export type RolloutSide = 'cohort' | 'baseline';

/** A pipeline version a rollout's promote makes live: `scope` is a tenant, or the operator's scope. */
export interface MakeLive {
  scope: string;
  version: number;
}

export interface NewRolloutRecord {
  id: string;
  tenant: string;
  /** The change kind: one active rollout per tenant and kind. */
  kind: string;
  state: string;
  active: boolean;
  createdAt: number;
  updatedAt: number;
  doc: unknown;
}

export interface RolloutRecord extends NewRolloutRecord {
  /** Moves by one on every save. */
  rev: number;
}

/** Counts per side; costMs in milliseconds. */
export interface RolloutTally {
  events: number;
  dead: number;
  dropped: number;
  compared: number;
  diffs: number;
  costMs: number;
}

export interface RolloutDiff {
  compared: number;
  identical: number;
  changed: number;
  dropped: number;
  dead_lettered: number;
  /** Each sample has a `kind` (changed, dropped, dead_lettered). */
  samples: { kind: string }[];
  /** Per view and bucket (ports/view-diff.ts); absent in a diff stored before views were compared. */
  views?: ViewDiff[];
}

export const ZERO_TALLY: RolloutTally = { events: 0, dead: 0, dropped: 0, compared: 0, diffs: 0, costMs: 0 };
export const ZERO_DIFF: RolloutDiff = { compared: 0, identical: 0, changed: 0, dropped: 0, dead_lettered: 0, samples: [] };

/** Keeps `limitPerKind` samples of each kind, `into`'s first. */
export function mergeDiff(into: RolloutDiff, add: RolloutDiff, limitPerKind: number): RolloutDiff {
  const samples = [...into.samples];
  const per = new Map<string, number>();
  for (const s of samples) per.set(s.kind, (per.get(s.kind) ?? 0) + 1);
  for (const s of add.samples) {
    if ((per.get(s.kind) ?? 0) >= limitPerKind) continue;
    per.set(s.kind, (per.get(s.kind) ?? 0) + 1);
    samples.push(s);
  }
  return {
    compared: into.compared + add.compared,
    identical: into.identical + add.identical,
    changed: into.changed + add.changed,
    dropped: into.dropped + add.dropped,
    dead_lettered: into.dead_lettered + add.dead_lettered,
    samples,
    ...(into.views || add.views ? { views: mergeViewDiffs(into.views, add.views, limitPerKind) } : {}),
  };
}
