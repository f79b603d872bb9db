import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { CLI, freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
});

/** A data directory with some events, the server stopped. */
async function filled(): Promise<{ dir: string; keys: { writeKey: string; readKey: string } }> {
  const dir = tmpDir();
  server = await startServer(dir, await freePort());
  const keys = keysFrom(server.stdout);
  for (let i = 0; i < 20; i++) {
    const body = JSON.stringify(Array.from({ length: 500 }, (_, j) => ({ type: 'x', key: `k${j}`, idempotency_key: `e-${i}-${j}`, properties: { pad: 'p'.repeat(200) } })));
    expect((await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${keys.writeKey}` }, body })).status).toBe(202);
  }
  for (let stored = 0; stored < 10_000; await new Promise((r) => setTimeout(r, 100))) {
    const r = await fetch(`${server.url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${keys.readKey}` }, body: JSON.stringify({ interval: null, source: 'raw' }) });
    stored = ((await r.json()) as { rows: [number][] }).rows[0]![0];
  }
  expect(await stop(server)).toBe(0);
  server = null;
  return { dir, keys };
}

/**
 * A truncated or damaged data file is detected and reported, never served as if it were
 * whole: a damaged log refuses to start and says what to do; a damaged store keeps ingest
 * up (events wait in the log), answers 503 to queries, and /readyz names the damage.
 */
it('damaged.a-truncated-log-refuses-to-start-and-says-what-to-do', async () => {
  const { dir } = await filled();
  const file = path.join(dir, 'sluice.db');
  fs.truncateSync(file, Math.floor(fs.statSync(file).size / 3));
  const r = spawnSync(process.execPath, [CLI, 'up', '--data-dir', dir, '--port', String(await freePort())], { encoding: 'utf8', timeout: 30_000 });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain(`${file} is damaged`);
  expect(r.stderr).toMatch(/restore it with its -wal file from a backup/);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}, 60_000);

it('damaged.a-corrupted-store-is-reported-by-readyz-queries-answer-503-and-ingest-goes-on', async () => {
  const { dir, keys } = await filled();
  const file = path.join(dir, 'store.duckdb');
  // Garbage over every block past the header (DuckDB checksums each block), as a bad disk or
  // a partial copy leaves it.
  const fd = fs.openSync(file, 'r+');
  const size = fs.statSync(file).size;
  for (let at = 16_384; at < size; at += 262_144) fs.writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, at + 8);
  fs.closeSync(fd);
  server = await startServer(dir, await freePort());
  type Ready = { status: string; checks: { store: { ok: boolean; detail?: string } } };
  let ready = null as Ready | null;
  for (const end = Date.now() + 20_000; Date.now() < end && !ready?.checks.store.detail?.includes('damaged'); await new Promise((r) => setTimeout(r, 200))) {
    ready = (await (await fetch(`${server.url}/readyz`).catch((e: unknown) => {
      throw new Error(`sluice up stopped answering (exit ${server!.child.exitCode}): ${server!.stderr.slice(-2000)}`, { cause: e });
    })).json()) as Ready;
  }
  expect(ready).toMatchObject({ status: 'degraded', checks: { store: { ok: false } } });
  expect(ready!.checks.store.detail).toContain(`${file} is damaged`);
  const q = await fetch(`${server.url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${keys.readKey}` }, body: '{}' });
  expect(q.status).toBe(503);
  const ingest = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${keys.writeKey}` }, body: JSON.stringify({ type: 'kept', idempotency_key: 'kept-1' }) });
  expect(ingest.status).toBe(202);
}, 60_000);
