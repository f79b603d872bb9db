import { afterEach, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { CLI, freePort, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
});

function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

it('metrics.count-received-accepted-rejected-duplicate-stored-and-status-needs-an-admin-key', async () => {
  server = await startServer(tmpDir(), await freePort());
  const keys = {
    write: /write key:\s+(\S+)/.exec(server.stdout)![1]!,
    read: /read key:\s+(\S+)/.exec(server.stdout)![1]!,
    admin: /admin key:\s+(\S+)/.exec(server.stdout)![1]!,
  };
  const post = (body: unknown) =>
    fetch(`${server!.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${keys.write}` }, body: JSON.stringify(body) });
  const batch = [
    ...Array.from({ length: 50 }, (_, i) => ({ type: 'signup', key: `u-${i}`, idempotency_key: `s-${i}` })),
    { type: 'signup', idempotency_key: 's-1' }, // duplicate
    { key: 'x' }, // missing type
    { type: 't', ts: 'yesterday' }, // bad ts
  ];
  expect((await post(batch)).status).toBe(202);
  await fetch(`${server.url}/nope`); // an unmatched route must not add a label per path

  let text = '';
  const deadline = Date.now() + 20_000;
  do {
    text = await (await fetch(`${server.url}/metrics`)).text();
    // Stored is counted at the store commit, the backlog drops at the ack just after it.
    if (metric(text, 'sluice_events_stored_total', '{tenant="default"}') === 50 && metric(text, 'sluice_log_backlog_events') === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  } while (Date.now() < deadline);

  expect(metric(text, 'sluice_events_received_total', '{tenant="default"}')).toBe(53);
  expect(metric(text, 'sluice_events_accepted_total', '{tenant="default"}')).toBe(50);
  expect(metric(text, 'sluice_events_duplicate_total', '{tenant="default"}')).toBe(1);
  expect(metric(text, 'sluice_events_rejected_total', '{tenant="default",reason="missing_field"}')).toBe(1);
  expect(metric(text, 'sluice_events_rejected_total', '{tenant="default",reason="invalid_field"}')).toBe(1);
  expect(metric(text, 'sluice_events_stored_total', '{tenant="default"}')).toBe(50);
  expect(metric(text, 'sluice_http_request_duration_seconds_count', '{method="POST",route="/v1/events",status_code="202"}')).toBe(1);
  expect(metric(text, 'sluice_http_request_duration_seconds_count', '{method="GET",route="unmatched",status_code="404"}')).toBe(1);
  expect(text).not.toContain('/nope');
  expect(metric(text, 'sluice_log_backlog_events')).toBe(0);
  expect(metric(text, 'sluice_log_backlog_bytes')).toBe(0);
  expect(metric(text, 'sluice_log_disk_bytes')).toBeGreaterThan(0);
  expect(metric(text, 'sluice_store_commit_duration_seconds_count')).toBeGreaterThan(0);
  expect(metric(text, 'sluice_process_resident_memory_bytes')).toBeGreaterThan(0);

  const status = (key?: string) => fetch(`${server!.url}/v1/status`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  expect((await status()).status).toBe(401);
  expect((await status(keys.read)).status).toBe(403);
  const r = await status(keys.admin);
  expect(r.status).toBe(200);
  const body = (await r.json()) as Record<string, any>;
  expect(body.tenant).toBe('default');
  expect(body.log.partitions).toHaveLength(16);
  expect(body.log.backlog_events).toBe(0);
  expect(body.dead_letters).toEqual({ total: 0, by_reason: {} });
  expect(body.store.ok).toBe(true);
  expect(body.conservation).toMatchObject({ gap_events: 0, unbalanced: [] });

  // sluice top reads the same /metrics.
  const topRun = spawnSync(process.execPath, [CLI, 'top', '--url', server.url, '--interval', '0.2', '--once'], { encoding: 'utf8', timeout: 20_000 });
  expect(topRun.status, topRun.stderr).toBe(0);
  expect(topRun.stdout).toMatch(/events\/s\s+received \d/);
  expect(topRun.stdout).toContain('conservation gap 0');
});
