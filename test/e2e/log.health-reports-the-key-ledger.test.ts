import path from 'node:path';
import { expect, it } from 'vitest';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { entry } from '../helpers/entries.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * The embedded log's health says how many idempotency keys its ledger holds and what its
 * filters take in memory (sluice_log_ledger_keys, sluice_log_ledger_filter_bytes): the part of
 * the process's memory that grows with the keys within the dedupe horizon, not with traffic
 * alone. Duplicates add no key; keys survive a reopen, filters included, and are read back at
 * the first append after it.
 */
it('log.health-counts-the-ledgers-keys-and-the-memory-of-its-filters-across-a-reopen', async () => {
  const file = path.join(tmpDir(), 'sluice.db');
  const open = () => new SqliteLog({ file, partitions: 2, fsync: 'off', dedupeHorizonMs: 86_400_000, retentionMs: 86_400_000, ledgerTailKeys: 1_000 });
  let log = open();
  expect(await log.health()).toMatchObject({ ok: true, ledgerKeys: 0, ledgerFilterBytes: 0 });

  for (let from = 0; from < 5_000; from += 500) await log.append(Array.from({ length: 500 }, (_, i) => entry('t', from + i, 2)));
  const dup = await log.append(Array.from({ length: 100 }, (_, i) => entry('t', i, 2)));
  expect(dup.every((o) => o.status === 'duplicate')).toBe(true);
  log.compactLedger();

  const health = await log.health();
  expect(health.ledgerKeys).toBe(5_000);
  const { runKeys, runs } = log.ledgerStats();
  // 14 bits a key in 64-byte blocks: 1.75 bytes a key, rounded up to a block per run.
  expect(health.ledgerFilterBytes).toBeGreaterThanOrEqual(1.75 * runKeys);
  expect(health.ledgerFilterBytes).toBeLessThanOrEqual(1.75 * runKeys + 64 * runs);
  await log.close();

  // The ledger is read back at the first append after a start (until then it holds nothing in memory).
  log = open();
  expect(await log.health()).toMatchObject({ ledgerKeys: 0, ledgerFilterBytes: 0 });
  expect((await log.append([entry('t', 0, 2)]))[0]!.status).toBe('duplicate');
  expect(await log.health()).toMatchObject({ ledgerKeys: 5_000, ledgerFilterBytes: health.ledgerFilterBytes });
  await log.close();
});
