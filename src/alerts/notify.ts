import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { addressRefusal } from './receiver-address.js';
import { SluiceError } from '../core/errors.js';
import { iso } from '../core/time.js';
import { formatDuration, parseDuration } from './rule-fields.js';
import type { AlertState } from './state.js';
import { activeSilences, matches, type Matcher, type Silence } from './silences.js';

/**
 * From alert states to notifications (pure): routing, grouping with Alertmanager's timers,
 * silences, inhibition, and the payload each receiver type takes. The meaning of the routing
 * fields is Alertmanager's (https://prometheus.io/docs/alerting/latest/configuration/#route):
 *
 * - `group_by`: alerts with the same values of these labels (and the same receiver) form one
 *   group and are sent together. Default `["alertname"]`.
 * - `group_wait` (30s): how long a new group waits before its first notification, to gather
 *   the alerts that fire together.
 * - `group_interval` (5m): how long after a notification a group waits before it sends a
 *   change (a new alert, a resolved one).
 * - `repeat_interval` (4h): how long after a notification an unchanged, still firing group
 *   sends it again.
 *
 * Timers run on the wall clock and are checked at each evaluation pass, so each fires up to
 * one `alerts.evaluateIntervalMs` late. The group's state (what was last sent, when) is
 * written in the same transaction as the notification it queues, whose id is the group, when
 * the group began (a group is forgotten once all its alerts resolved: its next incident is a
 * new group, whose ids must not collide with the old ones still in the outbox) and a
 * sequence number: one change of a group is queued once.
 */

export interface Receiver {
  type: 'webhook' | 'pagerduty' | 'slack';
  url: string;
  routing_key?: string;
  /** Send a notification when alerts resolve (default true). */
  send_resolved: boolean;
}

export interface Routing {
  group_by: string[];
  group_wait: number;
  group_interval: number;
  repeat_interval: number;
  routes: { match: Record<string, string>; receiver: string }[];
  default_receiver: string | null;
  inhibit_rules: InhibitRule[];
}

/** Alertmanager's inhibit rule: a firing alert matching `source_match` mutes those matching `target_match` that have the same values of `equal`. */
export interface InhibitRule {
  source_match: Record<string, string>;
  target_match: Record<string, string>;
  equal: string[];
}

/** What was last sent for a group. */
export interface GroupState {
  receiver: string;
  labels: Record<string, string>;
  /** When the group first had a firing alert (its group_wait starts). */
  createdAt: number;
  notifiedAt: number | null;
  seq: number;
  /** Per fingerprint, the alerts sent as firing: when they began to fire, and their labels and annotations (to resolve an alert whose rule was deleted). */
  sent: Record<string, { startsAt: number; labels?: Record<string, string>; annotations?: Record<string, string> }>;
}

export interface NotifyConfig {
  receivers: Map<string, Receiver>;
  routing: Routing | null;
  silences: Silence[];
  groups: Map<string, GroupState>;
  /** The dead-letter breaker holds the tenant's events: its freshness alert is inhibited (the pause explains it). */
  paused: boolean;
}

export interface PlannedNotification {
  id: string;
  receiver: string;
  body: OutboxBody;
  nextAt: number;
}

/** What the outbox delivers: POST each payload, as JSON, to `url`, in order. */
export interface OutboxBody {
  type: Receiver['type'];
  url: string;
  group: string;
  payloads: unknown[];
}

export const ROUTING_DEFAULTS = { group_by: ['alertname'], group_wait: 30_000, group_interval: 300_000, repeat_interval: 4 * 3_600_000 } as const;

function bad(field: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_INVALID_BODY', message, { field });
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(field, `"${field}" must be a JSON object`);
  return v as Record<string, unknown>;
}

function keys(o: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(k, `unknown field "${k}" in ${where}; allowed: ${allowed.join(', ')}`);
}

function labelMap(v: unknown, field: string): Record<string, string> {
  const o = obj(v ?? {}, field);
  for (const [k, x] of Object.entries(o)) if (typeof x !== 'string') throw bad(`${field}.${k}`, `"${field}.${k}" must be a string`);
  return o as Record<string, string>;
}

function url(v: unknown): string {
  if (typeof v !== 'string' || !/^https?:\/\//.test(v)) throw bad('url', '"url" must be an http:// or https:// URL');
  let host: string;
  try {
    host = new URL(v).hostname.replace(/^\[|\]$/g, '');
  } catch {
    throw bad('url', `"url" ${JSON.stringify(v)} is not a URL`);
  }
  // An address refused whatever the settings is refused when written (host names are checked at each send).
  const refused = isIP(host) ? addressRefusal(host, true) : null;
  if (refused) throw bad('url', `"url": ${refused}`);
  return v;
}

export const RECEIVER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A receiver as `PUT /v1/alerts/receivers/:name` declares it. */
export function parseReceiver(body: unknown): Receiver {
  const o = obj(body, 'receiver');
  keys(o, ['type', 'url', 'routing_key', 'send_resolved'], 'a receiver');
  if (o.type !== 'webhook' && o.type !== 'pagerduty' && o.type !== 'slack') throw bad('type', '"type" must be "webhook" (Alertmanager webhook payload), "pagerduty" (Events API v2) or "slack" (incoming webhook)');
  if (o.send_resolved !== undefined && typeof o.send_resolved !== 'boolean') throw bad('send_resolved', '"send_resolved" must be true or false');
  if (o.type === 'pagerduty' && (typeof o.routing_key !== 'string' || o.routing_key.length === 0)) throw bad('routing_key', 'a pagerduty receiver needs "routing_key" (the integration key of a PagerDuty service)');
  if (o.type !== 'pagerduty' && o.routing_key !== undefined) throw bad('routing_key', '"routing_key" is for pagerduty receivers');
  return { type: o.type, url: url(o.url), ...(o.type === 'pagerduty' ? { routing_key: o.routing_key as string } : {}), send_resolved: (o.send_resolved as boolean | undefined) ?? true };
}

/** The routing as `PUT /v1/alerts/routing` declares it, with Alertmanager's defaults. */
export function parseRouting(body: unknown): Routing {
  const o = obj(body, 'routing');
  keys(o, ['group_by', 'group_wait', 'group_interval', 'repeat_interval', 'routes', 'default_receiver', 'inhibit_rules'], 'the routing');
  const groupBy = o.group_by ?? ROUTING_DEFAULTS.group_by;
  if (!Array.isArray(groupBy) || !groupBy.every((g) => typeof g === 'string')) throw bad('group_by', '"group_by" must be a list of label names');
  const routes = o.routes ?? [];
  if (!Array.isArray(routes)) throw bad('routes', '"routes" must be a list of {match, receiver}');
  const inhibit = o.inhibit_rules ?? [];
  if (!Array.isArray(inhibit)) throw bad('inhibit_rules', '"inhibit_rules" must be a list of {source_match, target_match, equal}');
  if (o.default_receiver !== undefined && o.default_receiver !== null && typeof o.default_receiver !== 'string') throw bad('default_receiver', '"default_receiver" must be a receiver name');
  return {
    group_by: groupBy as string[],
    group_wait: o.group_wait === undefined ? ROUTING_DEFAULTS.group_wait : parseDuration(o.group_wait, 'group_wait'),
    group_interval: o.group_interval === undefined ? ROUTING_DEFAULTS.group_interval : parseDuration(o.group_interval, 'group_interval', { min: 1_000 }),
    repeat_interval: o.repeat_interval === undefined ? ROUTING_DEFAULTS.repeat_interval : parseDuration(o.repeat_interval, 'repeat_interval', { min: 60_000 }),
    routes: routes.map((r: unknown, i) => {
      const x = obj(r, `routes[${i}]`);
      keys(x, ['match', 'receiver'], `routes[${i}]`);
      if (typeof x.receiver !== 'string') throw bad(`routes[${i}].receiver`, `"routes[${i}].receiver" must be a receiver name`);
      return { match: labelMap(x.match, `routes[${i}].match`), receiver: x.receiver };
    }),
    default_receiver: (o.default_receiver as string | undefined) ?? null,
    inhibit_rules: inhibit.map((r: unknown, i) => {
      const x = obj(r, `inhibit_rules[${i}]`);
      keys(x, ['source_match', 'target_match', 'equal'], `inhibit_rules[${i}]`);
      const equal = x.equal ?? [];
      if (!Array.isArray(equal) || !equal.every((e) => typeof e === 'string')) throw bad(`inhibit_rules[${i}].equal`, '"equal" must be a list of label names');
      return { source_match: labelMap(x.source_match, `inhibit_rules[${i}].source_match`), target_match: labelMap(x.target_match, `inhibit_rules[${i}].target_match`), equal: equal as string[] };
    }),
  };
}

export function routingJson(r: Routing): Record<string, unknown> {
  return {
    ...r,
    group_wait: formatDuration(r.group_wait),
    group_interval: formatDuration(r.group_interval),
    repeat_interval: formatDuration(r.repeat_interval),
  };
}

function matchAll(labels: Record<string, string>, match: Record<string, string>): boolean {
  return Object.entries(match).every(([k, v]) => labels[k] === v);
}

/** The receiver of an alert: the first route whose `match` it satisfies, else the default; with no routing, the only receiver if there is one. */
export function routeOf(labels: Record<string, string>, config: Pick<NotifyConfig, 'routing' | 'receivers'>): string | null {
  const r = config.routing;
  if (!r) return config.receivers.size === 1 ? [...config.receivers.keys()][0]! : null;
  for (const route of r.routes) if (matchAll(labels, route.match)) return route.receiver;
  return r.default_receiver;
}

/**
 * Why an alert does not notify, if it does not: a silence (its id) or an inhibition (the
 * fingerprint of the alert that inhibits it). Built in: a firing page inhibits the ticket of
 * the same rule and tenant; a tenant paused by the dead-letter breaker inhibits its freshness
 * alert (`tenant_paused`).
 */
export function mutedBy(alert: AlertState, firing: AlertState[], config: Pick<NotifyConfig, 'routing' | 'silences' | 'paused'>, now: number): { silencedBy: string[]; inhibitedBy: string[] } {
  const silencedBy = activeSilences(config.silences, now)
    .filter((s) => matches(s.matchers, alert.labels))
    .map((s) => s.id);
  const inhibitedBy: string[] = [];
  if (config.paused && alert.rule === 'sluice_freshness') inhibitedBy.push('tenant_paused');
  for (const src of firing) {
    if (src.fingerprint === alert.fingerprint) continue;
    if (alert.severity === 'ticket' && src.severity === 'page' && src.rule === alert.rule) inhibitedBy.push(src.fingerprint);
    else if (
      (config.routing?.inhibit_rules ?? []).some((r) => matchAll(src.labels, r.source_match) && matchAll(alert.labels, r.target_match) && r.equal.every((l) => src.labels[l] === alert.labels[l]))
    ) {
      inhibitedBy.push(src.fingerprint);
    }
  }
  return { silencedBy, inhibitedBy };
}

/** Alertmanager's group key for the root route: `{}:{alertname="x",…}` (the receiver is in the group's name, not here). */
function groupKeyOf(labels: Record<string, string>): string {
  const inner = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',');
  return `{}:{${inner}}`;
}

function groupName(receiver: string, groupKey: string): string {
  return `${receiver}:${createHash('sha256').update(groupKey).digest('hex').slice(0, 16)}`;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface Notifiable {
  state: AlertState;
  status: 'firing' | 'resolved';
  startsAt: number;
  endsAt: number | null;
}

/** The Alertmanager webhook payload, version "4" (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config). */
export function alertmanagerPayload(receiver: string, groupKey: string, groupLabels: Record<string, string>, alerts: Notifiable[], externalUrl: string): Record<string, unknown> {
  const common = (pick: (a: Notifiable) => Record<string, string>): Record<string, string> => {
    const [first, ...rest] = alerts.map(pick);
    return Object.fromEntries(Object.entries(first ?? {}).filter(([k, v]) => rest.every((o) => o[k] === v)));
  };
  return {
    version: '4',
    groupKey,
    truncatedAlerts: 0,
    status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    receiver,
    groupLabels,
    commonLabels: common((a) => a.state.labels),
    commonAnnotations: common((a) => a.state.annotations),
    externalURL: externalUrl,
    alerts: alerts.map((a) => ({
      status: a.status,
      labels: a.state.labels,
      annotations: a.state.annotations,
      startsAt: iso(a.startsAt),
      endsAt: a.endsAt === null ? ZERO_TIME : iso(a.endsAt),
      generatorURL: `${externalUrl}/ui/alerts?rule=${encodeURIComponent(a.state.rule)}`,
      fingerprint: a.state.fingerprint,
    })),
  };
}

function summary(a: Notifiable): string {
  return a.state.annotations.summary ?? `${a.state.rule} (${a.state.severity}) ${a.status} for tenant ${a.state.tenant}`;
}

/** PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): one event per alert, dedup_key = fingerprint. */
export function pagerdutyPayloads(routingKey: string, alerts: Notifiable[], externalUrl: string): unknown[] {
  return alerts.map((a) =>
    a.status === 'resolved'
      ? { routing_key: routingKey, event_action: 'resolve', dedup_key: a.state.fingerprint }
      : {
          routing_key: routingKey,
          event_action: 'trigger',
          dedup_key: a.state.fingerprint,
          payload: {
            summary: summary(a).slice(0, 1024),
            source: `sluice/${a.state.tenant}`,
            severity: a.state.severity === 'page' ? 'critical' : 'warning',
            timestamp: iso(a.startsAt),
            custom_details: { labels: a.state.labels, annotations: a.state.annotations, verdict: a.state.verdict },
          },
          ...(a.state.annotations.runbook_url ? { links: [{ href: a.state.annotations.runbook_url, text: 'runbook' }] } : {}),
          client: 'sluice',
          client_url: `${externalUrl}/ui/alerts`,
        },
  );
}

/**
 * Slack's escaping of message text (https://api.slack.com/reference/surfaces/formatting#escaping):
 * `&`, `<` and `>` as HTML entities, so that text from labels and annotations is shown as
 * written and cannot make a link or a mention (`<!channel>`, `<@U123>`).
 */
export function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A Slack incoming-webhook message (https://api.slack.com/messaging/webhooks); rule names, tenants and summaries escaped. */
export function slackPayload(alerts: Notifiable[]): Record<string, unknown> {
  const lines = alerts.map(
    (a) => `${a.status === 'firing' ? ':red_circle:' : ':white_check_mark:'} *${slackEscape(a.state.rule)}* (${a.state.severity}, ${slackEscape(a.state.tenant)}) ${a.status}: ${slackEscape(summary(a))}`,
  );
  return { text: lines.join('\n') };
}

/** An alert whose rule was deleted, rebuilt from what its group sent, so that its resolution is sent. */
function goneAlert(tenant: string, fp: string, s: GroupState['sent'][string], now: number): AlertState | null {
  if (!s.labels) return null;
  const severity = s.labels.severity === 'ticket' ? 'ticket' : 'page';
  return {
    tenant,
    rule: s.labels.alertname ?? '',
    severity,
    state: 'inactive',
    since: now,
    activeSince: null,
    evaluatedAt: now,
    verdict: { severity, condition: 'ok', windows: [] },
    labels: s.labels,
    annotations: s.annotations ?? {},
    fingerprint: fp,
  };
}

/**
 * The notifications due at `now` for a tenant's alerts, and the new group states to write
 * with them (a null body deletes a group whose alerts all resolved and were sent).
 */
export function planNotifications(
  tenant: string,
  alerts: AlertState[],
  config: NotifyConfig,
  now: number,
  externalUrl = '',
): { notifications: PlannedNotification[]; groups: { kind: 'group'; name: string; body: GroupState | null }[] } {
  const routing = config.routing ?? { ...ROUTING_DEFAULTS, group_by: [...ROUTING_DEFAULTS.group_by], routes: [], default_receiver: null, inhibit_rules: [] };
  const firing = alerts.filter((a) => a.state === 'firing');
  // The alerts each group should hold now: firing and not muted.
  const wanted = new Map<string, { receiver: string; labels: Record<string, string>; alerts: AlertState[] }>();
  for (const a of firing) {
    const muted = mutedBy(a, firing, config, now);
    if (muted.silencedBy.length || muted.inhibitedBy.length) continue;
    const receiver = routeOf(a.labels, config);
    if (!receiver || !config.receivers.has(receiver)) continue;
    const labels = Object.fromEntries(routing.group_by.filter((l) => a.labels[l] !== undefined).map((l) => [l, a.labels[l]!]));
    const name = groupName(receiver, groupKeyOf(labels));
    const g = wanted.get(name) ?? { receiver, labels, alerts: [] };
    g.alerts.push(a);
    wanted.set(name, g);
  }
  const byFingerprint = new Map(alerts.map((a) => [a.fingerprint, a]));
  const notifications: PlannedNotification[] = [];
  const groups: { kind: 'group'; name: string; body: GroupState | null }[] = [];
  for (const name of new Set([...wanted.keys(), ...config.groups.keys()])) {
    const w = wanted.get(name);
    const prev = config.groups.get(name);
    const receiverName = w?.receiver ?? prev!.receiver;
    const receiver = config.receivers.get(receiverName);
    const labels = w?.labels ?? prev!.labels;
    const state: GroupState = prev ? { ...prev } : { receiver: receiverName, labels, createdAt: now, notifiedAt: null, seq: 0, sent: {} };
    const current = new Set((w?.alerts ?? []).map((a) => a.fingerprint));
    const sentSet = new Set(Object.keys(state.sent));
    const changed = current.size !== sentSet.size || [...current].some((f) => !sentSet.has(f));
    let due: boolean;
    if (state.notifiedAt === null) due = current.size > 0 && now >= state.createdAt + routing.group_wait;
    else if (changed) due = now >= state.notifiedAt + routing.group_interval;
    else due = current.size > 0 && now >= state.notifiedAt + routing.repeat_interval;
    if (!prev && !due) {
      if (current.size > 0) groups.push({ kind: 'group', name, body: state });
      continue;
    }
    if (!due) continue;
    if (state.notifiedAt === null && current.size === 0) {
      groups.push({ kind: 'group', name, body: null });
      continue;
    }
    const out: Notifiable[] = [];
    const sent: GroupState['sent'] = {};
    for (const a of w?.alerts ?? []) {
      const startsAt = state.sent[a.fingerprint]?.startsAt ?? a.since;
      sent[a.fingerprint] = { startsAt, labels: a.labels, annotations: a.annotations };
      out.push({ state: a, status: 'firing', startsAt, endsAt: null });
    }
    for (const [fp, s] of Object.entries(state.sent)) {
      if (current.has(fp)) continue;
      // Left the group: resolved (or silenced, inhibited, its rule deleted: sent as resolved, as Alertmanager does).
      const a = byFingerprint.get(fp) ?? goneAlert(tenant, fp, s, now);
      if (a) out.push({ state: a, status: 'resolved', startsAt: s.startsAt, endsAt: a.state === 'firing' ? now : a.since });
    }
    const next: GroupState = { ...state, notifiedAt: now, seq: state.seq + 1, sent };
    const toSend = receiver && !receiver.send_resolved ? out.filter((a) => a.status === 'firing') : out;
    if (receiver && toSend.length > 0) {
      const groupKey = groupKeyOf(labels);
      const payloads =
        receiver.type === 'webhook'
          ? [alertmanagerPayload(receiverName, groupKey, labels, toSend, externalUrl)]
          : receiver.type === 'pagerduty'
            ? pagerdutyPayloads(receiver.routing_key!, toSend, externalUrl)
            : [slackPayload(toSend)];
      notifications.push({ id: `${tenant}/${name}/${state.createdAt}/${next.seq}`, receiver: receiverName, body: { type: receiver.type, url: receiver.url, group: groupKey, payloads }, nextAt: now });
    }
    groups.push({ kind: 'group', name, body: current.size === 0 ? null : next });
  }
  return { notifications, groups };
}

export type { Matcher, Silence };
