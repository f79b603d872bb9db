import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { deploy, drained, sendAll, type Deployment } from '../helpers/scale-out.js';
import { until } from '../helpers/pipeline.js';
import { natsAvailable, postgresAvailable, POSTGRES_URL, uniqueName } from '../helpers/services.js';
import { mountTmpfs, tmpfsOrSkip } from '../helpers/tmpfs.js';

/**
 * The store's disk full, for real: the PostgreSQL store's tables are moved to a tablespace on
 * a small tmpfs, which then fills up. PostgreSQL refuses to extend them (SQLSTATE 53100);
 * workers back off and retry, ingest keeps accepting (the log is on another disk), nothing is
 * dead-lettered. When the disk grows, the backlog drains and every acknowledged event is
 * stored exactly once.
 *
 * Needs root (to mount) and the PostgreSQL server on this machine (to own the directory).
 */
const local = ['127.0.0.1', 'localhost'].includes(new URL(POSTGRES_URL).hostname);
const ready = (await natsAvailable()) && (await postgresAvailable()) && local && tmpfsOrSkip('the store disk-full test');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
}, 60_000);

async function admin<T extends pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

it.skipIf(!ready)('store.disk-full-workers-back-off-ingest-goes-on-nothing-lost-when-space-returns', async () => {
  const postgresUid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const disk = mountTmpfs(8, [`uid=${postgresUid}`, 'mode=0700']);
  cleanups.push(() => disk.unmount());
  const tablespace = uniqueName('sluice_small');
  await admin(`CREATE TABLESPACE ${tablespace} LOCATION '${disk.dir}'`);
  cleanups.push(async () => {
    await admin(`DROP TABLESPACE IF EXISTS ${tablespace}`);
  });

  const d: Deployment = await deploy();
  // Before the tablespace goes (its tables go with the schema).
  cleanups.push(() => d.cleanup());
  await d.start('worker');
  const ingest = await d.start('ingest');
  const query = await d.start('query');
  const first = await sendAll(() => [ingest.url], d.tenant.writeKey, 5_000);
  await until(async () => (await d.stored()).rows >= first.keys, 60_000, 100);

  // The store's tables move to the small disk: the events' partitions (and the default for new
  // ones), the key ledger and the per-minute counts.
  const parts = await admin<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
     JOIN pg_namespace n ON n.oid = p.relnamespace WHERE p.relname = 'events' AND n.nspname = $1`,
    [d.schema],
  );
  for (const t of [...parts.map((p) => p.name), 'events', 'event_keys', 'counts_1m']) await admin(`ALTER TABLE ${d.schema}.${t} SET TABLESPACE ${tablespace}`);

  // Events keep coming until the disk is full and commits fail.
  let during = { keys: 0, accepted: 0, duplicates: 0, retries: 0 };
  let stuckSince = 0;
  let last = -1;
  for (const end = Date.now() + 120_000; Date.now() < end; ) {
    const s = await sendAll(() => [ingest.url], d.tenant.writeKey, 5_000, { concurrency: 2 });
    during = { keys: during.keys + s.keys, accepted: during.accepted + s.accepted, duplicates: during.duplicates + s.duplicates, retries: during.retries + s.retries };
    const rows = (await d.stored()).rows;
    if (rows !== last) [last, stuckSince] = [rows, Date.now()];
    // Nothing stored for 5 s while events wait: the store's disk is full.
    if (Date.now() - stuckSince > 5_000 && rows < first.keys + during.keys) break;
  }
  const storedWhileFull = (await d.stored()).rows;
  expect(storedWhileFull).toBeLessThan(first.keys + during.keys);
  expect(during.retries).toBe(0);
  const ready = (await (await fetch(`${query.url}/readyz`)).json()) as Record<string, unknown>;

  disk.resize(512);
  const back = Date.now();
  const total = { keys: first.keys + during.keys };
  await drained(d, total.keys, 'after the disk had room again', { timeoutMs: 240_000 });
  await new Promise((r) => setTimeout(r, 1_000));
  const stored = await d.stored();
  const dlq = (await (await fetch(`${query.url}/v1/dlq?limit=10`, { headers: { authorization: `Bearer ${d.tenant.adminKey}` } })).json()) as { entries: unknown[] };
  console.log(
    `store disk full: ${during.keys} events acknowledged while it filled (0 retried requests), ${storedWhileFull} stored when commits stopped, ` +
      `drained ${((Date.now() - back) / 1000).toFixed(1)} s after the disk grew; stored ${stored.rows} rows / ${stored.keys} keys of ${total.keys}, ${dlq.entries.length} dead letters; readyz while full ${JSON.stringify(ready)}`,
  );
  expect(stored).toEqual({ rows: total.keys, keys: total.keys });
  expect(dlq.entries).toEqual([]);
}, 420_000);
