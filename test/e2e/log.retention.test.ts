import { ManualClock } from '../../src/core/clock.js';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { startRetention } from '../../src/backends/sqlite/retention.js';
import { createLogger } from '../../src/obs/logger.js';
import { entry } from '../helpers/entries.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Retention of the embedded log: acked records older than `log.retentionMs` are pruned, a
 * bounded number per pass, from the oldest; unacked records and recent ones stay. A pass
 * looks at the oldest `limit` acked records only, so its cost does not grow with the log
 * (the soak found a pass that read every record: 2.6 s of blocked event loop at 20M).
 */
it('retention.prunes-old-acked-records-from-the-oldest-a-bounded-batch-per-pass', async () => {
  let now = Date.UTC(2026, 10, 25, 12, 0);
  const log = new SqliteLog({ file: path.join(tmpDir(), 'sluice.db'), partitions: 1, fsync: 'off', dedupeHorizonMs: 86_400_000, retentionMs: 60_000, clock: { now: () => now } });
  const at = (receivedAt: number, from: number, n: number) => Array.from({ length: n }, (_, i) => ({ ...entry('t', from + i, 1), partition: 0, receivedAt }));
  // 3,000 old records, then 1,000 recent ones; the consumer acked the first 3,500.
  await log.append(at(now, 0, 3_000));
  await log.append(at(now + 120_000, 3_000, 1_000));
  const lease = (await log.acquire('workers', 0, 'w1', 60_000))!;
  expect(await log.ack(lease, 3_500)).toBe(true);

  // Not past the retention yet: nothing goes.
  now += 30_000;
  expect(log.prune(500)).toEqual({ deleted: 0, behind: false });
  // Past it for the old records only: 500 per pass, oldest first, until the recent ones.
  now += 60_000;
  const passes: number[] = [];
  for (let n = log.prune(500).deleted; n > 0; n = log.prune(500).deleted) passes.push(n);
  expect(passes).toEqual([500, 500, 500, 500, 500, 500]);
  // The recent acked records and the unacked ones are all there.
  const rest = await log.read(lease, 5_000);
  expect(rest.length).toBe(500);
  expect(rest[0]!.offset).toBe(3_501);
  // Later the recent acked ones go too, never past what was acked.
  now += 180_000;
  expect(log.prune(5_000)).toEqual({ deleted: 500, behind: false });
  expect(log.prune(5_000)).toEqual({ deleted: 0, behind: false });
  await log.close();
});

/**
 * A log fed faster than one batch per period (the soak: 20k ev/s, where 1,000 per partition
 * every 10 s deletes 1.6k ev/s) would outgrow its retention. While a partition is behind,
 * passes run back to back with pauses nine times their length: 60,000 records past the
 * retention, 30 batches per partition, go in a few seconds where periodic passes alone
 * (one a second here) would take 30.
 */
it('retention.catches-up-in-back-to-back-passes-while-behind', async () => {
  let now = Date.UTC(2026, 10, 25, 12, 0);
  const file = path.join(tmpDir(), 'sluice.db');
  const log = new SqliteLog({ file, partitions: 2, fsync: 'off', dedupeHorizonMs: 86_400_000, retentionMs: 60_000, clock: { now: () => now } });
  for (let i = 0; i < 60; i++) await log.append(Array.from({ length: 1_000 }, (_, j) => ({ ...entry('t', i * 1_000 + j, 1), partition: j % 2, receivedAt: now })));
  for (const p of [0, 1]) expect(await log.ack((await log.acquire('workers', p, 'w1', 60_000))!, 30_000)).toBe(true);
  const reader = new Database(file, { readonly: true });
  const records = (): number => (reader.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
  expect(records()).toBe(60_000);
  now += 120_000;
  // Retention's timers run on a clock the test drives: 50 ms of its time per step.
  const clock = new ManualClock(now);
  const stop = startRetention(log, createLogger('silent'), { periodMs: 1_000, batch: 1_000, clock });
  for (; records() > 0 && clock.now() - now < 40_000; await clock.advance(50));
  stop();
  const took = clock.now() - now;
  process.stderr.write(`retention: 60,000 records past the retention deleted in ${took} ms (periodic passes alone: 30 s)\n`);
  expect(records()).toBe(0);
  expect(took).toBeLessThan(10_000);
  reader.close();
  await log.close();
}, 60_000);
