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

it('cli.pipeline-push-show-test-and-versions-against-a-running-server', async () => {
  const dir = tmpDir();
  server = await startServer(dir, await freePort());
  const admin = /admin key:\s+(\S+)/.exec(server.stdout)![1]!;
  const env = { ...process.env, SLUICE_URL: server.url, SLUICE_KEY: admin };
  const sluice = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });

  const empty = sluice('pipeline', 'show');
  expect(empty.status).toBe(0);
  expect(JSON.parse(empty.stdout)).toEqual({ steps: [] });
  expect(empty.stderr).toContain('no pipeline yet (version 0)');

  const doc = { steps: [{ cast: { field: 'properties.amount', to: 'number' } }, { drop: { when: 'properties.amount == 0.0' } }] };
  const file = path.join(dir, 'pipeline.json');
  fs.writeFileSync(file, JSON.stringify(doc));
  const pushed = sluice('pipeline', 'push', file, '--expected-version', '0');
  expect(pushed.status).toBe(0);
  expect(pushed.stdout).toContain('pushed: version 1 (2 steps)');
  // Compare-and-set: a push that read version 0 is refused once version 1 exists.
  const stale = sluice('pipeline', 'push', file, '--expected-version', '0');
  expect(stale.status).toBe(1);
  expect(stale.stderr).toContain('409 SLUICE_ERR_CONFLICT');

  // A step that does not compile: refused, naming the step and its position.
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ steps: [{ set: { field: 'properties.x', value: 'nope(' } }] }));
  const refused = sluice('pipeline', 'push', bad);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/400 SLUICE_ERR_INVALID_BODY: step 0 \(set\): value: /);

  const shown = sluice('pipeline', 'show');
  expect(JSON.parse(shown.stdout)).toEqual(doc);
  expect(shown.stderr).toMatch(/^version 1, written by /);

  const events = path.join(dir, 'events.json');
  fs.writeFileSync(events, JSON.stringify([{ type: 'checkout', properties: { amount: '2.5' } }, { type: 'checkout', properties: { amount: '0' } }, { type: 'checkout', properties: { amount: 'x' } }]));
  const tested = sluice('pipeline', 'test', '--version', '1', '--events', events);
  expect(tested.status).toBe(0);
  expect(tested.stdout).toContain('3 events: 1 stored, 1 dropped, 1 dead_lettered');
  expect(tested.stdout).toContain('#2 dead_lettered transform_failed: step 0 (cast): cannot cast a string of 1 character to number');
  // With neither a file nor a version: the live pipeline.
  expect(sluice('pipeline', 'test', '--events', events).stdout).toBe(tested.stdout);
  const asJson = JSON.parse(sluice('pipeline', 'test', file, '--events', events, '--json').stdout);
  expect(asJson.results[0]).toMatchObject({ outcome: 'stored', output: { properties: { amount: 2.5 } }, changed: ['properties.amount'] });

  const versions = sluice('pipeline', 'versions');
  expect(versions.status).toBe(0);
  expect(versions.stdout).toMatch(/^VERSION\tLIVE\tSTEPS\tCREATED\tBY\n1\tlive\t2\t/);
  expect(sluice('pipeline', 'frobnicate').status).toBe(2);

  // The workbench from the command line: a dead letter fixed by a patch on replay.
  const schema = path.join(dir, 'schema.json');
  fs.writeFileSync(schema, JSON.stringify({ type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } }));
  expect(sluice('schema', 'push', 'checkout', schema, '--owner', 'payments').status).toBe(0);
  const write = /write key:\s+(\S+)/.exec(server.stdout)![1]!;
  const res = await fetch(`${server.url}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${write}` },
    body: JSON.stringify([{ type: 'checkout', idempotency_key: 'str-1', ts: new Date().toISOString(), properties: { amount: '2.5' } }, { type: 'checkout', idempotency_key: 'str-2', ts: new Date().toISOString(), properties: { amount: 'lots' } }]),
  });
  expect(((await res.json()) as { accepted: number }).accepted).toBe(0);
  let list = '';
  for (const end = Date.now() + 20_000; Date.now() < end && !(list.includes('str-1') && list.includes('str-2')); await new Promise((r) => setTimeout(r, 200))) list = sluice('dlq', 'list').stdout;
  const patch = path.join(dir, 'patch.json');
  fs.writeFileSync(patch, JSON.stringify({ steps: [{ cast: { field: 'properties.amount', to: 'number' } }] }));
  // Without a patch both would fail again: the summary names the field as the entries do, and says what to do next.
  const bare = sluice('dlq', 'replay', '--dry-run');
  expect(bare.status).toBe(1);
  expect(bare.stdout).toMatch(/would fail:\s+2\s+schema_violation \/properties\/amount/);
  expect(bare.stdout).toContain('To make them pass: add --patch FILE.json');
  expect(bare.stdout).toContain('sluice dlq discard');
  const bareJson = JSON.parse(sluice('dlq', 'replay', '--dry-run', '--json').stdout) as { dry_run: boolean; would_pass: number; would_fail: { path: string; count: number }[] };
  expect(bareJson).toMatchObject({ dry_run: true, would_pass: 0, would_fail: [{ path: '/properties/amount', count: 2 }] });
  const dry = sluice('dlq', 'replay', '--dry-run', '--patch', patch);
  expect(dry.stdout).toContain('dry run: would replay 1, would fail 1');
  // One page: the summary once, no progress line beside it.
  expect(dry.stderr).not.toContain('would replay');
  expect(dry.stdout).toMatch(/would fail:\s+1\s+transform_failed -\s+e\.g\. patch: step 0 \(cast\): cannot cast a string of 4 characters to number/);
  const replayed = sluice('dlq', 'replay', '--patch', patch);
  expect(replayed.stdout).toContain('replayed 1, failed again 1');
});
