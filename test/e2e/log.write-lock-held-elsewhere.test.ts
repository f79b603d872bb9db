import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { BUSY_WAIT_MS } from '../../src/backends/sqlite/busy.js';
import { entry } from '../helpers/entries.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * The embedded log's file is shared: the workers' leases, the catalog and other processes
 * write to it too, and SQLite lets one connection write at a time. An append that finds the
 * write lock taken waits for it off the event loop (src/backends/sqlite/busy.ts): requests
 * keep being answered meanwhile, and a holder on the same thread can finish. Before, the
 * append waited inside the call for up to 5 s with the event loop frozen, so a holder on the
 * same thread could never commit and the append failed with "database is locked".
 */
const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

function setUp(): { log: SqliteLog; other: Database.Database } {
  const file = path.join(tmpDir(), 'sluice.db');
  const log = new SqliteLog({ file, partitions: 2, fsync: 'normal', dedupeHorizonMs: 86_400_000, retentionMs: 86_400_000 });
  const other = new Database(file);
  open.push(log, other);
  return { log, other };
}

/** Event n of tenant acme on partition 0. */
const at0 = (n: number) => entry('acme', n, 2, { partition: 0 });

/** Runs `body` while sampling the event loop every 5 ms; answers its result and the longest gap seen (ms). */
async function sampling<T>(body: () => Promise<T>): Promise<{ value: T; longestGap: number }> {
  let last = performance.now();
  let longestGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
  }, 5);
  try {
    const value = await body();
    // The stretch since the last tick counts too (a frozen loop may end just before the body does).
    return { value, longestGap: Math.max(longestGap, performance.now() - last) };
  } finally {
    clearInterval(timer);
  }
}

it('log.an-append-waits-for-a-write-lock-held-on-its-own-thread-and-the-event-loop-keeps-turning', async () => {
  const { log, other } = setUp();
  other.exec('BEGIN IMMEDIATE');
  other.prepare(`INSERT INTO meta (k, v) VALUES ('held-elsewhere', '1')`).run();
  // The holder commits from a timer on this thread: only a free event loop lets it.
  setTimeout(() => other.exec('COMMIT'), 400);
  const { value: outcomes, longestGap } = await sampling(() => log.append([at0(1), at0(2)]));
  expect(outcomes.map((o) => o.status)).toEqual(['appended', 'appended']);
  // The other connection's write committed too: nothing of either was lost.
  expect(other.prepare(`SELECT v FROM meta WHERE k = 'held-elsewhere'`).pluck().get()).toBe('1');
  // Never frozen for the lock's 400 ms, let alone the old 5 s (a generous bound for a loaded machine).
  expect(longestGap).toBeLessThan(300);
  // Appends that came while the group waited are written after it, in order.
  const more = await Promise.all([log.append([at0(3)]), log.append([at0(4)])]);
  expect(more.map((o) => o[0]!.status)).toEqual(['appended', 'appended']);
  expect((await log.positions('g')).find((p) => p.partition === 0)?.head).toBe(4);
});

it('log.an-append-refused-after-the-busy-wait-when-the-lock-is-never-released-and-the-next-one-succeeds', async () => {
  const { log, other } = setUp();
  other.exec('BEGIN IMMEDIATE');
  const started = performance.now();
  const { value: refused, longestGap } = await sampling(() =>
    log.append([at0(1)]).then(
      () => null,
      (e: Error & { code?: string }) => e,
    ),
  );
  const waited = performance.now() - started;
  expect(refused?.code).toBe('SLUICE_ERR_LOG_UNAVAILABLE');
  expect(refused?.message).toMatch(/the log cannot write: database is locked/);
  expect(waited).toBeGreaterThanOrEqual(BUSY_WAIT_MS);
  expect(longestGap).toBeLessThan(300);
  // Readiness says so until an append succeeds.
  expect((await log.health()).detail).toMatch(/appends fail since .*database is locked/);
  other.exec('ROLLBACK');
  // Nothing of the refused request was written: its key is free, and it appends now.
  expect((await log.append([at0(1)]))[0]!.status).toBe('appended');
  expect((await log.health()).ok).toBe(true);
}, 20_000);
