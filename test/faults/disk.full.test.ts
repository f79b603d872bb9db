import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { storeFacts } from '../helpers/duckdb.js';
import { freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';
import { tmpfsOrSkip } from '../helpers/tmpfs.js';

/**
 * The data directory on a small tmpfs fills up under load: the log refuses with 503 and
 * Retry-After, never acknowledging what it did not write; the process stays up (no crash
 * loop); the store backs off. When space returns, ingest resumes and every acknowledged event
 * is stored exactly once.
 *
 * Mounting needs root (see helpers/tmpfs.ts).
 */

const mountable = tmpfsOrSkip('the disk-full fault test');

let mounted: string | null = null;
let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
  if (mounted) execFileSync('umount', ['-l', mounted], { stdio: 'ignore' });
  mounted = null;
});

it.skipIf(!mountable)('disk.full-log-answers-503-acknowledges-nothing-unwritten-stays-up-and-recovers-when-space-returns', async () => {
  const dir = tmpDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', dir]);
  mounted = dir;
  const port = await freePort();
  server = await startServer(dir, port, [], { SLUICE_WORKER_HEAP_MB: '64' });
  const { writeKey } = keysFrom(server.stdout);

  const acked = new Set<string>();
  let refused = 0;
  let retryAfter = 0;
  let n = 0;
  const day = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 86_400_000;
  const batch = () =>
    Array.from({ length: 200 }, () => {
      const i = n++;
      return { type: 'fill', key: `k${i % 100}`, ts: new Date(day + (i % 86_400_000)).toISOString(), idempotency_key: `f-${i}`, properties: { pad: 'x'.repeat(400), i } };
    });
  const send = async (events: ReturnType<typeof batch>) => {
    const r = await fetch(`${server!.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body: JSON.stringify(events) });
    const body = (await r.json()) as { accepted?: number; duplicates?: number; code?: string };
    if (r.status === 202) for (const e of events) acked.add(e.idempotency_key);
    return { status: r.status, body, retryAfter: Number(r.headers.get('retry-after')) };
  };

  // Fill the disk until the log refuses.
  const pending: ReturnType<typeof batch>[] = [];
  for (let i = 0; i < 2_000 && refused < 3; i++) {
    const events = batch();
    const r = await send(events);
    if (r.status === 503) {
      expect(r.body.code).toBe('SLUICE_ERR_LOG_UNAVAILABLE');
      refused++;
      retryAfter = Math.max(retryAfter, r.retryAfter);
      pending.push(events);
    } else expect(r.status).toBe(202);
  }
  expect(refused).toBeGreaterThanOrEqual(3);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  // No crash loop: the process is the same one, and answers.
  expect(server.child.exitCode).toBeNull();
  expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

  // Space returns: the refused batches are resent with the same keys and accepted.
  execFileSync('mount', ['-o', 'remount,size=256m', dir]);
  for (const events of pending) {
    let r = await send(events);
    for (const end = Date.now() + 20_000; r.status !== 202 && Date.now() < end; r = await send(events)) await new Promise((x) => setTimeout(x, 200));
    expect(r.status).toBe(202);
  }

  // Everything acknowledged reaches the store exactly once.
  const { readKey } = keysFrom(server.stdout);
  let counted = 0;
  for (const end = Date.now() + 60_000; Date.now() < end && counted < acked.size; await new Promise((x) => setTimeout(x, 250))) {
    const r = await fetch(`${server.url}/v1/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readKey}` },
      body: JSON.stringify({ from: new Date(day).toISOString(), to: new Date(day + 86_400_000).toISOString(), interval: null, measures: ['count'], source: 'raw' }),
    }).catch(() => null);
    if (r?.ok) counted = ((await r.json()) as { rows: [number][] }).rows[0]![0];
  }
  expect(await stop(server)).toBe(0);
  server = null;
  const facts = await storeFacts(path.join(dir, 'store.duckdb'), 'default');
  console.log('disk-full figures', { sent: n, acknowledged: acked.size, refusedRequests: refused, stored: facts.events, duplicates: facts.events - facts.distinctKeys, lost: acked.size - facts.distinctKeys });
  expect(facts.distinctKeys).toBe(acked.size);
  expect(facts.events).toBe(acked.size);
  expect(fs.existsSync(path.join(dir, 'sluice.db'))).toBe(true);
}, 180_000);
