import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { BUSY_WAIT_MS } from '../../src/backends/sqlite/busy.js';
import { openDatabase } from '../../src/backends/sqlite/database.js';
import { GroupCommit } from '../../src/backends/sqlite/group-commit.js';
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
  const { value: [outcomes, during], longestGap } = await sampling(() =>
    Promise.all([
      log.append([at0(1), at0(2)]),
      // An append that comes while the first waits for the lock is written after it.
      new Promise<void>((r) => setTimeout(r, 50)).then(() => log.append([at0(5)])),
    ]),
  );
  expect(outcomes.map((o) => o.status)).toEqual(['appended', 'appended']);
  expect(during.map((o) => (o.status === 'appended' ? o.offset : o.status))).toEqual([3]);
  // The other connection's write committed too: nothing of either was lost.
  expect(other.prepare(`SELECT v FROM meta WHERE k = 'held-elsewhere'`).pluck().get()).toBe('1');
  // Never frozen for the lock's 400 ms, let alone the old 5 s (a generous bound for a loaded machine).
  expect(longestGap).toBeLessThan(300);
  // And the log goes on as before.
  const more = await Promise.all([log.append([at0(3)]), log.append([at0(4)])]);
  expect(more.map((o) => o[0]!.status)).toEqual(['appended', 'appended']);
  expect((await log.positions('g')).find((p) => p.partition === 0)?.head).toBe(5);
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

it('log.an-append-that-fails-otherwise-after-waiting-for-the-lock-leaves-the-next-appends-flowing', async () => {
  // GroupCommit on a real SQLite file, its write failing once (as a full disk or an I/O error
  // would) on the attempt after a wait for the lock.
  const file = path.join(tmpDir(), 'group.db');
  const db = openDatabase(file);
  db.exec('CREATE TABLE t (n INTEGER)');
  const other = new Database(file);
  open.push(db, other);
  let failNext = true;
  const groups = new GroupCommit(db, {
    maxGroupCommit: 100,
    write: (group) => {
      if (failNext) {
        failNext = false;
        throw new Error('disk I/O error');
      }
      for (const _ of group) db.prepare('INSERT INTO t VALUES (1)').run();
      return group.map((p) => p.entries.map(() => ({ status: 'appended' as const, partition: 0, offset: 1 })));
    },
    committed: () => undefined,
    rolledBack: () => undefined,
    onFlush: () => undefined,
    idle: () => undefined,
    now: () => Date.now(),
  });
  other.exec('BEGIN IMMEDIATE');
  setTimeout(() => other.exec('COMMIT'), 100);
  await expect(groups.push([at0(1)], undefined)).rejects.toMatchObject({ code: 'SLUICE_ERR_LOG_UNAVAILABLE', message: /disk I\/O error/ });
  // The wait is over: the next append is flushed (before the fix it stayed pending for ever).
  expect((await groups.push([at0(2)], undefined)).map((o) => o.status)).toEqual(['appended']);
  expect(groups.failure).toBeNull();
  expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(1);
  groups.close();
});
