import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { num, pretty, time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';

interface Tally {
  events: number;
  dead: number;
  dropped: number;
  compared: number;
  diffs: number;
}
interface Check {
  guardrail: string;
  cohort: number;
  baseline: number;
  excess: number;
  tolerance: number;
  cohort_events: number;
  baseline_events: number;
  breached: boolean;
  over_tolerance?: boolean;
}
interface Decision {
  at: string;
  actor: string;
  verdict: string;
  step: string;
  share: number;
  reason: string;
  cohort?: Tally;
  baseline?: Tally | null;
  checks?: Check[];
  /** A hold judged again on newer numbers: when it last was. */
  last_at?: string;
}
export interface Rollout {
  id: string;
  change: { pipeline_version: number } | { schema: { type: string; version: number } };
  state: string;
  share: number;
  step: string;
  hold_reason: string | null;
  /** What the candidate needs and the catalog lacks (a schema version rolled out before it is published); null otherwise. */
  candidate_missing: string | null;
  steps: unknown[];
  guardrails: Record<string, number>;
  auto: boolean;
  created_at: string;
  created_by: string;
  updated_at: string;
  decisions: Decision[];
  repair: { status: string; repaired: number; past_retention: number } | null;
}
interface Diff {
  compared: number;
  identical: number;
  changed: number;
  dropped: number;
  dead_lettered: number;
  rates: { diff: number };
  samples: { kind: string; key: string; idempotency_key: string; fields: string[]; active: unknown; candidate: unknown }[];
  /** Per view and bucket (absent from a server before the per-view compare). */
  views?: ViewDiff[];
}
interface ViewDiff {
  tenant: string;
  view: string;
  buckets_compared: number;
  buckets_identical: number;
  buckets_differing: number;
  samples: { bucket: string; group: Record<string, string | null>; differs: string[]; active: Record<string, number | null>; candidate: Record<string, number | null> }[];
}

/** A rollout step as its document gives it (src/rollout/document.ts StepSpec). */
type StepSpec =
  | { shadow: { sample: number; duration: string } }
  | { compare: { duration: string } }
  | { cohort: { percent?: number; tenants?: string[]; duration: string } }
  | { ramp: { percents: number[]; step_duration: string } };

/** One step in words: what runs the candidate, on how much, for how long. */
export function stepText(st: StepSpec): string {
  if ('shadow' in st) return `shadow: the candidate runs beside the live version on ${Math.round(st.shadow.sample * 100)}% of events, its output kept apart, for ${st.shadow.duration}`;
  if ('compare' in st) return `compare: outputs compared event by event and view by view, for ${st.compare.duration}`;
  if ('cohort' in st) {
    const who = [st.cohort.tenants?.length ? `the tenants ${st.cohort.tenants.join(', ')}` : '', st.cohort.percent !== undefined ? `${st.cohort.percent}% of keys` : ''].filter(Boolean).join(' and ');
    return `cohort: live for ${who}, for ${st.cohort.duration}`;
  }
  return `ramp: live for ${st.ramp.percents.map((p) => `${p}%`).join(' → ')} of keys, ${st.ramp.step_duration} each`;
}

/** The guardrails in words: each the largest excess of the cohort over the baseline, then the sample size that judges. */
export function guardrailTexts(g: Record<string, number>): string[] {
  const out: string[] = [];
  const rate = (name: string, what: string) => {
    if (g[name] !== undefined) out.push(`${what} at most ${g[name]} above the baseline's (${(g[name] * 100).toPrecision(2)} percentage points)`);
  };
  rate('dead_letter_rate', 'dead-letter rate');
  rate('drop_rate', 'drop rate');
  if (g.diff_rate !== undefined) out.push(`diff rate (outputs that differ from the live version's) at most ${g.diff_rate}`);
  if (g.cost_per_event_ms !== undefined) out.push(`processing time at most ${g.cost_per_event_ms} ms an event above the baseline's`);
  out.push(`judged on at least ${(g.min_events ?? 1000).toLocaleString('en-US')} events on each side; fewer holds the step`);
  return out;
}

export function changeText(c: Rollout['change']): string {
  return 'schema' in c ? `schema ${c.schema.type} v${c.schema.version}` : `pipeline version ${c.pipeline_version}`;
}

const ACTIONS = ['advance', 'pause', 'resume', 'abort', 'promote'] as const;
const FINISHED = new Set(['promoted', 'rolled_back', 'aborted']);

/** Which operator actions the state allows (the API answers 409 to the others anyway). */
function enabled(action: (typeof ACTIONS)[number], state: string): boolean {
  if (FINISHED.has(state)) return false;
  if (action === 'resume') return state === 'paused';
  if (action === 'advance' || action === 'pause') return state !== 'paused';
  return true;
}

function rate(v: number): string {
  return Number(v.toPrecision(4)).toString();
}

/** One rollout: its state, steps, decisions with their numbers, the diff, and the buttons. */
export function RolloutDetail(props: { id: string; onChanged: () => void }) {
  const path = `/v1/rollouts/${encodeURIComponent(props.id)}`;
  const r = useLoad((signal) => api<Rollout>(path, { signal }), [path]);
  const diff = useLoad((signal) => api<Diff>(`${path}/diff?limit=10`, { signal }), [path]);
  const [acting, setActing] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const act = async (action: string) => {
    setActing(action);
    setError(null);
    try {
      await api(`${path}/${action}`, { method: 'POST' });
      r.reload();
      diff.reload();
      props.onChanged();
    } catch (e: unknown) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setActing(null);
    }
  };
  const x = r.data;
  return (
    <div data-testid="rollout-detail">
      <ErrorBox error={r.error} />
      {x && (
        <>
          <div class="toolbar">
            <h3 class="mono">{x.id}</h3>
            <button type="button" onClick={() => (r.reload(), diff.reload())}>
              Refresh
            </button>
          </div>
          <div class="cards">
            <div class="card">
              <div class="label">change</div>
              <div class="value small">{changeText(x.change)}</div>
            </div>
            <div class="card">
              <div class="label">state</div>
              <div class="value small" data-testid="rollout-state">
                {x.state}
              </div>
            </div>
            <div class="card">
              <div class="label">share</div>
              <div class="value" data-testid="rollout-share">
                {x.share} %
              </div>
            </div>
            <div class="card">
              <div class="label">step</div>
              <div class="value small">{x.step}</div>
            </div>
            {x.repair && (
              <div class="card">
                <div class="label">repair</div>
                <div class="value small" data-testid="rollout-repair">
                  {x.repair.status}: {num(x.repair.repaired)} repaired, {num(x.repair.past_retention)} past retention
                </div>
              </div>
            )}
          </div>
          {x.candidate_missing && (
            <p class="meta" data-testid="rollout-candidate-missing">
              Waiting for {x.candidate_missing}: nothing is compared, counted or routed until it is published.
            </p>
          )}
          {x.hold_reason && (
            <p class="meta" data-testid="rollout-hold-reason">
              Holding: {x.hold_reason}
            </p>
          )}
          {x.state === 'holding' && (
            <p class="meta" data-testid="rollout-hold-next">
              Judged again at every evaluation{x.decisions.at(-1)?.last_at ? ` (last ${x.decisions.at(-1)!.last_at})` : ''}; it goes on by itself once it passes. Meanwhile, advance goes on without the guardrails' verdict; abort stops it and repairs what it did.
            </p>
          )}
          <div class="actions">
            {ACTIONS.map((a) => (
              <button type="button" data-testid={`rollout-${a}`} disabled={acting !== null || !enabled(a, x.state)} onClick={() => void act(a)}>
                {a}
              </button>
            ))}
            <span class="meta">
              created {time(x.created_at)} by {x.created_by}; auto {x.auto ? 'on' : 'off'}
            </span>
          </div>
          <ErrorBox error={error} />
          <h4>Steps and guardrails</h4>
          <ol data-testid="rollout-steps">
            {(x.steps as StepSpec[]).map((st) => {
              const name = Object.keys(st)[0]!;
              return (
                <li data-testid="rollout-step" class={name === x.step ? 'active' : ''}>
                  {stepText(st)}
                  {name === x.step && !['promoted', 'rolled_back', 'aborted'].includes(x.state) ? ' (now)' : ''}
                </li>
              );
            })}
          </ol>
          <ul data-testid="rollout-guardrails">
            {guardrailTexts(x.guardrails).map((g) => (
              <li data-testid="rollout-guardrail">{g}</li>
            ))}
          </ul>
          <h4>Decisions</h4>
          <table data-testid="rollout-decisions">
            <thead>
              <tr>
                <th>at</th>
                <th>verdict</th>
                <th>step</th>
                <th>by</th>
                <th>reason and numbers</th>
              </tr>
            </thead>
            <tbody>
              {x.decisions.map((d) => (
                <tr data-testid="rollout-decision" data-verdict={d.verdict}>
                  <td>
                    {time(d.at)}
                    {d.last_at && <div class="hint">still so when last judged, {time(d.last_at)}</div>}
                  </td>
                  <td data-testid="decision-verdict">{d.verdict}</td>
                  <td>
                    {d.step} {d.share} %
                  </td>
                  <td>{d.actor}</td>
                  <td>
                    <div data-testid="decision-reason">{d.reason}</div>
                    {d.checks && d.checks.length > 0 && <Checks checks={d.checks} />}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h4>Diff</h4>
      <ErrorBox error={diff.error} />
      {diff.data && <DiffView diff={diff.data} />}
    </div>
  );
}

function Checks(props: { checks: Check[] }) {
  return (
    <table class="small">
      <thead>
        <tr>
          <th>guardrail</th>
          <th>cohort</th>
          <th>baseline</th>
          <th>excess</th>
          <th>tolerance</th>
          <th>cohort n</th>
          <th>baseline n</th>
          <th>verdict</th>
        </tr>
      </thead>
      <tbody>
        {props.checks.map((c) => (
          <tr data-testid="decision-check" data-guardrail={c.guardrail}>
            <td>{c.guardrail}</td>
            <td class="num" data-testid="check-cohort">
              {rate(c.cohort)}
            </td>
            <td class="num" data-testid="check-baseline">
              {rate(c.baseline)}
            </td>
            <td class="num">{rate(c.excess)}</td>
            <td class="num" data-testid="check-tolerance">
              {rate(c.tolerance)}
            </td>
            <td class="num" data-testid="check-cohort-events">
              {num(c.cohort_events)}
            </td>
            <td class="num" data-testid="check-baseline-events">
              {num(c.baseline_events)}
            </td>
            <td data-testid="check-verdict" class={c.breached ? 'error' : ''}>
              {c.breached ? 'breached' : c.over_tolerance ? 'over, too few events to judge' : 'within'}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function DiffView(props: { diff: Diff }) {
  const d = props.diff;
  return (
    <>
      <p data-testid="rollout-diff">
        compared {num(d.compared)}: identical {num(d.identical)}, changed {num(d.changed)}, dropped {num(d.dropped)}, dead-lettered {num(d.dead_lettered)} (diff rate {rate(d.rates.diff)})
      </p>
      {d.samples.length > 0 && (
        <table data-testid="diff-samples">
          <thead>
            <tr>
              <th>kind</th>
              <th>key</th>
              <th>fields</th>
              <th>active</th>
              <th>candidate</th>
            </tr>
          </thead>
          <tbody>
            {d.samples.map((s) => (
              <tr data-testid="diff-sample">
                <td>{s.kind}</td>
                <td class="mono">{s.key}</td>
                <td data-testid="diff-sample-fields">{s.fields.join(', ')}</td>
                <td>
                  <pre class="small">{pretty(s.active)}</pre>
                </td>
                <td>
                  <pre class="small">{pretty(s.candidate)}</pre>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {d.views && d.views.length > 0 && <ViewDiffs views={d.views} />}
    </>
  );
}

/** Per view: the buckets compared and differing, and the differing buckets' measures on both sides. */
function ViewDiffs(props: { views: ViewDiff[] }) {
  return (
    <>
    <p class="hint">
      Batch by batch: a bucket counts once per compared batch it had events in; a sample's numbers add up from the batch in which it first differed (a part of the view's, not the
      whole), and its measures that differ are those that differed in any batch.
    </p>
    <table data-testid="diff-views">
      <thead>
        <tr>
          <th>view</th>
          <th>bucket cells compared</th>
          <th>differing</th>
          <th>differing buckets: bucket, group, measures that differ, active, candidate</th>
        </tr>
      </thead>
      <tbody>
        {props.views.map((v) => (
          <tr data-testid="diff-view" data-view={v.view}>
            <td class="mono">{v.view}</td>
            <td class="num">{num(v.buckets_compared)}</td>
            <td class="num" data-testid="diff-view-differing">
              {num(v.buckets_differing)}
            </td>
            <td>
              {v.samples.map((s) => (
                <div class="small">
                  {time(s.bucket)} {Object.keys(s.group).length > 0 ? JSON.stringify(s.group) : ''} {s.differs.join(', ')}: {JSON.stringify(s.active)} → {JSON.stringify(s.candidate)}
                </div>
              ))}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
    </>
  );
}
