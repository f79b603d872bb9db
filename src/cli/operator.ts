import fs from 'node:fs';
import { SluiceError } from '../core/errors.js';
import { OPERATOR_SCOPE } from '../core/operator.js';
import type { Catalog } from '../ports/catalog.js';
import { act, createGlobalRollout, fromRecord, getRollout, OPERATOR_ACTIONS, wireRolloutOf, type OperatorAction } from '../rollout/service.js';
import { diffAnswer } from '../rollout/diff-answer.js';
import { putPipeline } from '../transform/versions.js';
import { actionText, details, diffText, summary } from './rollout.js';

/**
 * The operator's commands (`--global`), on the catalog rather than through a tenant's key:
 * they open the catalog as `sluice tenant create` does (the same SQLite file while `up` runs,
 * or the PostgreSQL catalog), and a running server picks the change up within
 * `events.schemaRefreshMs` (a pipeline) or its next rollout pass (a rollout, every second).
 *
 *     sluice pipeline show|versions|push FILE.json [--no-activate | --expected-version N] --global
 *     sluice rollout list|show ID|diff ID|create FILE.json|advance|pause|resume|abort|promote ID --global
 *
 * The operator pipeline runs over every tenant's events before the tenant's own steps.
 */
export interface OperatorIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  json: boolean;
}

/** The actor the audit log records for the operator's command line. */
const ACTOR = 'cli';

function readJson(file: string, what: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8')) as unknown;
  } catch (e: unknown) {
    throw new SluiceError('SLUICE_ERR_CONFIG', `cannot read the ${what} ${file}: ${(e as Error).message}`);
  }
}

function wholeNumber(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new SluiceError('SLUICE_ERR_CONFIG', `${flag} must be a whole number, got "${v}"`);
  return n;
}

export async function operatorPipelineCommand(
  catalog: Catalog,
  sub: string,
  file: string | undefined,
  flags: { version?: string; limit?: string; expectedVersion?: string; activate?: boolean },
  io: OperatorIo,
): Promise<number> {
  const print = (value: unknown, human: () => string) => io.out.write((io.json ? JSON.stringify(value, null, 2) : human()) + '\n');
  const live = async () => (await catalog.pipelines.current(OPERATOR_SCOPE))?.version ?? 0;
  switch (sub) {
    case 'show': {
      const n = wholeNumber(flags.version, '--version');
      const v = n === undefined ? await catalog.pipelines.current(OPERATOR_SCOPE) : await catalog.pipelines.get(OPERATOR_SCOPE, n);
      if (!v && n !== undefined) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `the operator pipeline has no version ${n}`);
      const wire = { version: v?.version ?? 0, steps: v?.steps ?? [], created_at: v ? new Date(v.createdAt).toISOString() : null, created_by: v?.createdBy ?? null, live: (v?.version ?? 0) === (await live()) };
      if (!io.json) io.err.write(wire.version === 0 ? 'no operator pipeline yet (version 0)\n' : `operator pipeline version ${wire.version}${wire.live ? '' : ' (not live)'}, written by ${wire.created_by} at ${wire.created_at}\n`);
      io.out.write(JSON.stringify(io.json ? wire : { steps: wire.steps }, null, 2) + '\n');
      return 0;
    }
    case 'push': {
      if (!file) throw new SluiceError('SLUICE_ERR_CONFIG', 'name the pipeline file: sluice pipeline push FILE.json --global');
      const doc = readJson(file, 'pipeline');
      const steps = doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as { steps?: unknown }).steps : undefined;
      const expected = wholeNumber(flags.expectedVersion, '--expected-version');
      const activate = flags.activate !== false;
      if (!activate && expected !== undefined) throw new SluiceError('SLUICE_ERR_CONFIG', '--expected-version checks the live version, which --no-activate leaves alone: give one or the other');
      // A version made live under a rollout of another would change its baseline, and its promote would undo this one.
      const rolling = activate ? (await catalog.rollouts.list(OPERATOR_SCOPE)).find((r) => r.active && r.kind === 'operator_pipeline_version') : undefined;
      if (rolling) {
        throw new SluiceError('SLUICE_ERR_CONFLICT', `rollout ${rolling.id} is taking an operator pipeline version live; promote or abort it first (sluice rollout promote|abort ${rolling.id} --global), or store this version with --no-activate`);
      }
      const v = await putPipeline(catalog.pipelines, OPERATOR_SCOPE, { steps, actor: ACTOR, expectedVersion: expected, activate });
      print({ version: v.version, steps: v.steps, live: activate }, () =>
        activate
          ? `pushed: operator pipeline version ${v.version} (${v.steps.length} steps), live for every tenant`
          : `stored: operator pipeline version ${v.version} (${v.steps.length} steps), not live; roll it out with sluice rollout create FILE --global (a rollout of {"change": {"operator_pipeline_version": ${v.version}}})`,
      );
      return 0;
    }
    case 'versions': {
      const limit = wholeNumber(flags.limit, '--limit') || 100;
      const current = await live();
      const list = (await catalog.pipelines.list(OPERATOR_SCOPE, limit)).map((v) => ({
        version: v.version,
        live: v.version === current,
        step_count: v.steps.length,
        created_at: new Date(v.createdAt).toISOString(),
        created_by: v.createdBy,
      }));
      print({ versions: list }, () => (list.length === 0 ? 'no operator pipeline yet' : ['VERSION\tLIVE\tSTEPS\tCREATED\tBY', ...list.map((v) => `${v.version}\t${v.live ? 'live' : 'no'}\t${v.step_count}\t${v.created_at}\t${v.created_by}`)].join('\n')));
      return 0;
    }
    default:
      throw new SluiceError('SLUICE_ERR_CONFIG', `the operator pipeline (--global) has show, push and versions; got "${sub}" (test a document with a tenant's key: sluice pipeline test)`);
  }
}

export async function operatorRolloutCommand(catalog: Catalog, sub: string | undefined, arg: string | undefined, flags: { limit?: string }, io: OperatorIo, now: () => number): Promise<number> {
  const print = (value: unknown, human: () => string) => io.out.write((io.json ? JSON.stringify(value, null, 2) : human()) + '\n');
  const id = (): string => {
    if (!arg) throw new SluiceError('SLUICE_ERR_CONFIG', `sluice rollout ${sub} --global needs the rollout id (sluice rollout list --global shows them)`);
    return arg;
  };
  const one = async () => {
    const r = await getRollout(catalog, OPERATOR_SCOPE, id());
    if (!r) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no operator-wide rollout "${id().slice(0, 40)}"; sluice rollout list --global lists them`);
    return r;
  };
  switch (sub) {
    case 'list': {
      const list = await Promise.all((await catalog.rollouts.list(OPERATOR_SCOPE)).map((rec) => wireRolloutOf(catalog, fromRecord(rec))));
      print({ rollouts: list }, () => (list.length === 0 ? 'no operator-wide rollouts' : list.map(summary).join('\n')));
      return 0;
    }
    case 'show': {
      const r = await wireRolloutOf(catalog, await one());
      print(r, () => details(r, ' --global'));
      return 0;
    }
    case 'create': {
      if (!arg) throw new SluiceError('SLUICE_ERR_CONFIG', 'name the rollout document: sluice rollout create FILE.json --global (or - for standard input)');
      const r = await wireRolloutOf(catalog, await createGlobalRollout(catalog, readJson(arg, 'rollout document'), now(), ACTOR));
      print(r, () => `created ${summary(r)}`);
      return 0;
    }
    case 'diff': {
      const r = await one();
      const limit = wholeNumber(flags.limit, '--limit') ?? 10;
      const out = diffAnswer(r.id, await catalog.rollouts.diff(r.id), limit);
      print(out, () => diffText(out));
      return 0;
    }
    default: {
      if (!OPERATOR_ACTIONS.includes(sub as OperatorAction)) {
        throw new SluiceError('SLUICE_ERR_CONFIG', `unknown command "rollout ${sub ?? ''} --global"; use list, show, create, advance, pause, resume, abort, promote or diff`);
      }
      const r = await wireRolloutOf(catalog, await act(catalog, OPERATOR_SCOPE, id(), sub as OperatorAction, now(), ACTOR));
      print(r, () => actionText(sub as OperatorAction, r));
      return 0;
    }
  }
}
