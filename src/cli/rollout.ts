import fs from 'node:fs';
import { SluiceError } from '../core/errors.js';
import type { DiffAnswer } from '../rollout/diff-answer.js';
import type { wireRollout } from '../rollout/service.js';
import type { Target } from './admin.js';
import { callJson } from './http-client.js';

/**
 * `sluice rollout …` (admin key): the rollouts API from the command line.
 *
 *     sluice rollout list | show ID | diff ID [--limit N]
 *     sluice rollout create FILE.json|-
 *     sluice rollout advance|pause|resume|abort|promote ID
 *
 * With --global, the same commands act on operator-wide rollouts, on the catalog (operator.ts).
 */
/** A rollout as the API answers it; `candidate_missing` is absent from servers older than the field (see wireRolloutOf). */
type WireRollout = ReturnType<typeof wireRollout> & { candidate_missing?: string | null };

async function call<T>(t: Target, method: string, path: string, payload?: unknown): Promise<T> {
  return (await callJson(method, `${t.url.replace(/\/$/, '')}${path}`, t.key, payload, { maxAttempts: 3 })).body as T;
}

function print(t: Target, value: unknown, human: () => string): void {
  t.out.write((t.json ? JSON.stringify(value, null, 2) : human()) + '\n');
}

function changeText(c: WireRollout['change']): string {
  if ('schema' in c) return `schema ${c.schema.type} v${c.schema.version}`;
  if ('enrich' in c) return `enrichment ${JSON.stringify(c.enrich)}`;
  return 'operator_pipeline_version' in c ? `operator pipeline version ${c.operator_pipeline_version}` : `pipeline version ${c.pipeline_version}`;
}

export function summary(r: WireRollout): string {
  const named = r.tenants && r.tenants.length > 0 ? ` + ${r.tenants.join(', ')}` : '';
  return `${r.id}  ${r.state.padEnd(11)} ${String(r.share).padStart(3)}%${named}  ${changeText(r.change)}${r.hold_reason ? `  (${r.hold_reason})` : ''}`;
}

/** For a holding rollout: when it is judged again and what the operator can do meanwhile. */
export function holdNextStep(r: WireRollout, flag = ''): string | null {
  if (r.state !== 'holding') return null;
  const last = r.decisions.at(-1);
  const judged = last?.last_at ?? last?.at;
  return `holding: judged again at every evaluation${judged ? ` (last ${judged})` : ''} and goes on by itself once it passes; meanwhile sluice rollout advance ${r.id}${flag} goes on without the guardrails' verdict, sluice rollout abort ${r.id}${flag} stops it and repairs what it did`;
}

/** For an active rollout whose candidate is not in the catalog yet: what it waits for. */
export function missingNextStep(r: WireRollout): string | null {
  if (!r.candidate_missing) return null;
  const publish = 'schema' in r.change ? ` (sluice schema push ${r.change.schema.type} FILE, with --force --reason TEXT if it is stricter; or PUT /v1/schemas/${r.change.schema.type})` : '';
  return `waiting for ${r.candidate_missing}: nothing is compared, counted or routed until it is published${publish}`;
}

export function details(r: WireRollout, flag = ''): string {
  const hold = holdNextStep(r, flag);
  const missing = missingNextStep(r);
  const lines = [summary(r), ...(missing ? [missing] : []), ...(hold ? [hold] : []), `created ${r.created_at} by ${r.created_by}; auto ${r.auto ? 'on' : 'off'}`, 'decisions:'];
  for (const d of r.decisions) {
    lines.push(`  ${d.at}  ${d.verdict.padEnd(9)} ${d.step} ${d.share}%  by ${d.actor}: ${d.reason}${d.last_at ? `  (still so when last judged, ${d.last_at})` : ''}`);
    for (const c of d.checks ?? []) {
      // At 100% no key is left for a baseline: the cohort is judged against its tolerance alone.
      const baseline = d.share >= 100 ? 'no baseline at 100%' : `baseline ${c.baseline.toPrecision(3)} (n=${c.baseline_events})`;
      lines.push(`      ${c.guardrail.padEnd(18)} cohort ${c.cohort.toPrecision(3)} (n=${c.cohort_events})  ${baseline}  tolerance ${c.tolerance}${c.breached ? '  BREACHED' : c.over_tolerance ? '  over tolerance, too few events to judge' : ''}`);
    }
  }
  if (r.repair) lines.push(`repair: ${r.repair.status}, ${r.repair.repaired} repaired, ${r.repair.past_retention} past retention`);
  return lines.join('\n');
}

/**
 * What an action (advance, pause, resume, abort, promote) left: the rollout's summary, and
 * after an advance past a hold, that the hold was not judged further and why it held.
 */
export function actionText(action: string, r: WireRollout): string {
  const skipped = r.decisions.at(-2);
  const pastHold = action === 'advance' && skipped?.verdict === 'hold' ? `\nadvanced past a hold, not judged further (${skipped.reason}); the guardrails judge the step it is in now` : '';
  return summary(r) + pastHold;
}

/** A diff answer as text: the per-event counts and samples, then each view's buckets and samples. */
export function diffText(r: DiffAnswer): string {
  const lines = [
    `compared ${r.compared}: identical ${r.identical}, changed ${r.changed}, dropped ${r.dropped}, dead-lettered ${r.dead_lettered} (diff rate ${Number(Number(r.rates.diff).toPrecision(4))})`,
    ...r.samples.map((s) => '  ' + JSON.stringify(s)),
  ];
  // A server from before the per-view compare answers no views.
  const views = r.views ?? [];
  if (views.length > 0) lines.push("per view, batch by batch (a bucket counts once per batch it had events in; a sample adds up from the batch in which it first differed, and 'differs' names what differed in any batch):");
  for (const v of views) {
    lines.push(`view ${v.view} (${v.tenant}): bucket cells compared ${v.buckets_compared}, identical ${v.buckets_identical}, differing ${v.buckets_differing}`);
    for (const s of v.samples) {
      const group = Object.keys(s.group).length > 0 ? ' ' + JSON.stringify(s.group) : '';
      lines.push(`  ${s.bucket}${group}  differs: ${s.differs.join(', ') || 'none'}  active ${JSON.stringify(s.active)}  candidate ${JSON.stringify(s.candidate)}`);
    }
  }
  return lines.join('\n');
}

/** A tenant's rollouts through the API; operator-wide ones (--global) open the catalog: see operator.ts. */
export async function rolloutCommand(t: Target, sub: string | undefined, args: string[], flags: { limit?: string }): Promise<number> {
  const id = (): string => {
    if (!args[0]) throw new SluiceError('SLUICE_ERR_CONFIG', `sluice rollout ${sub} needs the rollout id (sluice rollout list shows them)`);
    return encodeURIComponent(args[0]);
  };
  switch (sub) {
    case 'list': {
      const r = await call<{ rollouts: WireRollout[] }>(t, 'GET', '/v1/rollouts');
      print(t, r, () => (r.rollouts.length === 0 ? 'no rollouts' : r.rollouts.map(summary).join('\n')));
      return 0;
    }
    case 'show': {
      const r = await call<WireRollout>(t, 'GET', `/v1/rollouts/${id()}`);
      print(t, r, () => details(r));
      return 0;
    }
    case 'create': {
      const file = args[0];
      if (!file) throw new SluiceError('SLUICE_ERR_CONFIG', 'name the rollout document: sluice rollout create FILE.json (or - for standard input)');
      let doc: unknown;
      try {
        doc = JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
      } catch (e: unknown) {
        throw new SluiceError('SLUICE_ERR_CONFIG', `cannot read the rollout document ${file}: ${(e as Error).message}`);
      }
      const r = await call<WireRollout>(t, 'POST', '/v1/rollouts', doc);
      print(t, r, () => [`created ${summary(r)}`, missingNextStep(r)].filter(Boolean).join('\n'));
      return 0;
    }
    case 'advance':
    case 'pause':
    case 'resume':
    case 'abort':
    case 'promote': {
      const r = await call<WireRollout>(t, 'POST', `/v1/rollouts/${id()}/${sub}`);
      print(t, r, () => actionText(sub, r));
      return 0;
    }
    case 'diff': {
      const r = await call<DiffAnswer>(t, 'GET', `/v1/rollouts/${id()}/diff${flags.limit ? `?limit=${encodeURIComponent(flags.limit)}` : ''}`);
      print(t, r, () => diffText(r));
      return 0;
    }
    default:
      throw new SluiceError('SLUICE_ERR_CONFIG', `unknown command "rollout ${sub ?? ''}"; use list, show, create, advance, pause, resume, abort, promote or diff`);
  }
}
