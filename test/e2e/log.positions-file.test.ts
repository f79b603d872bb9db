import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { positionsFile } from '../../src/backends/sqlite/positions.js';
import { entry } from '../helpers/entries.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * The consumer groups' positions live in `sluice.db-offsets`, beside the log's file (see
 * src/backends/sqlite/positions.ts): a data directory of an earlier version, whose positions
 * are in the log's file, keeps them; a group without a position starts at the oldest record
 * that retention left; and a read or an ack never holds the log's write lock.
 */
const open = (file: string, now: () => number) => new SqliteLog({ file, partitions: 1, fsync: 'always', dedupeHorizonMs: 86_400_000, retentionMs: 60_000, clock: { now } });
const at = (receivedAt: number, from: number, n: number) => Array.from({ length: n }, (_, i) => ({ ...entry('t', from + i, 1), partition: 0, receivedAt }));

it('positions.an-older-data-directorys-offsets-and-markers-move-into-the-positions-file', async () => {
  const file = path.join(tmpDir(), 'sluice.db');
  const now = Date.now();
  let log = open(file, () => now);
  await log.append(at(now, 0, 10));
  await log.close();
  // As an earlier version left it: positions in the log's own file, no positions file.
  fs.rmSync(positionsFile(file), { force: true });
  const db = new Database(file);
  db.prepare(`INSERT INTO offsets (grp, p, committed) VALUES ('workers', 0, 7)`).run();
  db.prepare(`INSERT INTO deliveries (grp, p, from_o, to_o, win, attempts) VALUES ('workers', 0, 8, 10, 3, 1)`).run();
  db.close();

  log = open(file, () => now);
  expect((await log.positions('workers'))[0]).toMatchObject({ head: 10, committed: 7 });
  const lease = (await log.acquire('workers', 0, 'w1', 60_000))!;
  // The marker came along: the range 8-10 was in flight, so it comes back as suspect.
  const again = await log.read(lease, 100);
  expect(again.map((r) => r.offset)).toEqual([8]);
  expect(again[0]!.suspect).toBe(true);
  await log.close();
  const old = new Database(file, { readonly: true });
  expect(old.prepare('SELECT count(*) FROM offsets').pluck().get()).toBe(0);
  expect(old.prepare('SELECT count(*) FROM deliveries').pluck().get()).toBe(0);
  old.close();
  expect(fs.statSync(positionsFile(file)).mode & 0o777).toBe(0o600);
});

it('positions.a-group-without-a-position-starts-at-the-oldest-record-retention-kept', async () => {
  let now = Date.UTC(2026, 10, 25, 12, 0);
  const file = path.join(tmpDir(), 'sluice.db');
  const log = open(file, () => now);
  await log.append(at(now, 0, 3_000));
  const lease = (await log.acquire('workers', 0, 'w1', 60_000))!;
  expect(await log.ack(lease, 2_500)).toBe(true);
  now += 120_000;
  while (log.prune(1_000).deleted > 0);
  // A new group reads in windows of 100: the first 25 windows' records are gone.
  const fresh = (await log.acquire('audit', 0, 'a1', 60_000))!;
  const first = await log.read(fresh, 100);
  expect(first.map((r) => r.offset)).toEqual(Array.from({ length: 100 }, (_, i) => 2_501 + i));
  expect(await log.ack(fresh, 2_600)).toBe(true);
  expect((await log.read(fresh, 100))[0]!.offset).toBe(2_601);
  await log.close();
});

it('positions.reads-and-acks-do-not-take-the-logs-write-lock', async () => {
  const file = path.join(tmpDir(), 'sluice.db');
  const now = Date.now();
  const log = open(file, () => now);
  await log.append(at(now, 0, 100));
  const lease = (await log.acquire('workers', 0, 'w1', 60_000))!;
  // Another connection holds the log's write lock (as an append in another thread does).
  const other = new Database(file);
  other.exec('BEGIN IMMEDIATE');
  try {
    const t0 = performance.now();
    expect((await log.read(lease, 50)).length).toBe(50);
    expect(await log.ack(lease, 50)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1_000); // busy_timeout is 5 s: a wait would show
  } finally {
    other.exec('ROLLBACK');
    other.close();
  }
  expect((await log.positions('workers'))[0]).toMatchObject({ committed: 50 });
  await log.close();
});

it('positions.a-damaged-positions-file-refuses-to-open-and-says-it-holds-only-positions', async () => {
  const file = path.join(tmpDir(), 'sluice.db');
  const now = Date.now();
  const log = open(file, () => now);
  await log.append(at(now, 0, 3));
  await log.close();
  fs.rmSync(`${positionsFile(file)}-wal`, { force: true });
  fs.writeFileSync(positionsFile(file), Buffer.alloc(8192, 0x5a));
  let thrown: unknown;
  try {
    open(file, () => now);
  } catch (e: unknown) {
    thrown = e;
  }
  expect(thrown).toMatchObject({ code: 'SLUICE_ERR_DATA_DAMAGED', field: 'dataDir' });
  const message = (thrown as Error).message;
  expect(message.startsWith(`${positionsFile(file)} is damaged (`)).toBe(true);
  expect(message).toContain(`). It holds only the workers' positions: stop sluice, move it aside (with its -wal file), and start again`);
  // The log's own file is left whole: with the damaged file moved aside, the log opens again.
  fs.rmSync(positionsFile(file));
  const again = open(file, () => now);
  expect((await again.positions('workers'))[0]).toMatchObject({ head: 3, committed: 0 });
  await again.close();
});
