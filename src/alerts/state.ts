import { createHash } from 'node:crypto';
import type { Verdict } from './evaluate.js';
import type { Rule, Severity } from './rules.js';

/**
 * The state machine of one alert: a rule at one severity (an SLO has a page and a ticket
 * alert; a threshold rule one). States:
 *
 * - `inactive`: the condition does not hold (or the rule is new and evaluated nothing yet).
 * - `pending`: the condition holds, for less than the rule's `for`.
 * - `firing`: the condition has held for `for` (at once when `for` is 0, as for SLOs, whose
 *   windows already say how long the budget has burned).
 * - `resolved`: it fired and the condition no longer holds (the windows that fired cleared);
 *   it stays `resolved` until the condition holds again.
 * - `insufficient_data`: a window has fewer events than `min_events`: the rule cannot tell.
 *   Never paging, never green. An alert that was firing and loses its data leaves `firing`.
 *
 * Time is the end of the evaluated windows (event time, a whole minute at or before the
 * watermark), not the wall clock: a replay over history (a backtest) steps exactly as the
 * live evaluation did.
 */
export type AlertStateName = 'inactive' | 'pending' | 'firing' | 'resolved' | 'insufficient_data';
export const ALERT_STATES: readonly AlertStateName[] = ['inactive', 'pending', 'firing', 'resolved', 'insufficient_data'];

export interface AlertState {
  tenant: string;
  rule: string;
  severity: Severity;
  state: AlertStateName;
  /** Window end at which the current state began. */
  since: number;
  /** Window end at which the condition began to hold (pending or firing); null otherwise. */
  activeSince: number | null;
  /** Window end of the last evaluation. */
  evaluatedAt: number;
  /** The verdict of the last evaluation: why the alert is in its state. */
  verdict: Verdict;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  fingerprint: string;
}

/** A change of state, with the numbers that caused it. */
export interface Transition {
  tenant: string;
  rule: string;
  severity: Severity;
  from: AlertStateName;
  to: AlertStateName;
  /** Window end of the evaluation that changed it. */
  at: number;
  verdict: Verdict;
  fingerprint: string;
}

/** An alert's labels: `alertname` (the rule), `tenant`, `severity`, and the rule's own labels. */
export function alertLabels(tenant: string, rule: Rule, severity: Severity): Record<string, string> {
  return { ...rule.labels, alertname: rule.name, tenant, severity };
}

/**
 * A stable identity of an alert from its labels (sorted name=value pairs, SHA-256, 16 hex
 * digits, as Alertmanager's fingerprints are 16 hex digits): PagerDuty's `dedup_key`.
 */
export function fingerprint(labels: Record<string, string>): string {
  const text = Object.keys(labels)
    .sort()
    .map((k) => `${k}\u0000${labels[k]}`)
    .join('\u0001');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** The state before any evaluation. */
export function initialState(tenant: string, rule: Rule, severity: Severity, at: number): AlertState {
  const labels = alertLabels(tenant, rule, severity);
  return {
    tenant,
    rule: rule.name,
    severity,
    state: 'inactive',
    since: at,
    activeSince: null,
    evaluatedAt: at,
    verdict: { severity, condition: 'ok', windows: [] },
    labels,
    annotations: rule.annotations,
    fingerprint: fingerprint(labels),
  };
}

/** The next state from a verdict at window end `at`; `forMs` is the rule's `for` (0 for SLOs). */
export function step(prev: AlertState, verdict: Verdict, at: number, forMs: number): { next: AlertState; transition: Transition | null } {
  let to: AlertStateName;
  let activeSince = prev.activeSince;
  if (verdict.condition === 'firing') {
    if (prev.state === 'firing') to = 'firing';
    else {
      activeSince = prev.state === 'pending' && activeSince !== null ? activeSince : at;
      to = at - activeSince >= forMs ? 'firing' : 'pending';
    }
  } else {
    activeSince = null;
    if (verdict.condition === 'insufficient') to = 'insufficient_data';
    else if (prev.state === 'firing' || prev.state === 'resolved') to = 'resolved';
    else to = 'inactive';
  }
  const next: AlertState = { ...prev, state: to, activeSince, evaluatedAt: at, verdict, since: to === prev.state ? prev.since : at };
  const transition = to === prev.state ? null : { tenant: prev.tenant, rule: prev.rule, severity: prev.severity, from: prev.state, to, at, verdict, fingerprint: prev.fingerprint };
  return { next, transition };
}

/**
 * The transitions that end a rule's alerts when the rule is deleted (or a changed built-in
 * rule goes back to its defaults, which starts its alerts afresh): a firing alert is
 * `resolved`, a pending one `inactive`, at `at` (the wall clock of the deletion), with the
 * reason in the explanation. The others change nothing.
 */
export function retiredTransitions(alerts: AlertState[], at: number, reason: string): Transition[] {
  return alerts
    .filter((a) => a.state === 'firing' || a.state === 'pending')
    .map((a) => ({
      tenant: a.tenant,
      rule: a.rule,
      severity: a.severity,
      from: a.state,
      to: a.state === 'firing' ? 'resolved' : 'inactive',
      at,
      verdict: { severity: a.severity, condition: 'ok', windows: [], reason },
      fingerprint: a.fingerprint,
    }));
}

/** The rule's `for`, ms (0 for SLOs). */
export function forOf(rule: Rule): number {
  return rule.kind === 'slo' ? 0 : rule.for;
}
