import { randomBytes } from 'node:crypto';
import { SluiceError } from '../core/errors.js';
import { OPERATOR_SCOPE } from '../core/operator.js';
import type { Catalog } from '../ports/catalog.js';
import type { PipelineVersion } from '../ports/pipelines.js';
import type { MakeLive, RolloutRecord } from '../ports/rollouts.js';
import type { SchemaVersion } from '../ports/schemas.js';
import { finishEnrichRollout, repairRollout } from './repair.js';
import { finishPipelineRepair, isPipelineRepair, planPipelineRepair, type PipelineRepairDeps } from './repair-pipeline.js';
import { parseRolloutSpec, type EnrichChange } from './document.js';
import { abort, advance, currentStep, evaluate, isActive, observationWindow, pause, promote, resume, startRollout, type Decision, type Rollout } from './machine.js';

/**
 * Rollouts as the API and the controller use them: a rollout kept in the catalog
 * (RolloutStore) as its document, created, moved by an operator's action or by the
 * controller's evaluation, each change saved by compare-and-set with the decision in the
 * audit log.
 */
export type OperatorAction = 'advance' | 'pause' | 'resume' | 'abort' | 'promote';

export const OPERATOR_ACTIONS: readonly OperatorAction[] = ['advance', 'pause', 'resume', 'abort', 'promote'];

export function newRolloutId(): string {
  return 'ro_' + randomBytes(8).toString('hex');
}

function toRecord(r: Rollout, rev: number): RolloutRecord {
  return { id: r.id, tenant: r.tenant, kind: r.kind, state: r.state, active: isActive(r), createdAt: r.created_at, updatedAt: r.updated_at, doc: r, rev };
}

export function fromRecord(rec: RolloutRecord): Rollout & { rev: number } {
  return { ...(rec.doc as Rollout), rev: rec.rev };
}

/**
 * Creates a rollout from a `POST /v1/rollouts` body. 400 for an invalid document or a
 * change this server cannot roll out; 404 when the schema version does not exist; 409 when
 * the tenant already has an active rollout of this change kind.
 */
export async function createRollout(catalog: Catalog, tenant: string, body: unknown, now: number, actor: string): Promise<Rollout> {
  const spec = parseRolloutSpec(body);
  if ('pipeline_version' in spec.change) {
    const n = spec.change.pipeline_version;
    const field = 'change.pipeline_version';
    if (!(await catalog.pipelines.get(tenant, n))) {
      throw new SluiceError('SLUICE_ERR_NOT_FOUND', `the pipeline has no version ${n}; store the candidate first (POST /v1/pipeline/versions, or sluice pipeline push --no-activate)`, { field });
    }
    if ((await catalog.pipelines.current(tenant))?.version === n) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `${field}: version ${n} is already live`, { field });
  }
  if ('schema' in spec.change) {
    const { type, version } = spec.change.schema;
    const versions = await catalog.schemas.versions(tenant, type);
    // The next version may be rolled out before it is published: it is then held back from ingest from its first moment.
    const next = Math.max(0, ...versions.map((v) => v.version)) + 1;
    if (version !== next && !versions.some((v) => v.version === version)) {
      throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no version ${version} of the schema of "${type}"; roll out a published version (${versions.map((v) => v.version).join(', ') || 'none yet'}) or the next one (${next}), then publish it (PUT /v1/schemas/${type})`, {
        field: 'change.schema.version',
      });
    }
  }
  const r = startRollout(newRolloutId(), tenant, spec, now, actor);
  await catalog.rollouts.create(toRecord(r, 1), actor, { change: r.change, steps: spec.steps, guardrails: spec.guardrails, auto: spec.auto });
  return r;
}

/**
 * Creates an operator-wide rollout (`sluice rollout create FILE --global`, on the catalog),
 * kept under the operator's scope. 400 for an invalid document or a version already live;
 * 404 when the operator pipeline has no such version or a named tenant does not exist; 409
 * when an operator-wide rollout of this kind is active.
 */
export async function createGlobalRollout(catalog: Catalog, body: unknown, now: number, actor: string): Promise<Rollout> {
  const spec = parseRolloutSpec(body, { global: true });
  if ('operator_pipeline_version' in spec.change) {
    const n = spec.change.operator_pipeline_version;
    const field = 'change.operator_pipeline_version';
    if (!(await catalog.pipelines.get(OPERATOR_SCOPE, n))) {
      throw new SluiceError('SLUICE_ERR_NOT_FOUND', `the operator pipeline has no version ${n}; store the candidate first (sluice pipeline push FILE --global --no-activate)`, { field });
    }
    if ((await catalog.pipelines.current(OPERATOR_SCOPE))?.version === n) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `${field}: version ${n} is already live`, { field });
  }
  for (const [i, step] of spec.steps.entries()) {
    if (!('cohort' in step)) continue;
    for (const t of step.cohort.tenants ?? []) {
      if (!(await catalog.getTenant(t))) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `steps[${i}].cohort.tenants: no tenant "${t}"`, { field: `steps[${i}].cohort.tenants` });
    }
  }
  const r = startRollout(newRolloutId(), OPERATOR_SCOPE, spec, now, actor);
  await catalog.rollouts.create(toRecord(r, 1), actor, { change: r.change, steps: spec.steps, guardrails: spec.guardrails, auto: spec.auto });
  return r;
}

export async function getRollout(catalog: Catalog, tenant: string, id: string): Promise<(Rollout & { rev: number }) | null> {
  const rec = await catalog.rollouts.get(tenant, id);
  return rec ? fromRecord(rec) : null;
}

/** The 404 of a rollout id the tenant does not have, with where to look. */
export function notFound(id: string): SluiceError {
  return new SluiceError('SLUICE_ERR_NOT_FOUND', `no rollout "${id.slice(0, 40)}" of this tenant; GET /v1/rollouts (sluice rollout list) lists them, and an operator-wide one is read with sluice rollout show <id> --global`, { field: 'id' });
}

/**
 * Saves `next` over `prev` and audits its last decision; false when another writer got there
 * first. A promote makes the rollout's pipeline version live in the same transaction, so the
 * rollout never reads as promoted while the old version is still live (`finishRollout` makes it
 * live again, idempotently, for a rollout promoted before this held).
 */
async function save(catalog: Catalog, prev: Rollout & { rev: number }, next: Rollout, actor: string): Promise<boolean> {
  if (next === prev) return true;
  const d = next.decisions.at(-1) as Decision;
  const makeLive = next.state === 'promoted' && prev.state !== 'promoted' ? candidate(next) : undefined;
  // A hold decision brought up to date in place (machine.ts evaluate) was audited when it was made.
  const refreshed = next.decisions.length === prev.decisions.length && prev.decisions.at(-1)?.at === d.at;
  const rec = await catalog.rollouts.save(toRecord(next, prev.rev), actor, refreshed ? null : `rollout.${d.verdict}`, d, makeLive);
  return rec !== null;
}

/** The pipeline version a rollout takes live (a tenant's or the operator's); undefined for other changes. */
function candidate(r: Rollout): MakeLive | undefined {
  if ('pipeline_version' in r.change) return { scope: r.tenant, version: r.change.pipeline_version };
  if ('operator_pipeline_version' in r.change) return { scope: OPERATOR_SCOPE, version: r.change.operator_pipeline_version };
  return undefined;
}

/** Makes a promoted rollout's pipeline version (a tenant's or the operator's) live (nothing for other changes). Idempotent. */
async function activateCandidate(catalog: Catalog, r: Rollout, actor: string): Promise<void> {
  const live = r.state === 'promoted' ? candidate(r) : undefined;
  if (live) await catalog.pipelines.activate(live.scope, live.version, actor, { rollout: r.id });
}

/** An operator's action on a rollout; retried when the controller saved meanwhile. 404, or 409 when the state does not allow it. */
export async function act(catalog: Catalog, tenant: string, id: string, action: OperatorAction, now: number, actor: string): Promise<Rollout> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = await getRollout(catalog, tenant, id);
    if (!r) throw notFound(id);
    const fn = { advance, pause, resume, abort, promote }[action];
    const next = fn(r, now, actor);
    if (await save(catalog, r, next, actor)) return next;
  }
  throw new SluiceError('SLUICE_ERR_CONFLICT', `rollout ${id} kept changing while ${action} was applied; try again`);
}

/**
 * One controller pass: evaluates every active rollout on the tallies of its current phase,
 * saves what changed. Answers the rollouts after the pass (for the metrics).
 */
export async function evaluateAll(catalog: Catalog, now: number): Promise<Rollout[]> {
  const out: Rollout[] = [];
  for (const rec of await catalog.rollouts.active()) {
    const r = fromRecord(rec);
    const w = observationWindow(r, now);
    // Tallies are kept by minute, and a phase's first partial minute under its own start (see
    // RolloutRuntime.count): the phase's buckets through the current minute, both sides alike.
    const t = await catalog.rollouts.tallies(r.id, w.from, w.to + 60_000);
    const next = evaluate(r, now, t.cohort, r.share >= 100 ? null : t.baseline);
    // Lost to an operator's action: the next pass judges the new state.
    out.push((await save(catalog, r, next, 'controller')) ? next : r);
  }
  return out;
}

/**
 * The stored version a rollout's change names, as the catalog holds it now: an operator or
 * tenant pipeline version, a schema version, or the enrichment document (kept in the rollout
 * itself). `missing` names what the catalog lacks: a schema version may be rolled out before
 * it is published, and nothing is compared or routed until it is (see RolloutRuntime).
 */
export type StoredCandidate =
  | { kind: 'enrich'; document: EnrichChange }
  | { kind: 'operator_pipeline' | 'pipeline'; stored: PipelineVersion }
  | { kind: 'schema'; stored: SchemaVersion }
  | { kind: 'missing'; missing: string };

export async function storedCandidate(catalog: Pick<Catalog, 'pipelines' | 'schemas'>, r: Pick<Rollout, 'tenant' | 'change'>): Promise<StoredCandidate> {
  const c = r.change;
  if ('enrich' in c) return { kind: 'enrich', document: c.enrich };
  if ('operator_pipeline_version' in c) {
    const stored = await catalog.pipelines.get(OPERATOR_SCOPE, c.operator_pipeline_version);
    return stored ? { kind: 'operator_pipeline', stored } : { kind: 'missing', missing: `operator pipeline version ${c.operator_pipeline_version}` };
  }
  if ('pipeline_version' in c) {
    const stored = await catalog.pipelines.get(r.tenant, c.pipeline_version);
    return stored ? { kind: 'pipeline', stored } : { kind: 'missing', missing: `pipeline version ${c.pipeline_version}` };
  }
  const { type, version } = c.schema;
  const stored = (await catalog.schemas.versions(r.tenant, type)).find((s) => s.version === version);
  return stored ? { kind: 'schema', stored } : { kind: 'missing', missing: `schema ${type} version ${version}` };
}

/**
 * A rollout as the API answers it, with `candidate_missing`: for an active rollout whose
 * candidate the catalog does not hold yet (a schema version rolled out before it is
 * published), what is missing; nothing is compared, counted or routed until it is found.
 * Null otherwise.
 */
export async function wireRolloutOf(catalog: Pick<Catalog, 'pipelines' | 'schemas'>, r: Rollout) {
  const c = isActive(r) ? await storedCandidate(catalog, r) : null;
  return { ...wireRollout(r), candidate_missing: c?.kind === 'missing' ? c.missing : null };
}

/** The wire shape of `GET /v1/rollouts/:id`. */
export function wireRollout(r: Rollout) {
  return {
    id: r.id,
    ...(r.tenant === OPERATOR_SCOPE ? { scope: 'global' as const } : {}),
    change: r.change,
    state: r.state,
    share: r.share,
    ...(r.tenants === undefined ? {} : { tenants: r.tenants }),
    step: currentStep(r),
    hold_reason: r.hold_reason,
    steps: r.spec.steps,
    guardrails: r.spec.guardrails,
    auto: r.spec.auto,
    created_at: new Date(r.created_at).toISOString(),
    created_by: r.created_by,
    updated_at: new Date(r.updated_at).toISOString(),
    decisions: r.decisions.map((d) => ({ ...d, at: new Date(d.at).toISOString(), ...(d.last_at === undefined ? {} : { last_at: new Date(d.last_at).toISOString() }), ...(d.window ? { window: { from: new Date(d.window.from).toISOString(), to: new Date(d.window.to).toISOString() } } : {}) })),
    repair: r.repair && { status: r.repair.status, from: r.repair.from, to: r.repair.to, repaired: r.repair.repaired, past_retention: r.repair.past_retention },
  };
}

/**
 * Finished rollouts whose repair is still pending, in every tenant and the operator's scope
 * (the newest 100 rollouts of each): a process stopped before it ran their repair, or an
 * abort was saved while no server ran (`sluice rollout abort --global`). The controller takes
 * them at its first pass. Running a repair again is safe: see repair-pipeline.ts.
 */
export async function pendingRepairs(catalog: Catalog): Promise<{ tenant: string; id: string }[]> {
  const out: { tenant: string; id: string }[] = [];
  for (const tenant of [...(await catalog.listTenants()).map((t) => t.name), OPERATOR_SCOPE]) {
    for (const rec of await catalog.rollouts.list(tenant, 100)) {
      if (!rec.active && fromRecord(rec).repair?.status === 'pending') out.push({ tenant, id: rec.id });
    }
  }
  return out;
}

/**
 * Finishes a rollout that is no longer active: a promoted pipeline version is made live (if
 * the promote's own activation did not land), a pending repair runs and is saved (see
 * repair.ts). Answers null when the save lost a race: retried at a later pass.
 */
export async function finishRepair(catalog: Catalog, deps: PipelineRepairDeps, tenant: string, id: string, now: number): Promise<Rollout | null> {
  let r = await getRollout(catalog, tenant, id);
  if (r?.state === 'promoted') await activateCandidate(catalog, r, 'controller');
  if (!r || r.repair?.status !== 'pending') return r;
  deps.schemas.invalidate();
  if (isPipelineRepair(r)) {
    // The positions are saved before anything is withdrawn: a repair that stops halfway resumes from them.
    const planned = await planPipelineRepair(deps, r, now);
    if (planned) {
      const rec = await catalog.rollouts.save(toRecord(planned, r.rev), 'controller', 'rollout.repair_planned', { withdrawing: planned.repair!.withdrawing!.length });
      if (!rec) return null;
      r = { ...planned, rev: rec.rev };
    }
    return sweepOrSave(catalog, r, await finishPipelineRepair(deps, r, now));
  }
  return sweepOrSave(catalog, r, 'enrich' in r.change ? finishEnrichRollout(r, now) : await repairRollout(deps, r, now));
}

/**
 * Saves a repair's pass: done, with its decision; or, when another sweep is due, without a
 * decision (audited `rollout.repair_sweep`), answering null so that the controller comes back
 * at its next pass.
 */
async function sweepOrSave(catalog: Catalog, prev: Rollout & { rev: number }, next: Rollout): Promise<Rollout | null> {
  if (next.repair?.status === 'pending') {
    await catalog.rollouts.save(toRecord(next, prev.rev), 'controller', 'rollout.repair_sweep', { rederived: (next.repair.rederived_stored ?? 0) + (next.repair.rederived_dead ?? 0) });
    return null;
  }
  return (await save(catalog, prev, next, 'controller')) ? next : null;
}
