import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { CLI, freePort, keysFrom, startServer, stop } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * sluice.db (the log and the catalog) deleted or truncated to nothing while the store and the
 * log's offsets file are still there: a start refuses with the way out. It used to start as a
 * fresh install, printing keys of a new tenant that saw the old tenant's stored events, and
 * the store, which remembers the offsets it applied, took the new log's records for ones it
 * had: acknowledged, never stored.
 */
it('damaged.a-lost-or-emptied-sluice-db-beside-the-store-refuses-start-instead-of-starting-afresh', async () => {
  const dir = tmpDir();
  const server = await startServer(dir, await freePort());
  const { writeKey } = keysFrom(server.stdout);
  const body = JSON.stringify(Array.from({ length: 200 }, (_, j) => ({ type: 'x', key: `k${j}`, idempotency_key: `e-${j}` })));
  expect((await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body })).status).toBe(202);
  expect(await stop(server)).toBe(0);

  const file = path.join(dir, 'sluice.db');
  for (const lose of [() => fs.truncateSync(file, 0), () => fs.rmSync(file)]) {
    lose();
    for (const wal of ['-wal', '-shm']) fs.rmSync(`${file}${wal}`, { force: true });
    for (const args of [['up', '--port', String(await freePort())], ['tenant', 'create', 'other']]) {
      const r = spawnSync(process.execPath, [CLI, ...args, '--data-dir', dir], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, `${args[0]}: ${r.stdout}${r.stderr}`).not.toBe(0);
      expect(r.stderr).toMatch(/sluice\.db is (empty|missing), but sluice\.db-offsets and store\.duckdb are still in .*: the log and the catalog \(tenants, keys, schemas\) were lost/);
      expect(r.stderr).toContain('move the whole data directory aside');
      expect(r.stdout).not.toMatch(/sluice_w_/);
    }
  }
  // Nothing was created in its place.
  expect(fs.existsSync(file)).toBe(false);
}, 60_000);
