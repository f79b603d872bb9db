import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { CLI, freePort, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
});

it('cli.query-views-measures-filters-events-and-lineage-against-a-running-server', async () => {
  const dir = tmpDir();
  const config = path.join(dir, 'sluice.json');
  // A view declared in the configuration is declared for every tenant at start.
  fs.writeFileSync(config, JSON.stringify({ views: [{ name: 'by_plan', event: 'signup', dimensions: ['properties.plan'], measures: ['count'], grain: '1h' }] }));
  server = await startServer(dir, await freePort(), ['--config', config]);
  const key = (scope: string) => new RegExp(`${scope} key:\\s+(\\S+)`).exec(server!.stdout)![1]!;
  const env = { ...process.env, SLUICE_URL: server.url, SLUICE_KEY: key('read') };
  const sluice = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });

  const ts = new Date().toISOString();
  const events = Array.from({ length: 30 }, (_, i) => ({ type: 'checkout', key: `u${i % 4}`, ts, idempotency_key: `c-${i}`, properties: { region: i % 2 ? 'eu' : 'us', amount: i } }));
  events.push({ type: 'signup', key: 'u9', ts, idempotency_key: 's-1', properties: { plan: 'pro' } as never });
  const res = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${key('write')}` }, body: JSON.stringify(events) });
  expect(res.status).toBe(202);

  const view = path.join(dir, 'orders.json');
  fs.writeFileSync(view, JSON.stringify({ event: 'checkout', dimensions: ['properties.region'], measures: ['count', 'sum:amount', 'uniq:key'] }));
  expect(sluice('query', 'views', 'put', 'orders', view).stderr).toContain('admin key');
  const put = sluice('query', 'views', 'put', 'orders', view, '--key', key('admin'));
  expect(put.status).toBe(0);
  expect(put.stdout).toMatch(/view orders v1: building/);

  let listed = '';
  for (const end = Date.now() + 20_000; Date.now() < end && !/orders\s+ready/.test(listed); await new Promise((r) => setTimeout(r, 200))) listed = sluice('query', 'views').stdout;
  expect(listed).toMatch(/by_plan\s+(ready|building)\s+1\s+signup/);
  expect(listed).toMatch(/orders\s+ready\s+1\s+checkout\s+properties\.region/);

  let out = '';
  for (const end = Date.now() + 20_000; Date.now() < end && !out.includes('eu'); await new Promise((r) => setTimeout(r, 200))) {
    out = sluice('query', '--event', 'checkout', '--from', '-1h', '--interval', 'none', '--measures', 'count,sum:amount,uniq:key', '--group-by', 'properties.region', '--order-by', 'properties.region').stdout;
  }
  expect(out).toMatch(/properties\.region\s+count\s+sum:amount\s+uniq:key/);
  expect(out).toMatch(/eu\s+15\s+225\s+2/);
  expect(out).toMatch(/us\s+15\s+210\s+2/);
  expect(out).toContain('from view:orders');

  const filtered = sluice('query', '--event', 'checkout', '--from', '-1h', '--interval', 'none', '--filter', 'properties.amount:gte:20', '--filter', 'key:in:u0,u1', '--json');
  expect(JSON.parse(filtered.stdout)).toMatchObject({ columns: ['count'], rows: [[6]], source: 'raw' });

  const csv = sluice('query', '--event', 'checkout', '--from', '-1h', '--interval', 'none', '--group-by', 'properties.region', '--order-by', '-count,properties.region', '--csv');
  expect(csv.stdout.split('\r\n')[0]).toBe('properties.region,count');

  const listEvents = sluice('query', 'events', '--type', 'signup');
  expect(listEvents.stdout).toMatch(/signup\s+u9\s+s-1/);
  expect(sluice('query', 'event', 'c-3').stdout).toMatch(/^stored: /);
  const unknown = sluice('query', 'event', 'nope');
  expect(unknown.status).toBe(1);
  expect(unknown.stdout).toMatch(/^unknown: /);

  const bad = sluice('query', '--group-by', "properties.x'; drop table events");
  expect(bad.status).toBe(1);
  expect(bad.stderr).toContain('SLUICE_ERR_INVALID_QUERY');

  // A tenant created while the server runs gets the configured views too.
  const created = JSON.parse(sluice('tenant', 'create', 'later', '--data-dir', dir, '--json').stdout) as { read_key: string };
  let views: string[] = [];
  for (const end = Date.now() + 20_000; Date.now() < end && !views.includes('by_plan'); await new Promise((r) => setTimeout(r, 250))) {
    const r = await fetch(`${server.url}/v1/views`, { headers: { authorization: `Bearer ${created.read_key}` } }).catch(() => null);
    if (r?.ok) views = ((await r.json()) as { views: { name: string }[] }).views.map((v) => v.name);
  }
  expect(views).toEqual(['by_plan']);

  // Revoking the read key: the running server refuses it within its 5 s key cache.
  const revoked = sluice('key', 'revoke', key('read'), '--data-dir', dir);
  expect(revoked.stdout).toMatch(/^key [0-9a-f]{16} revoked/);
  let status = 200;
  for (const end = Date.now() + 8_000; Date.now() < end && status !== 401; await new Promise((r) => setTimeout(r, 250))) {
    // A keep-alive socket the server just closed (idle past its timeout) fails once: try again.
    status = await fetch(`${server.url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${key('read')}` }, body: '{}' }).then((r) => r.status, () => status);
  }
  expect(status).toBe(401);
}, 90_000);
