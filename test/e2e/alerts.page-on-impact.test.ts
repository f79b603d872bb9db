import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, freePort, keysFrom, kill9, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Alerts end to end on a real `sluice up` and a local HTTP receiver: an SLO burning its
 * budget pages once with an Alertmanager v4 payload, even across a kill -9 between firing
 * and delivery; good events resolve it; a low-traffic tenant never pages; a silence
 * suppresses (the silenced alert still shows).
 */

const M = 60_000;
const ENV = { SLUICE_ALERTS_EVALUATE_INTERVAL_MS: '1000', SLUICE_ALERTS_DELIVER_INTERVAL_MS: '200', SLUICE_LOG_LEVEL: 'info' };

interface Hook {
  url: string;
  bodies: Record<string, unknown>[];
  refused: number;
  status: number;
  server: http.Server;
}

async function receiver(): Promise<Hook> {
  const hook = { bodies: [], refused: 0, status: 503 } as unknown as Hook;
  hook.server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      if (hook.status === 200) hook.bodies.push(JSON.parse(data) as Record<string, unknown>);
      else hook.refused++;
      res.writeHead(hook.status).end();
    });
  });
  await new Promise<void>((r) => hook.server.listen(0, '127.0.0.1', r));
  hook.url = `http://127.0.0.1:${(hook.server.address() as AddressInfo).port}/alertmanager`;
  return hook;
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; sluice said: ${server.stderr.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let dir: string;
let port: number;
let server: ServerProcess;
let keys: { writeKey: string; readKey: string; adminKey: string };
let low: { write_key: string; read_key: string; admin_key: string };
let hook: Hook;

async function call(method: string, path: string, key: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

async function send(key: string, events: unknown[]): Promise<void> {
  for (let i = 0; i < events.length; i += 500) {
    const r = await call('POST', '/v1/events', key, events.slice(i, i + 500));
    expect(r.status).toBe(202);
  }
}

const slo = (extra: Record<string, unknown> = {}) => ({
  kind: 'slo',
  objective: 0.99,
  total: { event: 'http_request' },
  bad: { event: 'http_request', filters: [{ field: 'properties.status', op: 'gte', value: 500 }] },
  annotations: { summary: 'checkout errors burn the budget' },
  ...extra,
});

function requests(tenantTag: string, from: number, to: number, perMinute: number, badEvery: number): unknown[] {
  const out: unknown[] = [];
  for (let m = from; m < to; m += M) {
    for (let i = 0; i < perMinute; i++) {
      out.push({ type: 'http_request', key: `u-${i}`, ts: new Date(m + Math.floor((i * M) / perMinute)).toISOString(), idempotency_key: `${tenantTag}-${m}-${i}`, properties: { status: badEvery > 0 && i % badEvery === 0 ? 503 : 200 } });
    }
  }
  return out;
}

beforeAll(async () => {
  dir = tmpDir('sluice-alerts-e2e-');
  port = await freePort();
  hook = await receiver();
  server = await startServer(dir, port, [], ENV);
  keys = keysFrom(server.stdout);
  low = JSON.parse(execFileSync(process.execPath, [CLI, 'tenant', 'create', 'quiet', '--data-dir', dir, '--json']).toString()) as typeof low;
});

afterAll(async () => {
  if (server) await stop(server);
  hook?.server.close();
});

describe('alerts on a real sluice up', () => {
  it('alerts.slo-burning-pages-once-with-an-alertmanager-v4-payload-across-a-kill-9-and-resolves', async () => {
    // History first, stored before the rules exist: the first evaluation sees all of it.
    const now = Math.floor(Date.now() / M) * M;
    await send(keys.writeKey, requests('default', now - 120 * M, now, 30, 5)); // 20 % bad for two hours
    await send(low.write_key, requests('quiet', now - 3 * M, now - 2 * M, 3, 3)); // 1 bad of 3
    await until('the history stored', async () => {
      const q = await call('POST', '/v1/query', keys.readKey, { event: 'http_request', from: '-3h', to: 'now', interval: null });
      return q.status === 200 && q.json.rows[0]?.[0] === 3600;
    });
    for (const [key, tag] of [
      [keys.adminKey, 'default'],
      [low.admin_key, 'quiet'],
    ] as const) {
      expect((await call('PUT', '/v1/alerts/receivers/oncall', key, { type: 'webhook', url: hook.url })).status).toBe(201);
      expect((await call('PUT', '/v1/alerts/routing', key, { group_by: ['alertname'], group_wait: '0s', group_interval: '1s', default_receiver: 'oncall' })).status).toBe(200);
      expect((await call('PUT', '/v1/alerts/rules/checkout-errors', key, slo())).status, tag).toBe(201);
    }
    // A second rule on the same events, silenced before it ever fires.
    const silence = await call('POST', '/v1/alerts/silences', keys.adminKey, {
      matchers: [{ name: 'alertname', value: 'checkout-errors-copy' }],
      ends_at: new Date(Date.now() + 3_600_000).toISOString(),
      comment: 'planned migration',
    });
    expect(silence.status).toBe(201);
    expect((await call('PUT', '/v1/alerts/rules/checkout-errors-copy', keys.adminKey, slo())).status).toBe(201);
    // An impossible rule is refused with its reason.
    const refused = await call('PUT', '/v1/alerts/rules/impossible', keys.adminKey, slo({ objective: 0.9 }));
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.json)).toContain('can never fire');

    // The receiver refuses at first: the page is queued, not delivered.
    await until('a refused delivery of the page', () => hook.refused > 0, 60_000);
    // The silenced copy was declared after the page's rule: on a loaded machine the first
    // page can go out before a pass has evaluated the copy, so wait for that pass too.
    let firing = await call('GET', '/v1/alerts', keys.readKey);
    await until('the silenced copy evaluated', async () => {
      firing = await call('GET', '/v1/alerts', keys.readKey);
      return firing.json.alerts.some((a: any) => a.rule === 'checkout-errors-copy' && a.severity === 'page');
    });
    const page = firing.json.alerts.find((a: any) => a.rule === 'checkout-errors' && a.severity === 'page');
    expect(page).toMatchObject({ state: 'firing', silenced: false, labels: { alertname: 'checkout-errors', tenant: 'default', severity: 'page' } });
    expect(page.explanation.windows[0]).toMatchObject({ window: '1h', threshold: 14.4 });
    expect(page.explanation.windows[0].ratio).toBeCloseTo(0.2, 2);
    expect(page.explanation.windows[0].burn_rate).toBeCloseTo(20, 1);
    const copy = firing.json.alerts.find((a: any) => a.rule === 'checkout-errors-copy' && a.severity === 'page');
    expect(copy).toMatchObject({ state: 'firing', silenced: true, silenced_by: [silence.json.id] });
    // The ticket of the same rule is inhibited by its page.
    expect(firing.json.alerts.find((a: any) => a.rule === 'checkout-errors' && a.severity === 'ticket')).toMatchObject({ state: 'firing', inhibited: true });

    // kill -9 between firing and delivery; the receiver comes back; so does sluice.
    await kill9(server);
    hook.status = 200;
    server = await startServer(dir, port, [], ENV);
    await until('the page delivered after the restart', () => hook.bodies.length > 0, 60_000);
    // A few more evaluations and delivery rounds: still exactly one notification.
    await new Promise((r) => setTimeout(r, 4_000));
    expect(hook.bodies).toHaveLength(1);
    const payload = hook.bodies[0]!;
    expect(payload).toMatchObject({
      version: '4',
      status: 'firing',
      receiver: 'oncall',
      groupLabels: { alertname: 'checkout-errors' },
      commonLabels: { alertname: 'checkout-errors', tenant: 'default', severity: 'page' },
      commonAnnotations: { summary: 'checkout errors burn the budget' },
      truncatedAlerts: 0,
    });
    expect(payload.alerts).toHaveLength(1);
    expect((payload.alerts as any[])[0]).toMatchObject({ status: 'firing', endsAt: '0001-01-01T00:00:00Z', fingerprint: page.fingerprint });

    // The quiet tenant: 1 bad event of 3 is not enough to tell; it never pages.
    const quiet = await call('GET', '/v1/alerts', low.read_key);
    expect(quiet.json.alerts.filter((a: any) => a.rule === 'checkout-errors').map((a: any) => a.state)).toEqual(['insufficient_data', 'insufficient_data']);
    expect(quiet.json.counts.firing).toBe(0);
    // The built-in rules watch every tenant: fresh here, and no conservation gap (unknown until the check has run once).
    const builtin = (rule: string) => quiet.json.alerts.find((a: any) => a.rule === rule).state;
    expect(builtin('sluice_freshness')).toBe('inactive');
    expect(['inactive', 'insufficient_data']).toContain(builtin('sluice_conservation_gap'));

    // Good events in the last five minutes: the fast windows clear, the page resolves.
    const t = Math.floor(Date.now() / M) * M;
    await send(keys.writeKey, requests('good', t - 5 * M, t, 700, 0));
    await until('the resolution', () => hook.bodies.length > 1, 60_000);
    // The page resolves; the ticket of the same rule (1 d and 3 d windows still burning) is no
    // longer inhibited by it and joins its group, as in Alertmanager.
    const second = hook.bodies[1]!;
    expect(second).toMatchObject({ version: '4', groupLabels: { alertname: 'checkout-errors' } });
    const resolvedPage = (second.alerts as any[]).find((a) => a.labels.severity === 'page');
    expect(resolvedPage).toMatchObject({ status: 'resolved', fingerprint: page.fingerprint });
    expect(resolvedPage.endsAt).not.toBe('0001-01-01T00:00:00Z');
    expect((second.alerts as any[]).find((a) => a.labels.severity === 'ticket')).toMatchObject({ status: 'firing' });
    expect(hook.bodies.every((b) => (b.commonLabels as any).tenant === 'default' && (b.groupLabels as any).alertname === 'checkout-errors')).toBe(true);

    const history = await call('GET', '/v1/alerts/history?from=-3h&to=now', keys.readKey);
    const changes = history.json.transitions.filter((x: any) => x.rule === 'checkout-errors' && x.severity === 'page').map((x: any) => `${x.from}->${x.to}`);
    expect(changes).toEqual(['inactive->firing', 'firing->resolved']);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/sluice_alerts\{tenant="quiet",alertname="checkout-errors",severity="page",state="insufficient_data"\} 1/);
    expect(metrics).toMatch(/sluice_alert_notifications_total\{tenant="default",receiver="oncall",result="sent"\} 2/);

    // A backtest over the same history says when it would have fired.
    const bt = await call('POST', '/v1/alerts/rules/checkout-errors/backtest', keys.readKey, { from: '-3h', to: 'now' });
    expect(bt.status).toBe(200);
    expect(bt.json.periods.filter((p: any) => p.severity === 'page').length).toBeGreaterThanOrEqual(1);
    const budget = await call('GET', '/v1/alerts/rules/checkout-errors/budget', keys.readKey);
    expect(budget.json.remaining).toBeLessThan(0);

    // The same from the command line.
    const cli = (...args: string[]) => execFileSync(process.execPath, [CLI, 'alerts', ...args, '--url', server.url, '--key', keys.readKey]).toString();
    expect(cli('--state', 'resolved')).toMatch(/^resolved\s+page\s+checkout-errors\s+since/m);
    expect(JSON.parse(cli('history', '--from', '-3h', '--json')).transitions.length).toBeGreaterThanOrEqual(2);
    expect(cli('budget', 'checkout-errors')).toMatch(/remaining -\d/);
    expect(cli('backtest', 'checkout-errors', '--from', '-3h')).toMatch(/checkout-errors: \d+ firing period/);
  }, 240_000);
});
