import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { ManualClock } from '../../src/core/clock.js';
import type { Log } from '../../src/ports/log.js';
import { Consumer, idleWaitMs, type ConsumerSinks } from '../../src/worker/consumer.js';
import { entry } from '../helpers/entries.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * An idle consumer's wait grows while its reads find nothing (pollMs, doubled, up to
 * idleMaxMs), and a read that finds records sets it back: a remote log (NATS) is asked 4 times a
 * second instead of 20 when nothing comes, and the first record after a quiet spell waits at
 * most idleMaxMs. Time is a ManualClock; the log is a real SQLite file, and nothing calls
 * notify(), as nothing does on NATS.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Sinks that keep the applied offsets in memory (as the shadow group's do) and count what was committed. */
function memorySinks(): ConsumerSinks & { committed: number } {
  const applied = new Map<number, number>();
  const sinks = {
    committed: 0,
    async commit(batch: Parameters<ConsumerSinks['commit']>[0]) {
      sinks.committed += batch.records.length;
      for (const p of batch.partitions) applied.set(p.partition, Math.max(applied.get(p.partition) ?? 0, p.upTo));
      return { stored: batch.records.length, skipped: 0, storedByTenant: new Map<string, number>() };
    },
    appliedOffsets: async () => new Map(applied),
    deadLetters: { record: async () => undefined },
  };
  return sinks;
}

describe('an idle consumer', () => {
  it('idle-wait.doubles-from-pollMs-up-to-idleMaxMs', () => {
    expect([0, 1, 2, 3, 4, 50].map((n) => idleWaitMs(50, 250, n))).toEqual([50, 100, 200, 250, 250, 250]);
    // Without growth (idleMaxMs = pollMs), and a maximum below pollMs, the wait is pollMs.
    expect(idleWaitMs(50, 50, 7)).toBe(50);
    expect(idleWaitMs(50, 10, 3)).toBe(50);
  });

  it('consumer.reads-4-times-a-second-when-idle-and-the-first-record-after-waits-at-most-idleMaxMs', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 24, 10, 0));
    const log = new SqliteLog({ file: path.join(tmpDir(), 'sluice.db'), partitions: 1, fsync: 'normal', dedupeHorizonMs: 86_400_000, retentionMs: 0, clock });
    let reads = 0;
    /** Every read: when (clock ms) and how many records it found. */
    const seen: { at: number; found: number }[] = [];
    const counted: Log = new Proxy(log, {
      get(target, prop, receiver) {
        if (prop === 'read') {
          return (...args: Parameters<Log['read']>) => {
            reads++;
            const read = { at: clock.now(), found: 0 };
            seen.push(read);
            return target.read(...args).then((records) => ((read.found = records.length), records));
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const sinks = memorySinks();
    const consumer = new Consumer(counted, sinks, { group: 'workers', owner: 'c0', partitions: 1, readBatch: 100, commitBatch: 100, maxAttempts: 5, leaseTtlMs: 6_000, pollMs: 50, idleMaxMs: 250, clock });
    consumer.start();
    cleanups.push(async () => {
      await consumer.stop();
      await log.close();
    });
    await consumer.firstLeases;
    await clock.advance(0);
    expect(consumer.heldPartitions()).toEqual([0]);

    // 10 s with nothing to read: waits of 50, 100, 200, then 250 ms: about 42 reads, not 200.
    reads = 0;
    await clock.advance(10_000);
    console.log(`idle consumer: ${reads} reads in 10 s (pollMs 50, idleMaxMs 250)`);
    expect(reads).toBeGreaterThanOrEqual(38);
    expect(reads).toBeLessThanOrEqual(42);

    // A record arrives: read and committed within idleMaxMs, with no wake-up.
    await log.append([entry('t1', 1, 1)]);
    await clock.advance(250);
    expect(sinks.committed).toBe(1);

    // After a round that found records, the wait starts again at pollMs: the reads that
    // follow the one that found it come 0, 50, 100 and 200 ms apart.
    await clock.advance(400);
    const after = seen.slice(seen.findIndex((r) => r.found > 0)).map((r) => r.at);
    const gaps = after.slice(1).map((t, k) => t - after[k]!);
    expect(gaps.slice(0, 4)).toEqual([0, 50, 100, 200]);
  });
});
