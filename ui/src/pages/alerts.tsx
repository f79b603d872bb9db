import { useState } from 'preact/hooks';
import { api, type Who } from '../api.js';
import { num, time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';
import { setParams, useRoute } from '../router.js';
import { Explanation, Labels, STATES, type Alert, type Transition } from './alert-explain.js';
import { AlertRules } from './alert-rules.js';
import { Silences } from './alert-silences.js';

/**
 * `/ui/alerts?state=&rule=&bucket=&bt_from=&bt_to=&from=&to=`: the current alerts with their
 * state, severity, since and why (`GET /v1/alerts`, read key), the rules with a rule's error
 * budget and backtest (`rule`, `bucket`, `bt_from`, `bt_to`), the silences (created and
 * expired with an admin key) and the history of transitions between `from` and `to`.
 */
export function Alerts(props: { who: Who }) {
  const route = useRoute();
  const state = route.params.get('state') ?? '';
  const current = useLoad((signal) => api<{ alerts: Alert[]; counts: Record<string, number> }>(`/v1/alerts${state ? `?state=${encodeURIComponent(state)}` : ''}`, { signal }), [state]);
  const [tick, setTick] = useState(0);
  const refresh = () => {
    current.reload();
    setTick((t) => t + 1);
  };
  return (
    <section>
      <div class="toolbar">
        <h2>Alerts</h2>
        <button type="button" onClick={refresh} data-testid="alerts-refresh">
          Refresh
        </button>
      </div>
      <ErrorBox error={current.error} />
      <div class="cards">
        {STATES.map((s) => (
          <button type="button" class={`card ${s === 'firing' && (current.data?.counts.firing ?? 0) > 0 ? 'bad' : ''} ${state === s ? 'active' : ''}`} onClick={() => setParams({ state: state === s ? null : s })} data-testid={`alerts-count-${s}`}>
            <div class="label">{s.replace('_', ' ')}</div>
            <div class="value">{current.data ? num(current.data.counts[s] ?? 0) : '–'}</div>
          </button>
        ))}
      </div>
      {state && (
        <p class="meta">
          Only <span data-testid="alerts-state-filter">{state}</span> alerts.{' '}
          <button type="button" class="link" onClick={() => setParams({ state: null })}>
            Show all
          </button>
        </p>
      )}
      {current.data && current.data.alerts.length === 0 && <p class="meta">No alerts{state ? ` in state ${state}` : ''}.</p>}
      <table>
        <thead>
          <tr>
            <th>rule</th>
            <th>severity</th>
            <th>state</th>
            <th>since</th>
            <th>why</th>
            <th>labels and annotations</th>
          </tr>
        </thead>
        <tbody>
          {current.data?.alerts.map((a) => (
            <tr data-testid="alert-row" data-rule={a.rule} data-severity={a.severity} class={a.state === 'firing' ? 'firing' : ''}>
              <td data-testid="alert-rule">{a.rule}</td>
              <td data-testid="alert-severity">{a.severity}</td>
              <td>
                <span class={`state ${a.state}`} data-testid="alert-state">
                  {a.state}
                </span>
                {a.silenced && (
                  <div class="meta" data-testid="alert-silenced">
                    silenced by {a.silenced_by.join(', ')}
                  </div>
                )}
                {a.inhibited && (
                  <div class="meta" data-testid="alert-inhibited">
                    inhibited by {a.inhibited_by.map((f) => inhibitor(current.data!.alerts, f)).join(', ')}
                  </div>
                )}
              </td>
              <td data-testid="alert-since">{time(a.since)}</td>
              <td>
                <Explanation verdict={a.explanation} />
              </td>
              <td>
                <Labels labels={a.labels} testid="alert-labels" />
                {Object.entries(a.annotations).map(([k, v]) => (
                  <div class="small" data-testid="alert-annotation">
                    <span class="meta">{k}:</span> {v}
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <AlertRules who={props.who} refreshed={tick} />
      <Silences who={props.who} refreshed={tick} onChanged={current.reload} />
      <History refreshed={tick} />
    </section>
  );
}

/** `GET /v1/alerts/history?from=&to=`: every transition with the numbers that caused it. */
function History(props: { refreshed: number }) {
  const route = useRoute();
  const from = route.params.get('from') ?? '-24h';
  const to = route.params.get('to') ?? 'now';
  const [draft, setDraft] = useState({ from, to });
  const history = useLoad((signal) => api<{ from: string; to: string; transitions: Transition[] }>(`/v1/alerts/history?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, { signal }), [from, to, props.refreshed]);
  return (
    <div class="panel">
      <h3>History</h3>
      <form
        class="actions"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ from: draft.from === '-24h' ? null : draft.from, to: draft.to === 'now' ? null : draft.to });
        }}
      >
        <label class="inline">
          from <input value={draft.from} onInput={(e) => setDraft({ ...draft, from: (e.target as HTMLInputElement).value })} data-testid="history-from" />
        </label>
        <label class="inline">
          to <input value={draft.to} onInput={(e) => setDraft({ ...draft, to: (e.target as HTMLInputElement).value })} data-testid="history-to" />
        </label>
        <button type="submit" data-testid="history-show">
          Show
        </button>
        {history.data && (
          <span class="meta">
            {time(history.data.from)} to {time(history.data.to)}: <span data-testid="history-count">{history.data.transitions.length}</span> transitions
          </span>
        )}
      </form>
      <ErrorBox error={history.error} />
      <table>
        <thead>
          <tr>
            <th>at</th>
            <th>rule</th>
            <th>severity</th>
            <th>change</th>
            <th>why</th>
          </tr>
        </thead>
        <tbody>
          {history.data?.transitions.map((t) => (
            <tr data-testid="history-row">
              <td>{time(t.at)}</td>
              <td>{t.rule}</td>
              <td>{t.severity}</td>
              <td data-testid="history-change">
                {t.from} → {t.to}
              </td>
              <td>
                <Explanation verdict={t.explanation} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** An inhibiting alert as "rule (severity)" when it is in the list, else its fingerprint (Alertmanager's inhibitedBy). */
function inhibitor(alerts: readonly { fingerprint: string; rule: string; severity: string }[], fingerprint: string): string {
  const a = alerts.find((x) => x.fingerprint === fingerprint);
  return a ? `${a.rule} (${a.severity})` : fingerprint;
}
