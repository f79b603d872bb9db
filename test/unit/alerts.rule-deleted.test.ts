import type http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deliverDue } from '../../src/alerts/deliver.js';
import { deleteRule, evaluatePass } from '../../src/alerts/evaluator.js';
import type { MinutePartial } from '../../src/alerts/evaluate.js';
import { parseReceiver, parseRouting } from '../../src/alerts/notify.js';
import type { AlertSource } from '../../src/alerts/source.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { ManualClock } from '../../src/core/clock.js';
import { tmpDir } from '../helpers/tmp.js';
import { steadyMinutes, webhookReceiver } from '../helpers/alerts.js';

/**
 * Deleting a rule while its alerts are firing or pending ends them in the history (firing →
 * resolved, pending → inactive, "rule deleted"), and the firing one that was notified is sent
 * as resolved through the outbox by the next evaluation pass, as any resolution.
 */

const M = 60_000;

describe('a deleted rule', () => {
  const servers: http.Server[] = [];
  afterEach(() => servers.forEach((s) => s.close()));

  it('rule-deleted.its-firing-and-pending-alerts-end-in-the-history-and-the-resolution-is-sent', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const catalog = new SqliteCatalog(path.join(tmpDir('sluice-alerts-'), 'sluice.db'));
    const store = catalog.alerts;
    const { url, bodies } = await webhookReceiver<{ status: string; alerts: { status: string; fingerprint: string; labels: Record<string, string> }[] }>(servers);

    await store.putRule('acme', 'errors', { kind: 'slo', objective: 0.99, total: { event: 'req' }, bad: { event: 'req' } }, 'k');
    // Holds at once, fires after 10 minutes: pending.
    await store.putRule('acme', 'busy', { kind: 'threshold', query: { event: 'req' }, window: '5m', condition: { op: 'gt', value: 0 }, for: '10m' }, 'k');
    await store.putObject('acme', 'receiver', 'oncall', parseReceiver({ type: 'webhook', url }), 'k');
    await store.putObject('acme', 'routing', 'routing', parseRouting({ group_wait: '0s', group_interval: '1m', default_receiver: 'oncall' }), 'k');
    // 20 % of 50 requests a minute fail for the last two hours.
    const source: AlertSource = {
      watermark: async () => clock.now(),
      counts: async () => new Map(),
      ruleData: async (_t, r, from, to) => {
        const { total, bad } = steadyMinutes(from, to, Date.UTC(2026, 0, 1, 10), 50, 10);
        const partials = new Map<number, MinutePartial>([...total].map(([m, n]) => [m, { count: n, sum: 0, min: null, max: null }]));
        if (r.name === 'busy') return { partials };
        if (r.name === 'errors') return { slo: { total, bad } };
        return { slo: { total: new Map(), bad: new Map() } };
      },
    };
    // Every tenant, as `sluice up` passes them (built-in rules apply to each).
    const pass = () => evaluatePass({ store, source, clock, externalUrl: 'http://sluice', tenants: async () => ['acme'] });
    const first = await pass();
    expect(first.transitions.filter((t) => t.rule === 'errors' || t.rule === 'busy').map((t) => `${t.rule}:${t.severity}:${t.to}`)).toEqual(['busy:page:pending', 'errors:page:firing', 'errors:ticket:firing']);
    expect(first.notifications).toBe(1);
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 1, failed: 0 });
    const fired = bodies[0]!.alerts[0]!;
    expect([bodies[0]!.status, fired.labels.alertname]).toEqual(['firing', 'errors']);

    await clock.advance(10_000);
    const deletedAt = clock.now();
    for (const name of ['errors', 'busy']) expect((await deleteRule(store, 'acme', name, 'k', deletedAt)).deleted).toBe(true);
    expect((await deleteRule(store, 'acme', 'errors', 'k', deletedAt)).deleted).toBe(false);
    // The alerts are gone from the current states, and their end is in the history with its reason.
    expect((await store.states('acme')).filter((s) => s.rule === 'errors' || s.rule === 'busy')).toEqual([]);
    const history = (await store.history('acme', 0, Date.UTC(2027, 0), 100)).map((h) => h.body as { rule: string; severity: string; from: string; to: string; at: number; verdict: { reason?: string } });
    expect(history.filter((h) => h.at === deletedAt).map((h) => [h.rule, h.severity, h.from, h.to, h.verdict.reason])).toEqual([
      ['errors', 'page', 'firing', 'resolved', 'rule deleted'],
      ['errors', 'ticket', 'firing', 'resolved', 'rule deleted'],
      ['busy', 'page', 'pending', 'inactive', 'rule deleted'],
    ]);

    // The next pass after group_interval sends the resolution of what was notified, once.
    await clock.advance(M);
    expect((await pass()).notifications).toBe(1);
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 1, failed: 0 });
    expect(bodies[1]).toMatchObject({ status: 'resolved', alerts: [{ status: 'resolved', fingerprint: fired.fingerprint, labels: { alertname: 'errors', severity: 'page' } }] });
    await clock.advance(5 * M);
    expect((await pass()).notifications).toBe(0);
    await catalog.close();
  });
});
