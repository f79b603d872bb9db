import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { until } from '../helpers/pipeline.js';
import { CLI, freePort, keysFrom, startServer, stop } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * sluice.db (the log and the catalog) lost while the store is still there. It used to start as
 * a fresh install, printing keys of a new tenant that saw the old tenant's stored events, and
 * the store, which remembers the offsets it applied, took the new log's records for ones it
 * had: acknowledged, never stored.
 */
async function filledDir(): Promise<string> {
  const dir = tmpDir();
  const server = await startServer(dir, await freePort());
  const { writeKey } = keysFrom(server.stdout);
  const body = JSON.stringify(Array.from({ length: 200 }, (_, j) => ({ type: 'x', key: `k${j}`, idempotency_key: `e-${j}` })));
  expect((await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body })).status).toBe(202);
  // Stored: the store has applied offsets of its own.
  const { readKey } = keysFrom(server.stdout);
  await until(async () => (await (await fetch(`${server.url}/v1/events/e-199`, { headers: { authorization: `Bearer ${readKey}` } })).json()).stored != null);
  expect(await stop(server)).toBe(0);
  return dir;
}

it('damaged.sluice-db-deleted-or-emptied-beside-its-offsets-file-refuses-start', async () => {
  const dir = await filledDir();
  const file = path.join(dir, 'sluice.db');
  for (const lose of [() => fs.truncateSync(file, 0), () => fs.rmSync(file)]) {
    lose();
    for (const wal of ['-wal', '-shm']) fs.rmSync(`${file}${wal}`, { force: true });
    for (const args of [['up', '--port', String(await freePort())], ['tenant', 'create', 'other']]) {
      const r = spawnSync(process.execPath, [CLI, ...args, '--data-dir', dir], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, `${args[0]}: ${r.stdout}${r.stderr}`).not.toBe(0);
      expect(r.stderr).toMatch(/sluice\.db is (empty|missing), but sluice\.db-offsets is still in .*: the log and the catalog \(tenants, keys, schemas\) were lost/);
      expect(r.stderr).toContain('move the whole data directory aside');
      expect(r.stdout).not.toMatch(/sluice_w_/);
    }
  }
  expect(fs.existsSync(file)).toBe(false);
}, 60_000);

it('damaged.a-log-behind-the-store-s-applied-offsets-is-refused-by-the-workers-and-named-by-readyz', async () => {
  const dir = await filledDir();
  // Every file of the log gone (rm sluice.db*): only the store is left, with its applied offsets.
  for (const f of fs.readdirSync(dir)) if (f.startsWith('sluice.db')) fs.rmSync(path.join(dir, f));
  const server = await startServer(dir, await freePort());
  try {
    const { writeKey } = keysFrom(server.stdout);
    const body = JSON.stringify(Array.from({ length: 50 }, (_, j) => ({ type: 'x', key: `k${j}`, idempotency_key: `new-${j}` })));
    expect((await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body })).status).toBe(202);
    // The workers do not consume (which would skip the new records as applied): /readyz says why.
    let ready: { status: number; body: { failing: string[]; checks: { store: { detail?: string } } } } = { status: 0, body: { failing: [], checks: { store: {} } } };
    await until(async () => {
      const r = await fetch(`${server.url}/readyz`);
      ready = { status: r.status, body: await r.json() };
      return ready.body.failing.includes('store');
    });
    expect(ready.status).toBe(503);
    expect(ready.body.checks.store.detail).toMatch(/the store has applied offset \d+ of partition \d+, but the log's head there is \d+ .*: the log is not the one the store was filled from/);
    expect(server.stderr).toMatch(/store thread could not start/);
  } finally {
    await stop(server);
  }
  // Remembered: once new appends pass the store's offsets the comparison alone would not see it
  // (and would skip the new records up to them as applied), so the next start refuses outright.
  const again = spawnSync(process.execPath, [CLI, 'up', '--data-dir', dir, '--port', String(await freePort())], { encoding: 'utf8', timeout: 30_000 });
  expect(again.status).not.toBe(0);
  expect(again.stderr).toMatch(/sluice\.db was found at .* not to be the log its store was filled from, and is not served from again/);
  expect(again.stderr).toContain('keep a copy of it');
}, 60_000);
