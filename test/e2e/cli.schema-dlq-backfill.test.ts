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

it('cli.schema-push-check-dlq-replay-and-backfill-against-a-running-server', async () => {
  const dir = tmpDir();
  server = await startServer(dir, await freePort());
  const admin = /admin key:\s+(\S+)/.exec(server.stdout)![1]!;
  const write = /write key:\s+(\S+)/.exec(server.stdout)![1]!;
  const env = { ...process.env, SLUICE_URL: server.url, SLUICE_KEY: admin };
  const sluice = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });

  const v1 = path.join(dir, 'v1.json');
  fs.writeFileSync(v1, JSON.stringify({ type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } }));
  const pushed = sluice('schema', 'push', 'checkout', v1, '--owner', 'payments');
  expect(pushed.status).toBe(0);
  expect(pushed.stdout).toContain('published "checkout" version 1 (owner payments)');
  expect(sluice('schema', 'types').stdout).toMatch(/export type CheckoutProperties = \{\n  amount: number;/);

  const ts = new Date().toISOString();
  const res = await fetch(`${server.url}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${write}` },
    body: JSON.stringify([{ type: 'checkout', idempotency_key: 'ok-1', ts, properties: { amount: 1 } }, { type: 'checkout', idempotency_key: 'bad-1', ts, properties: { amount: 'one' } }]),
  });
  expect(((await res.json()) as { accepted: number }).accepted).toBe(1);

  // A narrowing change is refused, with the reasons, and nothing changes.
  const v2 = path.join(dir, 'v2.json');
  fs.writeFileSync(v2, JSON.stringify({ type: 'object', required: ['amount', 'currency'], properties: { amount: { type: 'number' } } }));
  const checked = sluice('schema', 'check', 'checkout', v2);
  expect(checked.status).toBe(1);
  expect(checked.stdout).toContain('/properties/currency: "currency" is newly required');
  // …and what to do next, each way with its command.
  expect(checked.stdout).toContain('"change": {"schema": {"type": "checkout", "version": 2}}');
  expect(checked.stdout).toContain(`sluice schema push checkout ${v2} --force --reason TEXT`);
  expect(sluice('schema', 'push', 'checkout', v2).status).toBe(1);
  expect(sluice('schema', 'list').stdout).toMatch(/checkout\s+v1\s/);

  let list = '';
  for (const end = Date.now() + 20_000; Date.now() < end && !list.includes('bad-1'); await new Promise((r) => setTimeout(r, 200))) list = sluice('dlq', 'list').stdout;
  expect(list).toMatch(/open\s+schema_violation\s+checkout\s+bad-1/);
  const groups = sluice('dlq', 'groups').stdout;
  expect(groups).toMatch(/\s1\s+open\s+\S+\s+schema_violation\s+\/properties\/amount/);
  // Each heading sits over its column, the variable-length ones (FIELD, MESSAGE, TYPES) too.
  const [header, first] = groups.split('\n') as [string, string];
  // The count is of open entries, and the header says so (with --group-status it counts every entry).
  expect(header).toMatch(/^GROUP\s+OPEN\s+STATUS/);
  expect(sluice('dlq', 'groups', '--group-status', 'open').stdout).toMatch(/^GROUP\s+ENTRIES\s+STATUS/);
  expect(first.indexOf('/properties/amount')).toBe(header.indexOf('FIELD'));
  expect(first.indexOf('[checkout]')).toBe(header.indexOf('TYPES'));
  // The group's lifecycle from the CLI: acknowledged, with an owner and a note in its history.
  // The first line is the header; the signature is the first column of the next.
  const signature = sluice('dlq', 'groups').stdout.split('\n')[1]!.split(/\s+/)[0]!;
  const acked = sluice('dlq', 'group', signature, '--set', 'acknowledged', '--owner', 'payments', '--note', 'app 4.2 sends strings');
  expect(acked.stdout).toMatch(/: acknowledged, owner payments\n.*acknowledged {2}app 4\.2 sends strings/);
  expect(sluice('dlq', 'groups').stdout).toMatch(/\s1\s+acknowledged\s+payments\s+schema_violation/);

  fs.writeFileSync(v2, JSON.stringify({ type: 'object', required: ['amount'], properties: { amount: { type: ['number', 'string'] } } }));
  expect(sluice('schema', 'push', 'checkout', v2).status).toBe(0);
  expect(sluice('schema', 'diff', 'checkout').stdout).toContain('~ /properties/amount/type: "number" → ["number","string"]');
  const replayed = sluice('dlq', 'replay', '--type', 'checkout');
  expect(replayed.status).toBe(0);
  expect(replayed.stdout).toContain('replayed 1, failed again 0');
  expect(sluice('dlq', 'replay', '--type', 'checkout').stdout).toContain('replayed 0, failed again 0');

  const backfill = sluice('backfill', '--view', 'counts_1m');
  expect(backfill.status).toBe(0);
  expect(backfill.stdout).toMatch(/backfill \w+ done/);
  const q = sluice('query', '--key', /read key:\s+(\S+)/.exec(server.stdout)![1]!, '--event', 'checkout', '--from', '-1h', '--json');
  const rows = (JSON.parse(q.stdout) as { rows: [string, number][] }).rows;
  expect(rows.reduce((s, [, n]) => s + n, 0)).toBe(2);
}, 60_000);
