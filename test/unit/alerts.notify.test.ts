import type http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deliverDue } from '../../src/alerts/deliver.js';
import { evaluatePass } from '../../src/alerts/evaluator.js';
import { parseReceiver, parseRouting, planNotifications, type GroupState, type NotifyConfig } from '../../src/alerts/notify.js';
import { parseRule, type Rule } from '../../src/alerts/rules.js';
import { isActive, matches, parseSilence } from '../../src/alerts/silences.js';
import type { AlertSource } from '../../src/alerts/source.js';
import { initialState, step, type AlertState } from '../../src/alerts/state.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { ManualClock } from '../../src/core/clock.js';
import { tmpDir } from '../helpers/tmp.js';
import { steadyMinutes, webhookReceiver } from '../helpers/alerts.js';

const M = 60_000;

function firing(rule: string, severity: 'page' | 'ticket', at: number, labels: Record<string, string> = {}): AlertState {
  const r = parseRule(rule, { kind: 'threshold', query: {}, window: '5m', condition: { op: 'gt', value: 0 }, severity, labels }) as Rule;
  return step(initialState('acme', r, severity, at), { severity, condition: 'firing', windows: [] }, at, 0).next;
}

function resolve(a: AlertState, at: number): AlertState {
  return step(a, { severity: a.severity, condition: 'ok', windows: [] }, at, 0).next;
}

function config(over: Partial<NotifyConfig> = {}): NotifyConfig {
  return {
    receivers: new Map([['oncall', parseReceiver({ type: 'webhook', url: 'http://127.0.0.1:1/hook' })]]),
    routing: parseRouting({ group_wait: '30s', group_interval: '5m', repeat_interval: '4h', default_receiver: 'oncall' }),
    silences: [],
    groups: new Map(),
    paused: false,
    ...over,
  };
}

/** Runs the planner as the evaluation does: the group states it writes are read back next time. */
function planner(cfg: NotifyConfig) {
  return (alerts: AlertState[], now: number) => {
    const plan = planNotifications('acme', alerts, cfg, now, 'http://sluice');
    for (const g of plan.groups) {
      if (g.body === null) cfg.groups.delete(g.name);
      else cfg.groups.set(g.name, g.body as GroupState);
    }
    return plan.notifications;
  };
}

describe('grouping timers (Alertmanager semantics)', () => {
  it('group.waits-group-wait-then-sends-once-then-repeats-after-repeat-interval', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const plan = planner(config());
    const a = firing('errors', 'page', clock.now());
    expect(plan([a], clock.now())).toEqual([]);
    expect(plan([a], clock.now() + 29_000)).toEqual([]);
    const [first] = plan([a], clock.now() + 30_000);
    expect(first!.receiver).toBe('oncall');
    const body = first!.body.payloads[0] as Record<string, unknown>;
    expect(body).toMatchObject({ version: '4', status: 'firing', receiver: 'oncall', groupLabels: { alertname: 'errors' }, commonLabels: { alertname: 'errors', tenant: 'acme', severity: 'page' } });
    expect((body.alerts as unknown[])[0]).toMatchObject({ status: 'firing', endsAt: '0001-01-01T00:00:00Z', fingerprint: a.fingerprint });
    // Unchanged: nothing until repeat_interval.
    expect(plan([a], clock.now() + 30_000 + 3_600_000)).toEqual([]);
    expect(plan([a], clock.now() + 30_000 + 4 * 3_600_000)).toHaveLength(1);
  });

  it('group.a-change-waits-for-group-interval-and-resolved-is-sent-once', () => {
    const t0 = Date.UTC(2026, 0, 1);
    const plan = planner(config({ routing: parseRouting({ group_by: ['tenant'], group_wait: '0s', group_interval: '5m', default_receiver: 'oncall' }) }));
    const a = firing('errors', 'page', t0);
    expect(plan([a], t0)).toHaveLength(1);
    const b = firing('latency', 'page', t0 + M);
    // A second alert joins the group: sent at group_interval after the first notification, not before.
    expect(plan([a, b], t0 + M)).toEqual([]);
    const [second] = plan([a, b], t0 + 5 * M);
    expect((second!.body.payloads[0] as { alerts: unknown[] }).alerts).toHaveLength(2);
    const ra = resolve(a, t0 + 6 * M);
    const rb = resolve(b, t0 + 6 * M);
    expect(plan([ra, rb], t0 + 6 * M)).toEqual([]);
    const [third] = plan([ra, rb], t0 + 10 * M);
    expect(third!.body.payloads[0]).toMatchObject({ status: 'resolved' });
    expect(third!.id).toMatch(/\/3$/);
    // Nothing more: the group is gone.
    expect(plan([ra, rb], t0 + 60 * M)).toEqual([]);
  });

  it('group.a-second-incident-of-a-resolved-group-is-queued-under-a-new-id', () => {
    // The outbox queues a notification unless its id exists: a group that resolved (and was
    // forgotten) and fires again must not reuse the ids of its first incident.
    const plan = planner(config({ routing: parseRouting({ group_wait: '0s', group_interval: '1m', default_receiver: 'oncall' }) }));
    const a = firing('errors', 'page', 0);
    const ids = [...plan([a], 0), ...plan([resolve(a, M)], 2 * M)].map((n) => n.id);
    const again = firing('errors', 'page', 10 * M);
    ids.push(...[...plan([again], 10 * M), ...plan([resolve(again, 11 * M)], 12 * M)].map((n) => n.id));
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(4);
  });

  it('group.an-alert-whose-rule-is-deleted-is-sent-as-resolved', () => {
    const plan = planner(config({ routing: parseRouting({ group_wait: '0s', group_interval: '1m', default_receiver: 'oncall' }) }));
    const a = firing('errors', 'page', 0);
    expect(plan([a], 0)).toHaveLength(1);
    const [gone] = plan([], 2 * M);
    expect(gone!.body.payloads[0]).toMatchObject({ status: 'resolved', alerts: [{ status: 'resolved', fingerprint: a.fingerprint, labels: { alertname: 'errors', severity: 'page', tenant: 'acme' } }] });
    expect(plan([], 4 * M)).toEqual([]);
  });

  it('group.send-resolved-false-sends-no-resolution', () => {
    const t0 = 0;
    const cfg = config({ receivers: new Map([['oncall', parseReceiver({ type: 'webhook', url: 'http://x.test/', send_resolved: false })]]), routing: parseRouting({ group_wait: '0s', group_interval: '1m', default_receiver: 'oncall' }) });
    const plan = planner(cfg);
    const a = firing('errors', 'page', t0);
    expect(plan([a], t0)).toHaveLength(1);
    expect(plan([resolve(a, M)], 2 * M)).toEqual([]);
    expect(cfg.groups.size).toBe(0);
  });

  it('routing.first-matching-route-wins-else-the-default', () => {
    const cfg = config({
      receivers: new Map([
        ['oncall', parseReceiver({ type: 'pagerduty', url: 'https://events.pagerduty.com/v2/enqueue', routing_key: 'R1' })],
        ['tickets', parseReceiver({ type: 'slack', url: 'https://hooks.slack.com/services/x' })],
      ]),
      routing: parseRouting({ group_wait: '0s', routes: [{ match: { severity: 'page' }, receiver: 'oncall' }], default_receiver: 'tickets' }),
    });
    const plan = planner(cfg);
    const page = firing('errors', 'page', 0);
    const ticket = firing('slow', 'ticket', 0);
    const out = plan([page, ticket], 0);
    const pd = out.find((n) => n.receiver === 'oncall')!;
    expect(pd.body.payloads[0]).toMatchObject({ routing_key: 'R1', event_action: 'trigger', dedup_key: page.fingerprint, payload: { severity: 'critical', source: 'sluice/acme' } });
    const slack = out.find((n) => n.receiver === 'tickets')!;
    expect((slack.body.payloads[0] as { text: string }).text).toContain('*slow* (ticket, acme) firing');
  });

  it('slack.text-from-annotations-is-escaped-so-it-cannot-mention-or-link', () => {
    const cfg = config({ receivers: new Map([['chat', parseReceiver({ type: 'slack', url: 'https://hooks.slack.com/services/x' })]]), routing: parseRouting({ group_wait: '0s', default_receiver: 'chat' }) });
    const a = firing('errors', 'page', 0);
    a.annotations = { summary: '<!channel> p99 > 2s & <@U123> <https://evil.test|click>' };
    const [n] = planner(cfg)([a], 0);
    const text = (n!.body.payloads[0] as { text: string }).text;
    expect(text).toBe(':red_circle: *errors* (page, acme) firing: &lt;!channel&gt; p99 &gt; 2s &amp; &lt;@U123&gt; &lt;https://evil.test|click&gt;');
    expect(text).not.toMatch(/[<>]/);
  });
});

describe('silences and inhibition', () => {
  it('silence.matchers-and-time-bounds-mute-an-alert-that-still-shows', () => {
    const now = Date.UTC(2026, 0, 1, 12);
    const s = parseSilence({ matchers: [{ name: 'alertname', value: 'err.*', isRegex: true }], starts_at: '2026-01-01T11:00:00Z', ends_at: '2026-01-01T13:00:00Z', comment: 'deploy' }, 'key-1', now);
    expect(isActive(s, now)).toBe(true);
    expect(isActive(s, Date.UTC(2026, 0, 1, 13))).toBe(false);
    expect(matches(s.matchers, { alertname: 'errors' })).toBe(true);
    expect(matches(s.matchers, { alertname: 'latency' })).toBe(false);
    const plan = planner(config({ silences: [s], routing: parseRouting({ group_wait: '0s', default_receiver: 'oncall' }) }));
    expect(plan([firing('errors', 'page', now)], now)).toEqual([]);
    expect(plan([firing('latency', 'page', now)], now)).toHaveLength(1);
    expect(() => parseSilence({ matchers: [{ name: 'a', value: 'b' }], comment: 'x' }, 'k', now)).toThrow(/"ends_at" is required/);
  });

  it('silence.recurring-follows-weekdays-and-hours-in-its-time-zone', () => {
    // Sundays 02:00-04:00 in Paris (UTC+1 in January).
    const s = parseSilence({ matchers: [{ name: 'tenant', value: 'acme' }], comment: 'weekly maintenance', recurring: { weekdays: ['sunday'], start_time: '02:00', end_time: '04:00', time_zone: 'Europe/Paris' } }, 'k', Date.UTC(2026, 0, 1));
    expect(isActive(s, Date.UTC(2026, 0, 4, 1, 30))).toBe(true); // Sunday 02:30 Paris
    expect(isActive(s, Date.UTC(2026, 0, 4, 3, 0))).toBe(false); // Sunday 04:00 Paris
    expect(isActive(s, Date.UTC(2026, 0, 4, 0, 59))).toBe(false); // Sunday 01:59 Paris
    expect(isActive(s, Date.UTC(2026, 0, 5, 1, 30))).toBe(false); // Monday
    const overnight = parseSilence({ matchers: [{ name: 'tenant', value: 'acme' }], comment: 'batch', recurring: { weekdays: ['sat'], start_time: '23:00', end_time: '01:00' } }, 'k', 0);
    expect(isActive(overnight, Date.UTC(2026, 0, 3, 23, 30))).toBe(true); // Saturday 23:30 UTC
    expect(isActive(overnight, Date.UTC(2026, 0, 4, 0, 30))).toBe(true); // Sunday 00:30 UTC
    expect(isActive(overnight, Date.UTC(2026, 0, 4, 1, 0))).toBe(false);
  });

  it('inhibit.a-firing-page-mutes-the-ticket-of-the-same-rule-and-user-rules-apply', () => {
    const plan = planner(config({ routing: parseRouting({ group_wait: '0s', group_by: ['alertname', 'severity'], default_receiver: 'oncall', inhibit_rules: [{ source_match: { alertname: 'freshness' }, target_match: { severity: 'page' }, equal: ['tenant'] }] }) }));
    const page = firing('errors', 'page', 0);
    const ticket = firing('errors', 'ticket', 0);
    const out = plan([page, ticket], 0);
    expect(out).toHaveLength(1);
    expect((out[0]!.body.payloads[0] as { commonLabels: Record<string, string> }).commonLabels.severity).toBe('page');
    const plan2 = planner(config({ routing: parseRouting({ group_wait: '0s', default_receiver: 'oncall', inhibit_rules: [{ source_match: { alertname: 'freshness' }, target_match: { severity: 'page' }, equal: ['tenant'] }] }) }));
    const out2 = plan2([firing('freshness', 'ticket', 0), firing('errors', 'page', 0)], 0);
    expect(out2.map((n) => (n.body.payloads[0] as { groupLabels: Record<string, string> }).groupLabels.alertname)).toEqual(['freshness']);
  });
});

describe('evaluation pass and outbox on a real catalog and a real HTTP receiver', () => {
  const servers: http.Server[] = [];
  afterEach(() => servers.forEach((s) => s.close()));

  const receiver = (status: () => number) => webhookReceiver(servers, status);

  it('outbox.a-firing-slo-is-queued-once-retried-with-backoff-and-delivered-once', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const catalog = new SqliteCatalog(path.join(tmpDir('sluice-alerts-'), 'sluice.db'));
    const store = catalog.alerts;
    let answer = 503;
    const hook = await receiver(() => answer);
    await store.putRule('acme', 'errors', { kind: 'slo', objective: 0.99, total: { event: 'req' }, bad: { event: 'req', filters: [{ field: 'properties.status', op: 'gte', value: 500 }] } }, 'k');
    await store.putObject('acme', 'receiver', 'oncall', parseReceiver({ type: 'webhook', url: hook.url }), 'k');
    await store.putObject('acme', 'routing', 'routing', parseRouting({ group_wait: '30s', default_receiver: 'oncall' }), 'k');
    // Exact per-minute data, 20 % bad for the last two hours: the source the store would give.
    const source: AlertSource = {
      watermark: async () => clock.now(),
      counts: async () => new Map(),
      ruleData: async (_t, r, from, to) => {
        // The built-in rules (ingest availability reads its own minutes) see no data.
        if (r.name !== 'errors') return { slo: { total: new Map(), bad: new Map() } };
        return { slo: steadyMinutes(from, to, Date.UTC(2026, 0, 1, 10), 50, 10) };
      },
    };
    const pass = () => evaluatePass({ store, source, clock, externalUrl: 'http://sluice' });
    const first = await pass();
    expect(first.transitions.filter((t) => t.rule === 'errors').map((t) => `${t.severity}:${t.from}->${t.to}`)).toEqual(['page:inactive->firing', 'ticket:inactive->firing']);
    expect(first.notifications).toBe(0); // group_wait
    await clock.advance(30_000);
    expect((await pass()).notifications).toBe(1);
    await clock.advance(30_000);
    expect((await pass()).notifications).toBe(0);
    // The receiver fails: retried with backoff, never lost.
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 0, failed: 1 });
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 0, failed: 0 });
    answer = 200;
    await clock.advance(2_000);
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 1, failed: 0 });
    expect(await deliverDue({ store, clock: new ManualClock(clock.now() + 3_600_000) })).toEqual({ delivered: 0, failed: 0 });
    expect(hook.bodies).toHaveLength(1);
    // The page inhibits the ticket of the same rule: one alert in the payload.
    // generatorURL opens the rule on the console's alerts page (the JSON API would need a key).
    expect(hook.bodies[0]).toMatchObject({ version: '4', status: 'firing', alerts: [{ labels: { alertname: 'errors', severity: 'page', tenant: 'acme' }, generatorURL: 'http://sluice/ui/alerts?rule=errors' }] });
    expect(await store.notificationCounts()).toEqual([{ tenant: 'acme', receiver: 'oncall', delivered: 1, failed: 1 }]);
    const history = await store.history('acme', 0, Date.UTC(2027, 0), 10);
    expect(history.find((h) => h.rule === 'errors')!.body).toMatchObject({ to: 'firing', verdict: { windows: [{ window: '1h', bad: 600, total: 3000, ratio: 0.2, threshold: 14.4 }, { window: '5m' }, { window: '6h' }, { window: '30m' }] } });
    await catalog.close();
  });

  it('builtin.freshness-pages-after-10-minutes-behind-and-a-paused-tenant-inhibits-it', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const catalog = new SqliteCatalog(path.join(tmpDir('sluice-alerts-'), 'sluice.db'));
    const store = catalog.alerts;
    const hook = await receiver(() => 200);
    await store.putObject('acme', 'receiver', 'oncall', parseReceiver({ type: 'webhook', url: hook.url }), 'k');
    await store.putObject('acme', 'routing', 'routing', parseRouting({ group_wait: '0s', default_receiver: 'oncall' }), 'k');
    // The watermark stalls at 12:00 while the clock moves on.
    const stalled = Date.UTC(2026, 0, 1, 12);
    let gap: number | null = null;
    const source: AlertSource = {
      watermark: async () => stalled,
      counts: async () => new Map(),
      ruleData: async (_t, r) => ({ signal: r.kind === 'builtin' ? { value: r.signal === 'freshness' ? (clock.now() - stalled) / 1000 : gap, window: 'now', events: 0 } : null }),
    };
    let paused = false;
    const pass = () => evaluatePass({ store, source, clock, tenants: async () => ['acme'], paused: async () => paused });
    const state = async (rule: string) => ((await store.states('acme')).find((s) => s.rule === rule)!.body as AlertState).state;
    await pass();
    expect(await state('sluice_freshness')).toBe('inactive');
    // Unknown until the conservation check has run once.
    expect(await state('sluice_conservation_gap')).toBe('insufficient_data');
    gap = 0;
    await clock.advance(6 * M);
    await pass();
    expect(await state('sluice_freshness')).toBe('pending');
    expect(await state('sluice_conservation_gap')).toBe('inactive');
    await clock.advance(9 * M);
    await pass();
    expect(await state('sluice_freshness')).toBe('pending');
    await clock.advance(M);
    // Paused by the breaker: firing, but inhibited (the pause explains the stall).
    paused = true;
    await pass();
    expect(await state('sluice_freshness')).toBe('firing');
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 0, failed: 0 });
    paused = false;
    await clock.advance(M);
    await pass();
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 1, failed: 0 });
    expect(hook.bodies[0]).toMatchObject({ status: 'firing', commonLabels: { alertname: 'sluice_freshness', severity: 'page', tenant: 'acme' } });
    await catalog.close();
  });

  it('lease.one-of-two-processes-works-the-other-takes-over-after-the-ttl-and-sends-nothing-twice', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const file = path.join(tmpDir('sluice-alerts-'), 'sluice.db');
    const [c1, c2] = [new SqliteCatalog(file), new SqliteCatalog(file)];
    let answer = 503;
    const hook = await receiver(() => answer);
    await c1.alerts.putRule('acme', 'silent', { kind: 'threshold', query: { event: 'checkout' }, window: '5m', condition: { op: 'lt', value: 1 } }, 'k');
    await c1.alerts.putObject('acme', 'receiver', 'oncall', parseReceiver({ type: 'webhook', url: hook.url }), 'k');
    await c1.alerts.putObject('acme', 'routing', 'routing', parseRouting({ group_wait: '0s', default_receiver: 'oncall' }), 'k');
    // No checkout at all: the threshold rule fires at the first evaluation.
    const source: AlertSource = { watermark: async () => clock.now(), counts: async () => new Map(), ruleData: async (_t, r) => (r.kind === 'builtin' ? { signal: { value: 0, window: 'now', events: 0 } } : { partials: new Map() }) };
    const { alertServices } = await import('../../src/alerts/service.js');
    const opts = { source, clock, evaluateIntervalMs: 30_000, deliverIntervalMs: 1_000, leaseTtlMs: 10_000, externalUrl: '' };
    const a = alertServices({ ...opts, store: c1.alerts, owner: 'a' });
    const b = alertServices({ ...opts, store: c2.alerts, owner: 'b' });
    const abortA = new AbortController();
    const abortB = new AbortController();
    for (const s of a) await s.start(abortA.signal);
    await clock.advance(0);
    for (const s of b) await s.start(abortB.signal);
    await clock.advance(3_000);
    // A holds the lease: it evaluated, queued the page, and tried to deliver it (refused).
    expect((await c1.alerts.states('acme')).find((s) => s.rule === 'silent')!.body).toMatchObject({ state: 'firing' });
    expect(hook.refused).toBeGreaterThan(0);
    // A dies without releasing the lease; the receiver comes back.
    for (const s of a) await s.stop();
    answer = 200;
    await clock.advance(5_000);
    expect(hook.bodies).toHaveLength(0); // B waits for A's lease to expire
    expect(await c2.alerts.lease('probe', 1, clock.now())).toBe(false);
    await clock.advance(10_000);
    expect(hook.bodies).toHaveLength(1);
    // B evaluates from then on: the group was sent, nothing is queued or delivered again.
    await clock.advance(120_000);
    expect(hook.bodies).toHaveLength(1);
    expect(hook.bodies[0]).toMatchObject({ status: 'firing', commonLabels: { alertname: 'silent' } });
    for (const s of b) await s.stop();
    await c1.close();
    await c2.close();
  });
});
