import { num } from '../format.js';

/**
 * The shapes of `GET /v1/alerts` and `GET /v1/alerts/history` (docs/alerts.md), and how an
 * alert's explanation is shown: per window its bad and total events, the burn rate and the
 * factor it was compared with (SLOs), or the measure, its events and the condition
 * (threshold and built-in rules).
 */
export interface WindowFigure {
  window: string;
  bad: number;
  total: number;
  ratio: number | null;
  burn_rate: number | null;
  threshold: number;
}
export interface Verdict {
  severity: string;
  condition: 'firing' | 'ok' | 'insufficient';
  windows: WindowFigure[];
  value?: { measure: string; window: string; value: number | null; events?: number; bad?: number; op: string; threshold: number };
  /** Why the alert changed state other than by an evaluation ("rule deleted"). */
  reason?: string;
}
export interface Alert {
  rule: string;
  severity: string;
  state: string;
  since: string;
  evaluated_at: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  fingerprint: string;
  silenced: boolean;
  silenced_by: string[];
  inhibited: boolean;
  inhibited_by: string[];
  explanation: Verdict;
}
export interface Transition {
  rule: string;
  severity: string;
  fingerprint: string;
  from: string;
  to: string;
  at: string;
  explanation: Verdict;
}

export const STATES = ['firing', 'pending', 'insufficient_data', 'resolved', 'inactive'] as const;

const OPS: Record<string, string> = { gt: '>', gte: '≥', lt: '<', lte: '≤', eq: '=', neq: '≠' };

/** The numbers behind a verdict, as text; every figure has its own data-testid. */
export function Explanation(props: { verdict: Verdict }) {
  const v = props.verdict;
  return (
    <div class="small" data-testid="alert-explanation">
      <span data-testid="alert-condition">{v.condition}</span>
      {v.reason && <span data-testid="alert-reason">: {v.reason}</span>}
      {v.windows.map((w) => (
        <div data-testid="alert-window">
          <span data-testid="alert-window-name">{w.window}</span>: <span data-testid="alert-window-bad">{num(w.bad)}</span> bad of{' '}
          <span data-testid="alert-window-total">{num(w.total)}</span>, burn rate <span data-testid="alert-window-burn">{num(w.burn_rate)}</span>
          {' vs '}
          <span data-testid="alert-window-threshold">{num(w.threshold)}</span>×
        </div>
      ))}
      {v.value && (
        <div data-testid="alert-value">
          {v.value.window === 'now' ? `${v.value.measure} now` : `${v.value.measure} over ${v.value.window}`} = <span data-testid="alert-value-value">{num(v.value.value)}</span>
          {v.value.window === 'now' || v.value.events === undefined ? '' : v.value.bad === undefined ? ` (${num(v.value.events)} events)` : ` (${num(v.value.bad)} of ${num(v.value.events)} events)`}, fires when{' '}
          {OPS[v.value.op] ?? v.value.op} {num(v.value.threshold)}
        </div>
      )}
    </div>
  );
}

/** Labels as `name=value` chips, drawn as text. */
export function Labels(props: { labels: Record<string, string>; testid?: string }) {
  return (
    <span data-testid={props.testid}>
      {Object.entries(props.labels).map(([k, v]) => (
        <span class="chip mono">
          {k}={v}
        </span>
      ))}
    </span>
  );
}
