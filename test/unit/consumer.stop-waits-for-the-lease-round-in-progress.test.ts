import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { ManualClock } from '../../src/core/clock.js';
import type { Log } from '../../src/ports/log.js';
import { Consumer, type ConsumerSinks } from '../../src/worker/consumer.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * A consumer stopped while a lease round is taking a partition: stop() waits for that round,
 * so the lease it takes is released with the others instead of being left held, unread and
 * unrenewed, until it expires. Time is a ManualClock; the log a real SQLite file, whose
 * acquire is held at a gate while the test stops the consumer.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sinks: ConsumerSinks = {
  commit: async () => ({ stored: 0, skipped: 0, storedByTenant: new Map() }),
  appliedOffsets: async () => new Map(),
  deadLetters: { record: async () => undefined },
};

it('consumer.stop-releases-a-lease-taken-by-the-round-in-progress', async () => {
  const clock = new ManualClock(Date.UTC(2026, 10, 24, 10, 0));
  const log = new SqliteLog({ file: path.join(tmpDir(), 'sluice.db'), partitions: 2, fsync: 'normal', dedupeHorizonMs: 86_400_000, retentionMs: 0, clock });
  cleanups.push(() => log.close());
  // Partition 1 is another member's for 3 s: the consumer's first round takes partition 0 only.
  expect(await log.acquire('workers', 1, 'other', 3_000)).not.toBeNull();
  let gate: Promise<void> | null = null;
  let open: () => void = () => undefined;
  const gated: Log = new Proxy(log, {
    get(target, prop, receiver) {
      if (prop === 'acquire') {
        return async (...args: Parameters<Log['acquire']>) => {
          if (gate) await gate;
          return target.acquire(...args);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  // One member (the other's membership is never joined): its share is both partitions.
  const consumer = new Consumer(gated, sinks, { group: 'workers', owner: 'c0', partitions: 2, readBatch: 100, commitBatch: 100, maxAttempts: 5, leaseTtlMs: 6_000, pollMs: 50, clock });
  consumer.start();
  await consumer.firstLeases;
  expect(consumer.heldPartitions()).toEqual([0]);

  // The other's lease expires; the next round (every 2 s) takes partition 1, held at the gate.
  gate = new Promise<void>((resolve) => (open = resolve));
  await clock.advance(3_500);
  await clock.advance(1_000);
  const stopped = consumer.stop();
  open();
  await stopped;
  // Both released: a newcomer takes both at once, without waiting for an expiry.
  expect(await log.acquire('workers', 0, 'newcomer', 6_000)).not.toBeNull();
  expect(await log.acquire('workers', 1, 'newcomer', 6_000)).not.toBeNull();
});
