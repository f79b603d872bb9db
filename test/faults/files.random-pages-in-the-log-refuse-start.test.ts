import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { CLI, freePort, keysFrom, startServer, stop } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/** Random pages written into sluice.db are found by the check at start, which refuses with recovery steps. */
it('damaged.random-pages-in-the-log-refuse-start-with-recovery-steps', async () => {
  const dir = tmpDir();
  const server = await startServer(dir, await freePort());
  const { writeKey } = keysFrom(server.stdout);
  for (let i = 0; i < 10; i++) {
    const body = JSON.stringify(Array.from({ length: 500 }, (_, j) => ({ type: 'x', key: `k${j}`, idempotency_key: `e-${i}-${j}`, properties: { pad: 'p'.repeat(200) } })));
    expect((await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body })).status).toBe(202);
  }
  expect(await stop(server)).toBe(0);

  const file = path.join(dir, 'sluice.db');
  const pages = Math.floor(fs.statSync(file).size / 4096);
  expect(pages).toBeGreaterThan(100);
  const fd = fs.openSync(file, 'r+');
  for (const page of [Math.floor(pages / 3), Math.floor(pages / 2), pages - 5]) fs.writeSync(fd, randomBytes(4096), 0, 4096, page * 4096);
  fs.closeSync(fd);

  const r = spawnSync(process.execPath, [CLI, 'up', '--data-dir', dir, '--port', String(await freePort())], { encoding: 'utf8', timeout: 30_000 });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain(`${file} is damaged (`);
  expect(r.stderr).toMatch(/restore it with its -wal file from a backup \(or salvage what is left: sqlite3 .*\.recover/);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}, 60_000);
