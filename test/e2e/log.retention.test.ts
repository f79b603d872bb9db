import path from 'node:path';
import { expect, it } from 'vitest';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
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
  const log = new SqliteLog({ file: path.join(tmpDir(), 'sluice.db'), partitions: 1, fsync: 'off', dedupeHorizonMs: 86_400_000, retentionMs: 60_000, now: () => now });
  const at = (receivedAt: number, from: number, n: number) => Array.from({ length: n }, (_, i) => ({ ...entry('t', from + i, 1), partition: 0, receivedAt }));
  // 3,000 old records, then 1,000 recent ones; the consumer acked the first 3,500.
  await log.append(at(now, 0, 3_000));
  await log.append(at(now + 120_000, 3_000, 1_000));
  const lease = (await log.acquire('workers', 0, 'w1', 60_000))!;
  expect(await log.ack(lease, 3_500)).toBe(true);

  // Not past the retention yet: nothing goes.
  now += 30_000;
  expect(log.prune(500)).toBe(0);
  // Past it for the old records only: 500 per pass, oldest first, until the recent ones.
  now += 60_000;
  const passes: number[] = [];
  for (let n = log.prune(500); n > 0; n = log.prune(500)) passes.push(n);
  expect(passes).toEqual([500, 500, 500, 500, 500, 500]);
  // The recent acked records and the unacked ones are all there.
  const rest = await log.read(lease, 5_000);
  expect(rest.length).toBe(500);
  expect(rest[0]!.offset).toBe(3_501);
  // Later the recent acked ones go too, never past what was acked.
  now += 180_000;
  expect(log.prune(5_000)).toBe(500);
  expect(log.prune(5_000)).toBe(0);
  await log.close();
});
