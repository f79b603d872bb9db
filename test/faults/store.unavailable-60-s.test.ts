import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { storeFacts } from '../helpers/duckdb.js';
import { until } from '../helpers/pipeline.js';
import { freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * The embedded store unavailable for 60 s: another process holds the DuckDB file (an
 * operator's `duckdb store.duckdb` left open does this), so sluice cannot open it. Ingest
 * keeps accepting into the log, nothing is dead-lettered for the outage, /readyz says what
 * is wrong, and when the file is free again the backlog drains: every acknowledged event is
 * stored exactly once.
 */
const OUTAGE_MS = Number(process.env.STORE_OUTAGE_MS ?? 60_000);
const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
});

it(`store.unavailable-for-${OUTAGE_MS / 1000}-s-ingest-goes-on-nothing-dead-lettered-the-backlog-drains`, async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'store.duckdb');
  // The other process: opens the store file for writing and keeps it for the outage.
  const holder = spawn(
    process.execPath,
    ['--input-type=module', '-e', `import { DuckDBInstance } from '@duckdb/node-api'; const db = await DuckDBInstance.create(${JSON.stringify(file)}); console.log('holding'); setTimeout(() => db.closeSync(), ${OUTAGE_MS});`],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const released = new Promise<void>((resolve) => holder.once('exit', () => resolve()));
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  const began = Date.now();
  server = await startServer(dir, await freePort());
  const keys = keysFrom(server.stdout);

  // Events flow all through the outage, 2,000 a second.
  let sent = 0;
  let refused = 0;
  let storeDown = 0;
  let queried: { status: number; body: string } | null = null;
  while (Date.now() - began < OUTAGE_MS - 2_000) {
    const body = JSON.stringify(Array.from({ length: 500 }, (_, j) => ({ type: 'order', key: `u${j % 50}`, idempotency_key: `e-${sent + j}`, properties: { amount: j % 10 } })));
    const r = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${keys.writeKey}` }, body });
    if (r.status === 202) sent += 500;
    else refused++;
    const ready = (await (await fetch(`${server.url}/readyz`)).json()) as { checks: { store: { ok: boolean } } };
    if (!ready.checks.store.ok) storeDown++;
    // Half way through, a query says the store is away (after waiting a few seconds for it).
    if (queried === null && Date.now() - began > OUTAGE_MS / 2) {
      const q = await fetch(`${server.url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${keys.readKey}` }, body: '{}' });
      queried = { status: q.status, body: await q.text() };
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const during = sent;
  expect(refused).toBe(0);
  expect(storeDown).toBeGreaterThan(0);
  expect(queried?.status, queried?.body).toBe(503);

  await released;
  const back = Date.now();
  let counted = 0;
  await until(
    async () => {
      const r = await fetch(`${server!.url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${keys.readKey}` }, body: JSON.stringify({ interval: null, source: 'raw' }) });
      counted = r.status === 200 ? ((await r.json()) as { rows: [number][] }).rows[0]![0] : 0;
      return counted >= sent;
    },
    120_000,
    250,
  );
  const drained = (Date.now() - back) / 1000;
  const dlq = (await (await fetch(`${server.url}/v1/dlq?limit=10`, { headers: { authorization: `Bearer ${keys.adminKey}` } })).json()) as { entries: unknown[] };
  expect(await stop(server)).toBe(0);
  server = null;
  const facts = await storeFacts(file, 'default');
  console.log(
    `store unavailable ${OUTAGE_MS / 1000} s: ${during} events accepted while it was away (0 refused), drained ${drained.toFixed(1)} s after it returned; ` +
      `stored ${facts.events} rows / ${facts.distinctKeys} keys, ${dlq.entries.length} dead letters`,
  );
  expect(dlq.entries).toEqual([]);
  expect(facts).toMatchObject({ events: sent, distinctKeys: sent });
}, OUTAGE_MS + 180_000);
