import { useMemo, useState } from 'preact/hooks';
import { api, type Who } from '../api.js';
import { Chart } from '../chart.js';
import { num, pretty, time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';
import { setParams, useRoute } from '../router.js';
import { Labels, type Transition } from './alert-explain.js';

/** A rule as `GET /v1/alerts/rules` answers it: the rule's JSON with every default filled in. */
interface RuleJson {
  name: string;
  kind: 'slo' | 'threshold' | 'builtin';
  objective?: number;
  severity?: string;
  signal?: string;
  enabled?: boolean;
  windows?: { severity: string; long: string; short: string; factor: number }[];
  window?: string;
  condition?: { op: string; value: number };
  labels: Record<string, string>;
  annotations: Record<string, string>;
  updated_at?: string;
  [k: string]: unknown;
}
interface Budget {
  rule: string;
  objective: number;
  period: { from: string; to: string };
  total: number;
  bad: number;
  allowed_bad: number;
  /** Null with no events in the period: nothing to spend a budget on. */
  remaining: number | null;
  /** What the period leaves out yet: an SLO's unfinished hour up to the watermark, the built-in rule's unsettled minutes. */
  not_counted?: { from: string; to: string };
  watermark?: string;
  buckets: { start: string; total: number; bad: number; burn_rate: number | null }[];
}
interface Backtest {
  rule: string;
  from: string;
  to: string;
  fired: number;
  periods: { severity: string; fired_at: string; resolved_at: string | null }[];
  transitions: Transition[];
}

function summary(r: RuleJson): string {
  if (r.kind === 'slo' || r.objective !== undefined) return `objective ${num((r.objective ?? 0) * 100)} %, ${(r.windows ?? []).map((w) => `${w.severity} ${num(w.factor)}× over ${w.long} and ${w.short}`).join('; ')}`;
  if (r.condition) return `${r.severity}: ${r.signal ?? 'value'}${r.window ? ` over ${r.window}` : ''} ${r.condition.op} ${num(r.condition.value)}`;
  return '';
}

/** SLOs and the built-in burn-rate rule (ingest availability) have an error budget. */
function hasBudget(r: RuleJson): boolean {
  return r.kind === 'slo' || (r.kind === 'builtin' && r.objective !== undefined);
}

/**
 * The rules, built-in and the tenant's. Selecting one (`?rule=`) opens its error budget (SLOs:
 * `GET /v1/alerts/rules/:name/budget?bucket=`) and a backtest form (`POST
 * /v1/alerts/rules/:name/backtest`, run for the `bt_from`…`bt_to` in the URL).
 */
export function AlertRules(props: { who: Who; refreshed: number }) {
  const route = useRoute();
  const selected = route.params.get('rule');
  const rules = useLoad((signal) => api<{ rules: RuleJson[] }>('/v1/alerts/rules', { signal }), [props.refreshed]);
  const rule = rules.data?.rules.find((r) => r.name === selected) ?? null;
  return (
    <div class="panel">
      <h3>Rules</h3>
      <ErrorBox error={rules.error} />
      <table>
        <thead>
          <tr>
            <th>name</th>
            <th>kind</th>
            <th>conditions</th>
            <th>labels</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rules.data?.rules.map((r) => (
            <tr data-testid="rule-row" data-rule={r.name} class={r.name === selected ? 'active' : ''}>
              <td data-testid="rule-name">{r.name}</td>
              <td data-testid="rule-kind">
                {r.kind === 'builtin' ? `built-in (${r.signal})${r.enabled === false ? ', off' : ''}` : r.kind}
              </td>
              <td class="small">{summary(r)}</td>
              <td>
                <Labels labels={r.labels} />
              </td>
              <td>
                {(r.kind !== 'builtin' || hasBudget(r)) && (
                  <button type="button" class="link" onClick={() => setParams({ rule: r.name, bt_from: null, bt_to: null })} data-testid="rule-open">
                    {r.kind === 'builtin' ? 'Error budget' : hasBudget(r) ? 'Error budget and backtest' : 'Backtest'}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {selected && rules.data && !rule && <p class="error">No rule "{selected}".</p>}
      {rule && (
        <div data-testid="rule-panel">
          <h4>
            {rule.name}{' '}
            <button type="button" class="link" onClick={() => setParams({ rule: null, bucket: null, bt_from: null, bt_to: null })}>
              close
            </button>
          </h4>
          <details>
            <summary>Definition</summary>
            <pre class="small">{pretty(rule)}</pre>
          </details>
          {hasBudget(rule) && <BudgetPanel rule={rule.name} refreshed={props.refreshed} />}
          {rule.kind !== 'builtin' && <BacktestPanel rule={rule.name} />}
        </div>
      )}
    </div>
  );
}

function BudgetPanel(props: { rule: string; refreshed: number }) {
  const route = useRoute();
  const bucket = route.params.get('bucket') === '1h' ? '1h' : '1d';
  const budget = useLoad((signal) => api<Budget>(`/v1/alerts/rules/${encodeURIComponent(props.rule)}/budget?bucket=${bucket}`, { signal }), [props.rule, bucket, props.refreshed]);
  const chart = useMemo(() => {
    const b = budget.data?.buckets ?? [];
    return { x: b.map((x) => Date.parse(x.start) / 1000), series: [{ label: 'burn rate', values: b.map((x) => x.burn_rate) }] };
  }, [budget.data]);
  const b = budget.data;
  return (
    <div>
      <div class="toolbar">
        <h4>Error budget</h4>
        <span class="segmented">
          {(['1d', '1h'] as const).map((x) => (
            <button type="button" class={bucket === x ? 'active' : ''} onClick={() => setParams({ bucket: x === '1d' ? null : x })} data-testid={`budget-bucket-${x}`}>
              per {x === '1d' ? 'day' : 'hour'}
            </button>
          ))}
        </span>
      </div>
      <ErrorBox error={budget.error} />
      {b && (
        <>
          <p class="meta">
            {time(b.period.from)} to {time(b.period.to)}, objective {num(b.objective * 100)} %
          </p>
          {b.not_counted && b.not_counted.from !== b.not_counted.to && (
            <p class="hint" data-testid="budget-not-counted">
              Not counted yet: {time(b.not_counted.from)} to {time(b.not_counted.to)}
              {b.rule.startsWith('sluice_')
                ? ', minutes not settled yet (counted once every ingest process has written them).'
                : ', the hour up to the watermark (counted once it is whole). An alert may fire on these events before the budget shows them.'}
            </p>
          )}
          <div class="cards">
            <div class={`card ${b.remaining !== null && b.remaining < 0 ? 'bad' : ''}`}>
              <div class="label">budget remaining</div>
              <div class="value" data-testid="budget-remaining">
                {b.remaining === null ? '— (no events counted)' : `${num(b.remaining * 100)} %`}
              </div>
            </div>
            <div class="card">
              <div class="label">bad events</div>
              <div class="value" data-testid="budget-bad">
                {num(b.bad)}
              </div>
            </div>
            <div class="card">
              <div class="label">bad events allowed</div>
              <div class="value" data-testid="budget-allowed">
                {num(b.allowed_bad)}
              </div>
            </div>
            <div class="card">
              <div class="label">events</div>
              <div class="value" data-testid="budget-total">
                {num(b.total)}
              </div>
            </div>
          </div>
          {chart.x.length > 0 ? <Chart x={chart.x} series={chart.series} height={200} testid="budget-chart" /> : <p class="chart empty">No events in the period.</p>}
        </>
      )}
    </div>
  );
}

function BacktestPanel(props: { rule: string }) {
  const route = useRoute();
  const from = route.params.get('bt_from');
  const to = route.params.get('bt_to');
  const [draft, setDraft] = useState({ from: from ?? '-7d', to: to ?? 'now' });
  const result = useLoad(
    async (signal) => (from && to ? api<Backtest>(`/v1/alerts/rules/${encodeURIComponent(props.rule)}/backtest`, { method: 'POST', body: { from, to }, signal }) : null),
    [props.rule, from, to],
  );
  const r = result.data;
  return (
    <div>
      <h4>Backtest</h4>
      <form
        class="actions"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ bt_from: draft.from, bt_to: draft.to });
        }}
      >
        <label class="inline">
          from <input value={draft.from} onInput={(e) => setDraft({ ...draft, from: (e.target as HTMLInputElement).value })} data-testid="backtest-from" />
        </label>
        <label class="inline">
          to <input value={draft.to} onInput={(e) => setDraft({ ...draft, to: (e.target as HTMLInputElement).value })} data-testid="backtest-to" />
        </label>
        <button type="submit" data-testid="backtest-run">
          Run backtest
        </button>
        <span class="hint">When the rule would have fired and resolved over the retained history (at most 7 days).</span>
      </form>
      {result.loading && from && <p class="loading">Replaying…</p>}
      <ErrorBox error={result.error} />
      {r && (
        <>
          <p data-testid="backtest-summary">
            From {time(r.from)} to {time(r.to)}: fired <span data-testid="backtest-fired">{r.fired}</span> times, <span data-testid="backtest-transitions">{r.transitions.length}</span> transitions.
          </p>
          <table>
            <thead>
              <tr>
                <th>severity</th>
                <th>fired at</th>
                <th>resolved at</th>
              </tr>
            </thead>
            <tbody>
              {r.periods.map((p) => (
                <tr data-testid="backtest-period">
                  <td>{p.severity}</td>
                  <td>{time(p.fired_at)}</td>
                  <td>{p.resolved_at ? time(p.resolved_at) : 'still firing'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}
