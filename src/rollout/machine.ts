import { SluiceError } from '../core/errors.js';
import { changeKind, GLOBAL_KINDS, parseDuration, type Change, type ChangeKind, type RolloutSpec } from './document.js';
import { judge, type Check, type Tally } from './guardrails.js';

/**
 * The rollout state machine, pure: each function takes a rollout and the time (and, for
 * `evaluate`, what the workers observed) and answers the next rollout, with the decision that
 * led there appended to its history. The controller (the store thread's periodic job) reads
 * the tallies, calls `evaluate` and saves; the API calls the operator's transitions.
 *
 *     shadow → compare → cohort → ramp (one phase per percent) → promoted
 *        any active step → holding (too few events, or auto is false) → back to the step
 *        any active step ⇄ paused;  any active step → rolled_back (a breach) | aborted
 */
export type StepName = 'shadow' | 'compare' | 'cohort' | 'ramp';
export type RolloutState = StepName | 'holding' | 'paused' | 'promoted' | 'rolled_back' | 'aborted';
export const TERMINAL: ReadonlySet<RolloutState> = new Set(['promoted', 'rolled_back', 'aborted']);

/** One phase: a step at one share, held for its duration. Shadow and compare are share 0. */
export interface Phase {
  step: StepName;
  /** Percent of the tenant's entity keys on the candidate (operator-wide: of the tenants). */
  share: number;
  /** Operator-wide: the tenants named by the cohort step, in from that step on whatever the share ([] otherwise). */
  tenants: string[];
  durationMs: number;
  /** The fraction of each batch the shadow consumer runs the candidate on. */
  sample: number;
}

export type Verdict = 'start' | 'advance' | 'hold' | 'roll_back' | 'promote' | 'pause' | 'resume' | 'abort' | 'repair';

/** A decision and the numbers behind it (`checks`: each guardrail's values, tolerance and sample sizes). */
export interface Decision {
  at: number;
  actor: string;
  verdict: Verdict;
  /** The step the decision was taken in, and its share. */
  step: StepName;
  share: number;
  reason: string;
  /** The window judged: [from, to) epoch ms. */
  window?: { from: number; to: number };
  cohort?: Tally;
  baseline?: Tally | null;
  checks?: Check[];
  /** A hold judged again on newer numbers (the reason, window and tallies are that judgement's): when, epoch ms. `at` is when the hold began. */
  last_at?: number;
}


/**
 * A stored event a pipeline repair withdraws: [partition, offset, ts] of the rollout's tenant,
 * or [partition, offset, ts, tenant] for an operator version (which ran for every tenant).
 */
export type Withdrawing = [number, number, number] | [number, number, number, string];

/**
 * Rollback with repair: the events the candidate produced while live, [from, to), to be
 * re-derived with the active version from the log. `repaired` and `past_retention` are
 * filled in when the repair runs.
 */
export interface Repair {
  status: 'pending' | 'done' | 'not_needed';
  from: number | null;
  to: number | null;
  repaired: number;
  past_retention: number;
  /** A pipeline version's repair: the positions of the events it stored, saved before they are withdrawn (see repair-pipeline.ts). */
  withdrawing?: Withdrawing[];
  /** A pipeline version's repair between sweeps: events re-derived so far, stored and dead-lettered by the candidate. */
  rederived_stored?: number;
  rederived_dead?: number;
}

export interface Rollout {
  id: string;
  tenant: string;
  change: Change;
  kind: ChangeKind;
  spec: RolloutSpec;
  state: RolloutState;
  /** Index into phasesOf(spec). */
  phase: number;
  /** Percent of keys on the candidate now (0–100); operator-wide, percent of the tenants by their hash. */
  share: number;
  /** Operator-wide rollouts: the named tenants on the candidate now, whatever the share (absent in a tenant's rollout). */
  tenants?: string[];
  phase_started_at: number;
  /** The state to return to from paused or holding. */
  resume_to: StepName | null;
  paused_at: number | null;
  hold_reason: string | null;
  /** When the share first went above 0 (the start of what a rollback must repair). */
  live_since: number | null;
  decisions: Decision[];
  repair: Repair | null;
  created_at: number;
  created_by: string;
  updated_at: number;
}

/** The phases a spec goes through, in order. */
export function phasesOf(spec: RolloutSpec): Phase[] {
  const phases: Phase[] = [];
  let sample = 1;
  let tenants: string[] = [];
  for (const s of spec.steps) {
    if ('shadow' in s) {
      sample = s.shadow.sample;
      phases.push({ step: 'shadow', share: 0, tenants, durationMs: parseDuration(s.shadow.duration)!, sample });
    } else if ('compare' in s) phases.push({ step: 'compare', share: 0, tenants, durationMs: parseDuration(s.compare.duration)!, sample });
    else if ('cohort' in s) {
      tenants = s.cohort.tenants ?? [];
      phases.push({ step: 'cohort', share: s.cohort.percent ?? 0, tenants, durationMs: parseDuration(s.cohort.duration)!, sample });
    } else for (const p of s.ramp.percents) phases.push({ step: 'ramp', share: p, tenants, durationMs: parseDuration(s.ramp.step_duration)!, sample });
  }
  return phases;
}

/** Whether a phase takes anything live: a share above 0 or named tenants. */
function liveIn(p: Phase): boolean {
  return p.share > 0 || p.tenants.length > 0;
}

/** Whether the candidate is live for some keys (or tenants) now. */
export function isLive(r: Pick<Rollout, 'share' | 'tenants'>): boolean {
  return r.share > 0 || (r.tenants?.length ?? 0) > 0;
}

/** A new rollout in its first phase. `tenant` is the operator's scope for an operator-wide rollout. */
export function startRollout(id: string, tenant: string, spec: RolloutSpec, now: number, actor: string): Rollout {
  const first = phasesOf(spec)[0]!;
  const global = GLOBAL_KINDS.has(changeKind(spec.change));
  return {
    id,
    tenant,
    change: spec.change,
    kind: changeKind(spec.change),
    spec,
    state: first.step,
    phase: 0,
    share: first.share,
    ...(global ? { tenants: first.tenants } : {}),
    phase_started_at: now,
    resume_to: null,
    paused_at: null,
    hold_reason: null,
    live_since: liveIn(first) ? now : null,
    decisions: [{ at: now, actor, verdict: 'start', step: first.step, share: first.share, reason: `rollout created; ${first.step} for ${fmtMs(first.durationMs)}` }],
    repair: null,
    created_at: now,
    created_by: actor,
    updated_at: now,
  };
}

export function isActive(r: Rollout): boolean {
  return !TERMINAL.has(r.state);
}

/** The step the rollout is in (also while holding or paused). */
export function currentStep(r: Rollout): StepName {
  return phasesOf(r.spec)[r.phase]!.step;
}

/** The shadow consumer's sample fraction for this rollout now; 0 when it is over. */
export function shadowSample(r: Rollout): number {
  return isActive(r) ? phasesOf(r.spec)[r.phase]!.sample : 0;
}

/** When the current phase's duration is up (epoch ms). */
export function phaseEndsAt(r: Rollout): number {
  return r.phase_started_at + phasesOf(r.spec)[r.phase]!.durationMs;
}

/** The window the controller must observe for `evaluate`: the current phase so far. */
export function observationWindow(r: Rollout, now: number): { from: number; to: number } {
  return { from: r.phase_started_at, to: Math.max(r.phase_started_at, now) };
}

function record(r: Rollout, d: Omit<Decision, 'step' | 'share'> & Partial<Pick<Decision, 'step' | 'share'>>): Decision[] {
  return [...r.decisions, { step: currentStep(r), share: r.share, ...d }];
}

function moveTo(r: Rollout, phase: number, now: number): Pick<Rollout, 'phase' | 'state' | 'share' | 'tenants' | 'phase_started_at' | 'resume_to' | 'hold_reason' | 'live_since'> {
  const p = phasesOf(r.spec)[phase]!;
  return {
    phase,
    state: p.step,
    share: p.share,
    ...(r.tenants === undefined ? {} : { tenants: p.tenants }),
    phase_started_at: now,
    resume_to: null,
    hold_reason: null,
    live_since: r.live_since ?? (liveIn(p) ? now : null),
  };
}

function rollBack(r: Rollout, now: number, d: Omit<Decision, 'at' | 'step' | 'share' | 'verdict'>, state: 'rolled_back' | 'aborted'): Rollout {
  const decisions = record(r, { ...d, at: now, verdict: state === 'rolled_back' ? 'roll_back' : 'abort' });
  const repair: Repair =
    r.live_since === null ? { status: 'not_needed', from: null, to: null, repaired: 0, past_retention: 0 } : { status: 'pending', from: r.live_since, to: now, repaired: 0, past_retention: 0 };
  return { ...r, state, share: 0, ...(r.tenants === undefined ? {} : { tenants: [] }), resume_to: null, hold_reason: null, paused_at: null, decisions, repair, updated_at: now };
}

function promoted(r: Rollout, now: number, d: Omit<Decision, 'at' | 'step' | 'share' | 'verdict'>): Rollout {
  const decisions = record(r, { ...d, at: now, verdict: 'promote' });
  return { ...r, state: 'promoted', share: 100, resume_to: null, hold_reason: null, paused_at: null, live_since: r.live_since ?? now, decisions, updated_at: now };
}

/**
 * One evaluation. `cohort` is what the candidate did in the window (in shadow and compare:
 * the shadow consumer's candidate output over the sampled events; from cohort on: the live
 * events of keys in the cohort); `baseline` is the active version over the same minutes (the
 * same sampled events in shadow, the keys outside the cohort from cohort on; null at share
 * 100, which leaves no baseline).
 *
 * - A breach on enough events rolls back at once, whether or not the step's time is up.
 * - When the step's time is up: a pass advances (auto) or waits for an operator (auto false,
 *   state holding); too few events holds with the reason, and the step is judged again at
 *   the next evaluation. A hold never passes and never rolls back.
 * - Paused and finished rollouts are left as they are.
 */
export function evaluate(r: Rollout, now: number, cohort: Tally, baseline: Tally | null): Rollout {
  if (!isActive(r) || r.state === 'paused') return r;
  const window = observationWindow(r, now);
  const j = judge(r.spec.guardrails, cohort, baseline);
  const numbers = { window, cohort, baseline, checks: j.checks };
  if (j.verdict === 'breach') return rollBack(r, now, { actor: 'controller', reason: j.reason, ...numbers }, 'rolled_back');
  if (now < phaseEndsAt(r)) return r;
  if (j.verdict === 'hold' || !r.spec.auto) {
    const reason = j.verdict === 'hold' ? j.reason : `step done, every guardrail within its tolerance; waiting for an advance (auto is false): sluice rollout advance ${r.id}, or POST /v1/rollouts/${r.id}/advance`;
    const last = r.decisions.at(-1)!;
    if (r.state === 'holding' && last.verdict === 'hold' && last.actor === 'controller') {
      // Still holding: the hold decision is brought up to date in place at every evaluation,
      // its numbers and `last_at` (when it was last judged: a `last_at` that stood still read as
      // a controller that had stopped), instead of a new decision per evaluation (52 decisions in
      // two minutes, a megabyte an hour per held rollout). Not audited again (service.ts save).
      return { ...r, hold_reason: reason, decisions: [...r.decisions.slice(0, -1), { ...last, reason, ...numbers, last_at: now }], updated_at: now };
    }
    if (r.state === 'holding' && r.hold_reason === reason) return r;
    return { ...r, state: 'holding', resume_to: currentStep(r), hold_reason: reason, decisions: record(r, { at: now, actor: 'controller', verdict: 'hold', reason, ...numbers }), updated_at: now };
  }
  return next(r, now, 'controller', `${currentStep(r)} at ${r.share}% passed: ${j.reason}`, numbers);
}

function next(r: Rollout, now: number, actor: string, reason: string, numbers: Partial<Decision>): Rollout {
  const phases = phasesOf(r.spec);
  if (r.phase + 1 >= phases.length) return promoted(r, now, { actor, reason, ...numbers });
  const decisions = record(r, { at: now, actor, verdict: 'advance', reason, ...numbers });
  return { ...r, ...moveTo(r, r.phase + 1, now), decisions, updated_at: now };
}

function conflict(r: Rollout, what: string): SluiceError {
  const next = TERMINAL.has(r.state) ? '; start a new rollout' : r.state === 'paused' && what === 'pause' ? ' again; resume it to go on' : '';
  return new SluiceError('SLUICE_ERR_CONFLICT', `rollout ${r.id} is ${r.state}: cannot ${what}${next}`);
}

/** The operator moves to the next phase now (or promotes after the last), whatever the step's time and guardrails. */
export function advance(r: Rollout, now: number, actor: string): Rollout {
  if (!isActive(r) || r.state === 'paused') throw conflict(r, 'advance' + (r.state === 'paused' ? ' (resume it first)' : ''));
  return next(r, now, actor, `advanced by ${actor}`, {});
}

/** Freezes the rollout where it is: the share stays, the controller stops judging. */
export function pause(r: Rollout, now: number, actor: string): Rollout {
  if (!isActive(r) || r.state === 'paused') throw conflict(r, 'pause');
  return { ...r, state: 'paused', resume_to: currentStep(r), paused_at: now, decisions: record(r, { at: now, actor, verdict: 'pause', reason: `paused by ${actor}` }), updated_at: now };
}

/** Resumes a paused rollout in its step; the paused time does not count toward the step's duration. */
export function resume(r: Rollout, now: number, actor: string): Rollout {
  if (r.state !== 'paused') throw conflict(r, 'resume (only a paused rollout resumes)');
  const step = currentStep(r);
  return {
    ...r,
    state: step,
    resume_to: null,
    hold_reason: null,
    phase_started_at: r.phase_started_at + (now - (r.paused_at ?? now)),
    paused_at: null,
    decisions: record(r, { at: now, actor, verdict: 'resume', reason: `resumed by ${actor}` }),
    updated_at: now,
  };
}

/** Stops the rollout: the share returns to 0 at once; what the candidate produced while live is to be repaired. */
export function abort(r: Rollout, now: number, actor: string): Rollout {
  if (!isActive(r)) throw conflict(r, 'abort');
  return rollBack(r, now, { actor, reason: `aborted by ${actor}` }, 'aborted');
}

/** The operator makes the candidate live for every key now, skipping the remaining steps. */
export function promote(r: Rollout, now: number, actor: string): Rollout {
  if (!isActive(r)) throw conflict(r, 'promote');
  return promoted(r, now, { actor, reason: `promoted by ${actor}` });
}

function fmtMs(ms: number): string {
  for (const [u, n] of [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]] as const) if (ms % n === 0) return `${ms / n}${u}`;
  return `${ms / 1000}s`;
}

/** Records a finished repair: how many events were re-derived with the active version, how many were past the log's retention. */
export function repaired(r: Rollout, now: number, counts: { repaired: number; past_retention: number }, reason: string): Rollout {
  if (r.repair?.status !== 'pending') throw conflict(r, 'repair (nothing to repair)');
  return {
    ...r,
    repair: { ...r.repair, status: 'done', repaired: counts.repaired, past_retention: counts.past_retention },
    decisions: record(r, { at: now, actor: 'controller', verdict: 'repair', reason }),
    updated_at: now,
  };
}
