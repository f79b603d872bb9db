import fs from 'node:fs';
import path from 'node:path';
import { openDatabase, immediate, type Fsync, type SqliteDatabase } from '../src/backends/sqlite/database.js';
import { KeyLedger, keyHash } from '../src/backends/sqlite/ledger.js';
import { SqliteLog } from '../src/backends/sqlite/log.js';
import { validateEvent } from '../src/core/event.js';
import type { LogEntry } from '../src/core/types.js';
import { eventsFor, type KeyShape } from './load.js';

/**
 * The key ledger with UUID keys beside sequential ones, in one run.
 *
 * `ledgerCandidates`: the ways of storing the ledger measured before choosing, each on its
 * own SQLite file (WAL; synchronous = NORMAL by default, so that the pages each layout writes
 * show rather than the disk's fsync latency, which dominates on a shared disk), keys only, 1,000 keys per
 * transaction (a group commit of ten requests of 100), after `prefill` keys are in it:
 *   btree          the earlier layout: (tenant, key) PRIMARY KEY, WITHOUT ROWID
 *   rowid-hash     the key's 53-bit hash as INTEGER PRIMARY KEY (smaller rows, still random
 *                  inserts; a hash collision would be a false duplicate, so not usable alone)
 *   log-structured KeyLedger: appended tails, sorted runs merged in steps, Bloom filters; its
 *                  background steps are run between transactions and counted in the time
 *
 * `appendPath`: SqliteLog.append (records and ledger, durable) with requests of `batch`
 * events and 16 requests in flight, sequential keys beside UUID keys, after `prefill` keys.
 */
export interface CandidateFigure {
  candidate: string;
  keys: KeyShape;
  prefill: number;
  usPerKey: number;
}

const TENANT = 'bench';

function keyOf(shape: KeyShape, n: number): string {
  // The same keys as the HTTP load (bench/load.ts): `RUN-N`, or a UUID derived from it.
  return JSON.parse(eventsFor('ledger', n, 1, 0, shape)[0]!).idempotency_key as string;
}

function keysOf(shape: KeyShape, from: number, count: number): string[] {
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) out[i] = keyOf(shape, from + i);
  return out;
}

interface Candidate {
  /** Inserts keys in one transaction; returns how many were new. */
  insert(keys: string[]): number;
  /** One background step, if any; false when there is none. */
  step(): boolean;
}

function candidate(name: string, db: SqliteDatabase): Candidate {
  if (name === 'btree') {
    db.exec('CREATE TABLE ledger_b (tenant TEXT NOT NULL, idem TEXT NOT NULL, PRIMARY KEY (tenant, idem)) WITHOUT ROWID');
    const ins = db.prepare('INSERT OR IGNORE INTO ledger_b (tenant, idem) VALUES (?, ?)');
    return { insert: (keys) => immediate(db, () => keys.reduce((n, k) => n + ins.run(TENANT, k).changes, 0)), step: () => false };
  }
  if (name === 'rowid-hash') {
    db.exec('CREATE TABLE ledger_h (h INTEGER PRIMARY KEY)');
    const ins = db.prepare('INSERT OR IGNORE INTO ledger_h (h) VALUES (?)');
    return { insert: (keys) => immediate(db, () => keys.reduce((n, k) => n + ins.run(keyHash(TENANT, k)).changes, 0)), step: () => false };
  }
  const ledger = new KeyLedger(db, { horizonMs: 7 * 86_400_000 });
  const now = Date.now();
  return {
    insert: (keys) => {
      try {
        const n = immediate(db, () => {
          ledger.begin(now);
          return keys.reduce((n, k) => n + (ledger.claim(TENANT, k) ? 1 : 0), 0);
        });
        ledger.commit();
        return n;
      } catch (e) {
        ledger.rollback();
        throw e;
      }
    },
    step: () => ledger.pending && (ledger.maintain(), true),
  };
}

export async function ledgerCandidates(work: string, prefill: number, measured: number, say: (s: string) => void, fsync: Fsync = 'normal', only?: string[]): Promise<CandidateFigure[]> {
  const out: CandidateFigure[] = [];
  const names = only ?? ['btree', 'rowid-hash', 'log-structured'];
  for (const name of names) {
    for (const shape of ['sequential', 'uuid'] as KeyShape[]) {
      const dir = path.join(work, `ledger-${name}-${shape}`);
      fs.rmSync(dir, { recursive: true, force: true });
      const db = openDatabase(path.join(dir, 'ledger.db'), { fsync });
      const c = candidate(name, db);
      const t0 = performance.now();
      for (let from = 0; from < prefill; from += 20_000) {
        c.insert(keysOf(shape, from, Math.min(20_000, prefill - from)));
        while (c.step());
      }
      if (prefill > 0) say(`  ${name} ${shape}: prefilled ${prefill.toLocaleString('en-US')} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const batches: string[][] = [];
      for (let from = prefill; from < prefill + measured; from += 1_000) batches.push(keysOf(shape, from, 1_000));
      const start = performance.now();
      let n = 0;
      for (const b of batches) {
        n += c.insert(b);
        c.step();
      }
      while (c.step());
      const us = ((performance.now() - start) * 1000) / measured;
      if (n !== measured) throw new Error(`${name} ${shape}: ${n} of ${measured} keys were new`);
      out.push({ candidate: name, keys: shape, prefill, usPerKey: us });
      say(`  ${name.padEnd(15)} ${shape.padEnd(10)} after ${prefill.toLocaleString('en-US').padStart(11)} keys: ${us.toFixed(2).padStart(6)} µs/key`);
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}

export interface AppendFigure {
  keys: KeyShape;
  batch: number;
  prefill: number;
  eventsPerSecond: number;
}

function entries(shape: KeyShape, from: number, count: number, now: number): LogEntry[] {
  return eventsFor('append', from, count, now, shape).map((text) => {
    const v = validateEvent(JSON.parse(text), TENANT, now, 16, { maxEventBytes: 32_768, maxDepth: 32 });
    if (!v.ok) throw new Error(`bench event rejected: ${v.rejection.message}`);
    return v.entry;
  });
}

/** SqliteLog.append, durable, `measured` events in requests of `batch`, 16 in flight, after `prefill` keys. */
export async function appendPath(work: string, shape: KeyShape, batch: number, prefill: number, measured: number, fsync: Fsync = 'always'): Promise<AppendFigure> {
  const dir = path.join(work, `append-${shape}-${batch}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const log = new SqliteLog({ file: path.join(dir, 'sluice.db'), partitions: 16, fsync, dedupeHorizonMs: 7 * 86_400_000, retentionMs: 0 });
  const now = Date.now();
  try {
    for (let from = 0; from < prefill; from += 20_000) {
      await log.append(entries(shape, from, Math.min(20_000, prefill - from), now));
    }
    log.compactLedger();
    const requests: LogEntry[][] = [];
    for (let from = prefill; from < prefill + measured; from += batch) requests.push(entries(shape, from, Math.min(batch, prefill + measured - from), now));
    let next = 0;
    let appended = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < requests.length) {
          const outcomes = await log.append(requests[next++]!);
          for (const o of outcomes) if (o.status === 'appended') appended++;
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    if (appended !== measured) throw new Error(`append ${shape}: ${appended} of ${measured} appended`);
    return { keys: shape, batch, prefill, eventsPerSecond: measured / seconds };
  } finally {
    await log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
