import { coerceError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { AlertStore, StoredRule } from '../ports/alerts.js';
import type { AlertSource } from './source.js';
import { INGEST_SETTLE_MS } from '../obs/ingest-outcomes.js';
import { advance, minuteEnds, type AlertStates } from './replay.js';
import { BUILTIN_RULES, lookback, parseRule, type Rule, type Severity } from './rules.js';
import { retiredTransitions, type AlertState, type Transition } from './state.js';
import { planNotifications, type NotifyConfig } from './notify.js';

const MINUTE = 60_000;

/**
 * One evaluation pass over every tenant's rules (the `alerts` service runs it every
 * `alerts.evaluateIntervalMs`). Per rule: the window ends are the whole minutes the
 * watermark passed since the rule's last evaluation (at most `maxCatchUpMinutes`, the most
 * recent ones), each evaluated in order, exactly as a backtest replays history. Per tenant,
 * the states, the transitions and the notifications they cause are written in one
 * transaction: a crash before it leaves the previous evaluation, which the next pass redoes.
 */
export interface EvaluatorOptions {
  store: AlertStore;
  source: AlertSource;
  clock: Clock;
  /** The URL users reach sluice at, for links in notifications. */
  externalUrl?: string;
  /** Minutes replayed after a pause (a stalled watermark, a restart); older ones are skipped. Default 60. */
  maxCatchUpMinutes?: number;
  /** Every tenant (built-in rules apply to each); default: the tenants that have rules. */
  tenants?: () => Promise<string[]>;
  /** Whether the dead-letter breaker holds a tenant's events (it inhibits the tenant's freshness alert). */
  paused?: (tenant: string) => Promise<boolean>;
  /** Called with each rule that fails to evaluate (a broken rule does not stop the others); rule `*`: reading a tenant's series together failed (each rule then reads its own). */
  onRuleError?: (tenant: string, rule: string, error: Error) => void;
}

export interface PassResult {
  tenants: number;
  rules: number;
  transitions: Transition[];
  notifications: number;
  errors: number;
}

export function statesOf(stored: { rule: string; severity: string; body: unknown }[]): Map<string, AlertStates> {
  const out = new Map<string, AlertStates>();
  for (const s of stored) {
    let m = out.get(s.rule);
    if (!m) out.set(s.rule, (m = new Map()));
    m.set(s.severity as Severity, s.body as AlertState);
  }
  return out;
}

export async function evaluatePass(opts: EvaluatorOptions): Promise<PassResult> {
  const result: PassResult = { tenants: 0, rules: 0, transitions: [], notifications: 0, errors: 0 };
  const rules = await opts.store.listRules(null);
  const byTenant = new Map<string, typeof rules>();
  for (const t of (await opts.tenants?.()) ?? []) byTenant.set(t, []);
  for (const r of rules) byTenant.set(r.tenant, [...(byTenant.get(r.tenant) ?? []), r]);
  for (const [tenant, own] of byTenant) {
    const stored = withBuiltins(tenant, own);
    result.tenants++;
    const watermark = await opts.source.watermark(tenant);
    const end = Math.floor(watermark / MINUTE) * MINUTE;
    const previous = statesOf(await opts.store.states(tenant));
    const write = { tenant, states: [] as { rule: string; severity: string; body: unknown }[], transitions: [] as { rule: string; severity: string; at: number; body: unknown }[] };
    const current = new Map<string, AlertStates>();
    const parsed = new Map<string, Rule>();
    // First the window ends of every rule, so that the source reads the series of all of them at once.
    const planned: { rule: Rule; prev: AlertStates | null; ends: number[]; from: number; to: number }[] = [];
    for (const s of stored) {
      let rule: Rule;
      try {
        rule = parseRule(s.name, s.body, { stored: true });
      } catch (e: unknown) {
        result.errors++;
        opts.onRuleError?.(tenant, s.name, coerceError(e));
        continue;
      }
      if (rule.kind === 'builtin' && !rule.enabled) {
        // Turned off: its pending and firing alerts end (PUT does it at once; this catches those left by a race or an older version).
        const prev = previous.get(rule.name);
        if (prev) {
          const retired = retiredStates([...prev.values()], opts.clock.now(), TURNED_OFF);
          for (const st of retired.states) write.states.push({ rule: rule.name, severity: st.severity, body: st });
          for (const t of retired.transitions) write.transitions.push({ rule: t.rule, severity: t.severity, at: t.at, body: t });
          result.transitions.push(...retired.transitions);
          current.set(rule.name, new Map([...prev].map(([sev, st]) => [sev, retired.states.find((x) => x.severity === sev) ?? st])));
        }
        continue;
      }
      parsed.set(rule.name, rule);
      const prev = previous.get(rule.name) ?? null;
      // Ingest availability steps through the minutes of receipt every ingest process has written.
      const until = rule.kind === 'builtin' && rule.burn ? Math.floor((opts.clock.now() - INGEST_SETTLE_MS) / MINUTE) * MINUTE : end;
      const last = prev ? Math.max(...[...prev.values()].map((x) => x.evaluatedAt)) : until - MINUTE;
      // The other built-in rules watch the pipeline now, on the wall clock; the rest step through whole minutes of event time.
      const ends = rule.kind === 'builtin' && !rule.burn ? (opts.clock.now() > last ? [opts.clock.now()] : []) : minuteEnds(Math.max(last, until - (opts.maxCatchUpMinutes ?? 60) * MINUTE), until);
      if (ends.length === 0) {
        if (prev) current.set(rule.name, prev);
        continue;
      }
      planned.push({ rule, prev, ends, from: ends[0]! - lookback(rule), to: until });
    }
    try {
      await opts.source.prepare?.(tenant, planned, watermark);
    } catch (e: unknown) {
      // Not fatal: each rule reads what it needs itself below (and reports its own failure).
      opts.onRuleError?.(tenant, '*', coerceError(e));
    }
    for (const { rule, prev, ends, from, to } of planned) {
      try {
        const data = await opts.source.ruleData(tenant, rule, from, to, watermark);
        await data.prefetch?.(ends);
        const out = advance(tenant, rule, prev, data, ends);
        result.rules++;
        current.set(rule.name, out.states);
        for (const st of out.states.values()) write.states.push({ rule: rule.name, severity: st.severity, body: st });
        for (const t of out.transitions) write.transitions.push({ rule: t.rule, severity: t.severity, at: t.at, body: t });
        result.transitions.push(...out.transitions);
      } catch (e: unknown) {
        result.errors++;
        opts.onRuleError?.(tenant, rule.name, coerceError(e));
        if (prev) current.set(rule.name, prev);
      }
    }
    const config = await loadNotifyConfig(opts.store, tenant);
    config.paused = (await opts.paused?.(tenant)) ?? false;
    const alerts = [...current.values()].flatMap((m) => [...m.values()]);
    const plan = planNotifications(tenant, alerts, config, opts.clock.now(), opts.externalUrl ?? '');
    result.notifications += plan.notifications.length;
    if (write.states.length > 0 || plan.notifications.length > 0 || plan.groups.length > 0) {
      await opts.store.saveEvaluation({ ...write, notifications: plan.notifications, objects: plan.groups });
    }
  }
  opts.source.endPass?.();
  return result;
}

/**
 * Deletes a rule (`DELETE /v1/alerts/rules/:name`) and its alerts' states, and records in the
 * history that its pending and firing alerts ended (firing → resolved, pending → inactive,
 * reason "rule deleted"; for a changed built-in rule, which goes back to its defaults and whose
 * alerts start afresh, "rule reset to its built-in defaults"). A firing alert that was notified
 * is sent as resolved by the next evaluation pass, through the outbox, as any resolution: its
 * group remembers what it sent (see planNotifications). False when there was no rule to delete.
 */
export async function deleteRule(store: AlertStore, tenant: string, name: string, actor: string, now: number): Promise<{ deleted: boolean; transitions: Transition[] }> {
  const before = (await store.states(tenant)).filter((s) => s.rule === name).map((s) => s.body as AlertState);
  if (!(await store.deleteRule(tenant, name, actor))) return { deleted: false, transitions: [] };
  const reason = Object.hasOwn(BUILTIN_RULES, name) ? 'rule reset to its built-in defaults' : 'rule deleted';
  const transitions = retiredTransitions(before, now, reason);
  if (transitions.length > 0) {
    await store.saveEvaluation({ tenant, states: [], transitions: transitions.map((t) => ({ rule: t.rule, severity: t.severity, at: t.at, body: t })), notifications: [], objects: [] });
  }
  return { deleted: true, transitions };
}

/** The reason in the explanation of the alerts a rule turned off ended. */
export const TURNED_OFF = 'rule turned off';

/** The pending and firing alerts among `alerts` ended at `at` (firing → resolved, pending → inactive), with `reason`, and their transitions. */
export function retiredStates(alerts: AlertState[], at: number, reason: string): { states: AlertState[]; transitions: Transition[] } {
  const transitions = retiredTransitions(alerts, at, reason);
  const states = transitions.map((t) => ({ ...alerts.find((a) => a.fingerprint === t.fingerprint && a.severity === t.severity)!, state: t.to, since: at, activeSince: null, verdict: t.verdict }));
  return { states, transitions };
}

/**
 * After `PUT /v1/alerts/rules/:name` turned a rule off (`"enabled": false`): its pending and
 * firing alerts end now, as a deleted rule's do, with reason "rule turned off"; they stay in
 * `GET /v1/alerts` as resolved or inactive, and a notified one is sent as resolved by the next
 * evaluation pass.
 */
export async function turnOffAlerts(store: AlertStore, tenant: string, rule: string, now: number): Promise<Transition[]> {
  const before = (await store.states(tenant)).filter((s) => s.rule === rule).map((s) => s.body as AlertState);
  const { states, transitions } = retiredStates(before, now, TURNED_OFF);
  if (transitions.length > 0) {
    await store.saveEvaluation({
      tenant,
      states: states.map((st) => ({ rule, severity: st.severity, body: st })),
      transitions: transitions.map((t) => ({ rule: t.rule, severity: t.severity, at: t.at, body: t })),
      notifications: [],
      objects: [],
    });
  }
  return transitions;
}

/** A tenant's rules with the built-in ones it has not changed, at their defaults. */
export function withBuiltins(tenant: string, own: StoredRule[]): StoredRule[] {
  const names = new Set(own.map((r) => r.name));
  const builtins = Object.entries(BUILTIN_RULES)
    .filter(([name]) => !names.has(name))
    .map(([name, body]) => ({ tenant, name, body, createdAt: 0, updatedAt: 0 }));
  return [...own, ...builtins];
}

/** A tenant's receivers, routing, silences and group states, as stored. */
export async function loadNotifyConfig(store: AlertStore, tenant: string): Promise<NotifyConfig> {
  const [receivers, routing, silences, groups] = await Promise.all([
    store.listObjects(tenant, 'receiver'),
    store.getObject(tenant, 'routing', 'routing'),
    store.listObjects(tenant, 'silence'),
    store.listObjects(tenant, 'group'),
  ]);
  return {
    receivers: new Map(receivers.map((r) => [r.name, r.body as NotifyConfig['receivers'] extends Map<string, infer R> ? R : never])),
    routing: (routing as NotifyConfig['routing'] | null) ?? null,
    silences: silences.map((s) => s.body as NotifyConfig['silences'][number]),
    groups: new Map(groups.map((g) => [g.name, g.body as NotifyConfig['groups'] extends Map<string, infer G> ? G : never])),
    paused: false,
  };
}
