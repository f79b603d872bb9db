import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { isFenced, RetryAfterError } from '../../src/core/errors.js';
import type { Store } from '../../src/ports/store.js';
import { Consumer, storeSinks, type ConsumerOptions } from '../../src/worker/consumer.js';
import type { SqliteCatalog as Catalog } from '../../src/backends/sqlite/catalog.js';
import type { Log } from '../../src/ports/log.js';
import { entry } from '../helpers/entries.js';
import { until } from '../helpers/pipeline.js';
import { tmpDir } from '../helpers/tmp.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function engines(partitions: number, now?: () => number) {
  const dir = tmpDir();
  const log = new SqliteLog({ file: path.join(dir, 'sluice.db'), partitions, fsync: 'normal', dedupeHorizonMs: 86_400_000, retentionMs: 0, clock: now ? { now } : undefined });
  const catalog = new SqliteCatalog(path.join(dir, 'sluice.db'));
  const store = new DuckdbStore({ file: path.join(dir, 'store.duckdb') });
  await store.connect();
  cleanups.push(async () => {
    await log.close();
    await catalog.close();
    await store.close();
  });
  return { log, catalog, store };
}

function options(owner: string, partitions: number, overrides: Partial<ConsumerOptions> = {}): ConsumerOptions {
  return { group: 'workers', owner, partitions, readBatch: 500, commitBatch: 2000, maxAttempts: 5, leaseTtlMs: 1_000, pollMs: 10, ...overrides };
}

function consumer(log: Log, store: Store, catalog: Catalog, opts: ConsumerOptions): Consumer {
  const c = new Consumer(log, storeSinks(store, catalog.deadLetters), opts);
  c.start();
  cleanups.push(() => c.stop());
  return c;
}

describe('worker failures', () => {
  it('poison.record-that-crashed-its-consumers-is-dead-lettered-and-its-partition-flows', async () => {
    const { log, catalog, store } = await engines(1);
    await log.append(Array.from({ length: 1000 }, (_, i) => entry('t1', i, 1)));
    const poison = 'k-700';
    // Consumers that die whenever the poison record is in their hands: they never ack.
    let crashes = 0;
    for (let round = 0; round < 100; round++) {
      const lease = (await log.acquire('workers', 0, `crashy-${round}`, 60_000))!;
      const records = await log.read(lease, 1000);
      if (records.some((r) => r.idempotencyKey === poison)) {
        crashes++;
        await log.release(lease);
        if (records.length === 1 && records[0]!.attempt >= 4) break;
        continue;
      }
      const last = records[records.length - 1]!.offset;
      await store.commit({ records, partitions: [{ partition: 0, token: lease.token, upTo: last }] });
      await log.ack(lease, last);
      await log.release(lease);
    }
    // A healthy consumer takes over: the poison record comes to it alone, at its limit.
    consumer(log, store, catalog, options('healthy', 1));
    await until(async () => (await store.appliedOffsets()).get(0) === 1000);
    const dead = (await catalog.deadLetters.list('t1', {}, 10)).entries;
    console.log('poison figures', { crashes, stored: (await store.rawStats('t1')).events, deadLettered: dead.length });
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ idempotencyKey: poison, reason: 'poison', attempts: 5, origin: 'live' });
    expect(JSON.parse(dead[0]!.payload)).toMatchObject({ type: 'checkout', idempotency_key: poison, properties: { amount: 700 } });
    expect(await store.rawStats('t1')).toEqual({ events: 999, distinctKeys: 999 });
    // Bisection keeps the number of crashes logarithmic in the batch, plus the attempts alone.
    expect(crashes).toBeLessThan(30);
  });

  it('transient.store-outage-is-retried-never-dead-lettered-and-the-backlog-drains', async () => {
    const { log, catalog, store } = await engines(4);
    let downUntil = Date.now() + 1_500;
    let refused = 0;
    const flaky: Store = Object.create(store) as Store;
    flaky.commit = (batch) => {
      if (Date.now() < downUntil) {
        refused++;
        return Promise.reject(new RetryAfterError('IO Error: store is down', 100));
      }
      return store.commit(batch);
    };
    const c = consumer(log, flaky, catalog, options('w', 4));
    // Ingest keeps going while the store is down.
    for (let i = 0; i < 10; i++) await log.append(Array.from({ length: 500 }, (_, j) => entry('t1', i * 500 + j, 4)));
    expect((await store.rawStats('t1')).events).toBe(0);
    await until(() => Date.now() > downUntil);
    await until(async () => (await store.rawStats('t1')).events === 5000, 30_000, 50);
    expect(refused).toBeGreaterThan(0);
    expect(await catalog.deadLetters.list('t1', {}, 10)).toEqual({ entries: [], cursor: null });
    expect(await store.rawStats('t1')).toEqual({ events: 5000, distinctKeys: 5000 });
    expect(c.heldPartitions()).toEqual([0, 1, 2, 3]);
    downUntil = 0;
  });

  it('rebalance.consumers-share-partitions-and-take-over-a-departed-ones', async () => {
    const { log, catalog, store } = await engines(8);
    const a = consumer(log, store, catalog, options('a', 8));
    await until(() => a.heldPartitions().length === 8);
    const b = new Consumer(log, storeSinks(store, catalog.deadLetters), options('b', 8));
    b.start();
    await until(() => a.heldPartitions().length === 4 && b.heldPartitions().length === 4, 10_000);
    expect(new Set([...a.heldPartitions(), ...b.heldPartitions()]).size).toBe(8);
    await log.append(Array.from({ length: 2000 }, (_, i) => entry('t1', i, 8)));
    await until(async () => (await store.rawStats('t1')).events === 2000);
    await b.stop();
    await until(() => a.heldPartitions().length === 8, 10_000);
    await log.append(Array.from({ length: 2000 }, (_, i) => entry('t1', 2000 + i, 8)));
    await until(async () => (await store.rawStats('t1')).events === 4000);
    expect(await store.rawStats('t1')).toEqual({ events: 4000, distinctKeys: 4000 });
  });

  it('fencing.a-paused-consumer-that-wakes-after-its-lease-was-taken-cannot-commit', async () => {
    let now = Date.now();
    const { log, store } = await engines(1, () => now);
    await log.append(Array.from({ length: 100 }, (_, i) => entry('t1', i, 1)));
    const paused = (await log.acquire('workers', 0, 'paused', 1_000))!;
    const stale = await log.read(paused, 100);
    now += 5_000; // the paused consumer sleeps past its lease
    const successor = (await log.acquire('workers', 0, 'successor', 1_000))!;
    // The successor gets the suspect range in bisected windows and commits each.
    for (let fresh = await log.read(successor, 100); fresh.length > 0; fresh = await log.read(successor, 100)) {
      const upTo = fresh[fresh.length - 1]!.offset;
      await store.commit({ records: fresh, partitions: [{ partition: 0, token: successor.token, upTo }] });
      expect(await log.ack(successor, upTo)).toBe(true);
    }
    // It wakes up and tries to finish its batch.
    await expect(store.commit({ records: stale, partitions: [{ partition: 0, token: paused.token, upTo: 100 }] })).rejects.toSatisfy(isFenced);
    expect(await log.ack(paused, 100)).toBe(false);
    expect(await store.rawStats('t1')).toEqual({ events: 100, distinctKeys: 100 });
  });
});
