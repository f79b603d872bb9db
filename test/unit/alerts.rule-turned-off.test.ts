import type http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deliverDue } from '../../src/alerts/deliver.js';
import { evaluatePass, turnOffAlerts } from '../../src/alerts/evaluator.js';
import { refreshAlertMetrics } from '../../src/alerts/metrics.js';
import { parseReceiver, parseRouting } from '../../src/alerts/notify.js';
import type { AlertSource } from '../../src/alerts/source.js';
import type { AlertState } from '../../src/alerts/state.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { ManualClock } from '../../src/core/clock.js';
import { ingestMetrics, prom } from '../../src/obs/metrics.js';
import { tmpDir } from '../helpers/tmp.js';
import { webhookReceiver } from '../helpers/alerts.js';

/**
 * Turning a rule off (`"enabled": false`) while its alert fires ends the alert as deleting
 * the rule does: firing → resolved in the history with reason "rule turned off", resolved in
 * GET /v1/alerts and in sluice_alerts, and the resolution sent once.
 */

const M = 60_000;

describe('a rule turned off', () => {
  const servers: http.Server[] = [];
  afterEach(() => servers.forEach((s) => s.close()));

  async function setup() {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const catalog = new SqliteCatalog(path.join(tmpDir('sluice-alerts-off-'), 'sluice.db'));
    const store = catalog.alerts;
    const { url, bodies } = await webhookReceiver<{ status: string; alerts: { status: string; labels: Record<string, string> }[] }>(servers);
    await store.putObject('acme', 'receiver', 'oncall', parseReceiver({ type: 'webhook', url }), 'k');
    await store.putObject('acme', 'routing', 'routing', parseRouting({ group_wait: '0s', group_interval: '1m', default_receiver: 'oncall' }), 'k');
    // The watermark stalls at 12:00: sluice_freshness fires after 5 min behind plus its 10 min `for`.
    const stalled = clock.now();
    const source: AlertSource = {
      watermark: async () => stalled,
      counts: async () => new Map(),
      ruleData: async (_t, r) => ({ signal: r.kind === 'builtin' ? { value: r.signal === 'freshness' ? (clock.now() - stalled) / 1000 : 0, window: 'now', events: 0 } : null }),
    };
    const pass = () => evaluatePass({ store, source, clock, tenants: async () => ['acme'] });
    await pass();
    await clock.advance(6 * M);
    await pass();
    await clock.advance(10 * M);
    await pass();
    const freshness = async () => (await store.states('acme')).filter((s) => s.rule === 'sluice_freshness').map((s) => s.body as AlertState);
    expect((await freshness()).map((a) => a.state)).toEqual(['firing']);
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 1, failed: 0 });
    return { clock, catalog, store, bodies, pass, freshness };
  }

  const off = { kind: 'builtin', signal: 'freshness', enabled: false };

  it('rule-off.turning-off-a-firing-builtin-resolves-it-records-why-and-sends-the-resolution-once', async () => {
    const { clock, catalog, store, bodies, pass, freshness } = await setup();
    await clock.advance(10_000);
    const at = clock.now();
    // What PUT /v1/alerts/rules/sluice_freshness does with "enabled": false.
    await store.putRule('acme', 'sluice_freshness', off, 'k');
    expect((await turnOffAlerts(store, 'acme', 'sluice_freshness', at)).map((t) => `${t.from}->${t.to}`)).toEqual(['firing->resolved']);
    expect((await freshness()).map((a) => [a.state, a.since, a.verdict.reason])).toEqual([['resolved', at, 'rule turned off']]);
    const history = (await store.history('acme', at, at + 1, 10)).map((h) => h.body as { rule: string; from: string; to: string; verdict: { reason?: string } });
    expect(history.map((h) => [h.rule, h.from, h.to, h.verdict.reason])).toEqual([['sluice_freshness', 'firing', 'resolved', 'rule turned off']]);
    const metrics = ingestMetrics(new prom.Registry());
    await refreshAlertMetrics(metrics, store);
    expect((await metrics.alerts.get()).values.filter((v) => v.labels.alertname === 'sluice_freshness').map((v) => v.labels.state)).toEqual(['resolved']);
    // Turning it off again changes nothing.
    expect(await turnOffAlerts(store, 'acme', 'sluice_freshness', at + 1)).toEqual([]);
    // The resolution goes out once, and the rule stays quiet.
    await clock.advance(M);
    expect((await pass()).transitions.filter((t) => t.rule === 'sluice_freshness')).toEqual([]);
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 1, failed: 0 });
    expect(bodies[1]).toMatchObject({ status: 'resolved', alerts: [{ status: 'resolved', labels: { alertname: 'sluice_freshness' } }] });
    await clock.advance(30 * M);
    await pass();
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 0, failed: 0 });
    expect((await freshness()).map((a) => a.state)).toEqual(['resolved']);
    await catalog.close();
  });

  it('rule-off.an-alert-left-firing-by-a-turned-off-rule-is-ended-by-the-next-evaluation', async () => {
    const { clock, catalog, store, bodies, pass, freshness } = await setup();
    // Turned off without its alerts ended (as before this was done on PUT, or a pass that raced the PUT).
    await store.putRule('acme', 'sluice_freshness', off, 'k');
    await clock.advance(M);
    const r = await pass();
    expect(r.transitions.filter((t) => t.rule === 'sluice_freshness').map((t) => [t.from, t.to, t.verdict.reason])).toEqual([['firing', 'resolved', 'rule turned off']]);
    expect((await freshness()).map((a) => a.state)).toEqual(['resolved']);
    expect(await deliverDue({ store, clock })).toEqual({ delivered: 1, failed: 0 });
    expect(bodies[1]).toMatchObject({ status: 'resolved' });
    await clock.advance(M);
    expect((await pass()).transitions.filter((t) => t.rule === 'sluice_freshness')).toEqual([]);
    await catalog.close();
  });
});
