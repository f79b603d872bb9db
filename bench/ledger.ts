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
  const shapes: KeyShape[] = ['sequential', 'uuid'];
  for (const name of names) {
    // Both key shapes side by side, their batches alternating: drift on a shared machine hits both.
    const dbs = shapes.map((shape) => {
      const dir = path.join(work, `ledger-${name}-${shape}`);
      fs.rmSync(dir, { recursive: true, force: true });
      return { dir, db: openDatabase(path.join(dir, 'ledger.db'), { fsync }) };
    });
    const cs = dbs.map(({ db }) => candidate(name, db));
    for (let s = 0; s < shapes.length; s++) {
      for (let from = 0; from < prefill; from += 20_000) {
        cs[s]!.insert(keysOf(shapes[s]!, from, Math.min(20_000, prefill - from)));
        while (cs[s]!.step());
      }
    }
    const batches = shapes.map((shape) => {
      const bs: string[][] = [];
      for (let from = prefill; from < prefill + measured; from += 1_000) bs.push(keysOf(shape, from, 1_000));
      return bs;
    });
    const ms = [0, 0];
    const fresh = [0, 0];
    for (let i = 0; i < batches[0]!.length; i++) {
      for (let s = 0; s < shapes.length; s++) {
        const t = performance.now();
        fresh[s]! += cs[s]!.insert(batches[s]![i]!);
        cs[s]!.step();
        ms[s]! += performance.now() - t;
      }
    }
    for (let s = 0; s < shapes.length; s++) {
      const t = performance.now();
      while (cs[s]!.step());
      ms[s]! += performance.now() - t;
      if (fresh[s] !== measured) throw new Error(`${name} ${shapes[s]}: ${fresh[s]} of ${measured} keys were new`);
      const us = (ms[s]! * 1000) / measured;
      out.push({ candidate: name, keys: shapes[s]!, prefill, usPerKey: us });
      say(`  ${name.padEnd(15)} ${shapes[s]!.padEnd(10)} after ${prefill.toLocaleString('en-US').padStart(11)} keys: ${us.toFixed(2).padStart(6)} µs/key`);
    }
    for (const { db, dir } of dbs) {
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

/**
 * SqliteLog.append, `measured` events per key shape in requests of `batch`, 16 in flight,
 * after `prefill` keys: one log per shape, rounds of 10,000 events alternating between them so
 * that drift on a shared machine hits both. Background ledger work runs inside the rounds.
 *
 * The prefill writes keys only, through the ledger itself (KeyLedger on the log's file, tails,
 * runs and merges as appends make them), once, and the file is copied for the other shape: the
 * ledger sorts keys by hash, so the shape of the keys already in it changes nothing, and the
 * records of those keys would be pruned by retention long before their keys expire (7 days).
 * Writing 50M records as well took over an hour on this machine.
 */
export async function appendPath(work: string, batch: number, prefill: number, measured: number, fsync: Fsync = 'always', say: (line: string) => void = () => undefined): Promise<AppendFigure[]> {
  const shapes: KeyShape[] = ['sequential', 'uuid'];
  const now = Date.now();
  const dirs = shapes.map((shape) => path.join(work, `append-${shape}-${batch}`));
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  const file = (dir: string): string => path.join(dir, 'sluice.db');
  const open = (dir: string): SqliteLog => new SqliteLog({ file: file(dir), partitions: 16, fsync, dedupeHorizonMs: 7 * 86_400_000, retentionMs: 0 });
  if (prefill > 0) {
    // The log's own schema first, then its ledger filled directly.
    await open(dirs[0]!).close();
    const db = openDatabase(file(dirs[0]!), { fsync: 'off' });
    const ledger = candidate('log-structured', db);
    const started = performance.now();
    for (let from = 0; from < prefill; from += 20_000) {
      ledger.insert(keysOf('uuid', from, Math.min(20_000, prefill - from)));
      while (ledger.step());
      if ((from + 20_000) % 1_000_000 === 0) say(`ledger: ${(from + 20_000).toLocaleString('en-US')} of ${prefill.toLocaleString('en-US')} UUID keys in the ledger (${((from + 20_000) / ((performance.now() - started) / 1000)).toFixed(0)} keys/s)`);
    }
    db.close();
    fs.mkdirSync(dirs[1]!, { recursive: true });
    fs.copyFileSync(file(dirs[0]!), file(dirs[1]!));
  }
  const logs = dirs.map((dir) => ({ dir, log: open(dir) }));
  try {
    // A log reads its ledger back (filters and tails) at its first append after a start: that
    // is the restart's cost, timed and said here, not counted in the appends measured.
    for (const { log } of logs) {
      const t = performance.now();
      await log.append(entries('uuid', prefill + measured + 1, 1, now));
      if (prefill > 0) say(`ledger: read back at the first append after opening, with ${prefill.toLocaleString('en-US')} keys: ${((performance.now() - t) / 1000).toFixed(2)} s`);
    }
    const ms = [0, 0];
    const appended = [0, 0];
    const ROUND = 10_000;
    for (let round = prefill; round < prefill + measured; round += ROUND) {
      for (let s = 0; s < shapes.length; s++) {
        const log = logs[s]!.log;
        const requests: LogEntry[][] = [];
        const end = Math.min(prefill + measured, round + ROUND);
        for (let from = round; from < end; from += batch) requests.push(entries(shapes[s]!, from, Math.min(batch, end - from), now));
        let next = 0;
        const start = performance.now();
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (next < requests.length) {
              const outcomes = await log.append(requests[next++]!);
              for (const o of outcomes) if (o.status === 'appended') appended[s]!++;
            }
          }),
        );
        ms[s]! += performance.now() - start;
      }
    }
    return shapes.map((keys, s) => {
      if (appended[s] !== measured) throw new Error(`append ${keys}: ${appended[s]} of ${measured} appended`);
      return { keys, batch, prefill, eventsPerSecond: measured / (ms[s]! / 1000) };
    });
  } finally {
    for (const { log, dir } of logs) {
      await log.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
