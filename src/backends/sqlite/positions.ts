import Database from 'better-sqlite3';
import { chmodIfOwned, damagedFileError, immediate, type Fsync, type SqliteDatabase } from './database.js';

/**
 * The consumer groups' positions in the embedded log: per group and partition, the committed
 * offset (Kafka's `__consumer_offsets`) and the delivery marker of the range in flight (see
 * backends/delivery.ts). They live in a SQLite file of their own beside the log's
 * (`sluice.db-offsets`), not in the log's file, because every read and every ack writes them:
 * in one file, each of those writes took the write lock that appends need, and held it for an
 * fsync, so ingest and the workers waited for each other on every batch.
 *
 * What the split changes in the crash reasoning (docs/ARCHITECTURE.md, "The embedded log"):
 * - A read checks its lease in the log's file, then writes its marker here, in two steps. A
 *   lease lost between them is the case of a lease lost just after a read: the new owner
 *   finds the marker and takes the range as suspect, which only shrinks its window.
 * - An ack checks its lease, then moves the offset here with max(): it follows the store's
 *   commit under the lease's token, so the records it covers are applied either way.
 * - This file is not fsynced on every commit (SQLite's `synchronous = NORMAL` in WAL mode,
 *   `OFF` when `log.fsync` is `off`): a commit survives the process's crash (kill -9), and
 *   the last ones may be lost to a power loss or an OS crash. What then comes back older is
 *   harmless: a committed offset never runs ahead of the store (acks follow commits) and the
 *   store skips what it has applied, so an older offset only means redeliveries that change
 *   nothing; a lost delivery marker only means a range is not taken as suspect; and a
 *   position older than the oldest record retention kept moves up to it (SqliteLog.read).
 *   An fsync per read and per ack was measured at 1.2 of 8 s of the workers' thread.
 *
 * Leases, memberships, heads and records stay in the log's file.
 */
export function positionsFile(logFile: string): string {
  return `${logFile}-offsets`;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS offsets (grp TEXT NOT NULL, p INTEGER NOT NULL, committed INTEGER NOT NULL, PRIMARY KEY (grp, p)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS deliveries (
    grp TEXT NOT NULL, p INTEGER NOT NULL, from_o INTEGER NOT NULL, to_o INTEGER NOT NULL, win INTEGER NOT NULL, attempts INTEGER NOT NULL,
    PRIMARY KEY (grp, p)
  ) WITHOUT ROWID;
`;

/** See above: never an fsync per commit. */
const SYNCHRONOUS: Record<Fsync, string> = { always: 'NORMAL', normal: 'NORMAL', off: 'OFF' };

/**
 * Opens (creating if needed) the positions file, and moves into it the positions that an
 * earlier version kept in the log's own file (`log`): offsets merged with max(), markers kept
 * where this file has none, then deleted from the log's file. Each step is idempotent, so a
 * crash between them (or two processes opening at once) leaves nothing wrong.
 */
export function openPositions(file: string, log: SqliteDatabase, fsync: Fsync): SqliteDatabase {
  const db = new Database(file);
  try {
    chmodIfOwned(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${SYNCHRONOUS[fsync]}`);
    db.pragma('busy_timeout = 5000');
    db.exec(SCHEMA);
    moveFromLog(db, log);
  } catch (e: unknown) {
    db.close();
    throw damagedFileError(
      e,
      file,
      `It holds only the workers' positions: stop sluice, move it aside (with its -wal file), and start again; the workers then re-read from the oldest record the log still holds and the store skips what it has applied`,
    );
  }
  return db;
}

function moveFromLog(db: SqliteDatabase, log: SqliteDatabase): void {
  const offsets = log.prepare('SELECT grp, p, committed FROM offsets').all() as { grp: string; p: number; committed: number }[];
  const deliveries = log.prepare('SELECT grp, p, from_o, to_o, win, attempts FROM deliveries').all() as { grp: string; p: number; from_o: number; to_o: number; win: number; attempts: number }[];
  if (offsets.length === 0 && deliveries.length === 0) return;
  immediate(db, () => {
    const offset = db.prepare(
      `INSERT INTO offsets (grp, p, committed) VALUES (?, ?, ?)
       ON CONFLICT (grp, p) DO UPDATE SET committed = max(committed, excluded.committed)`,
    );
    for (const o of offsets) offset.run(o.grp, o.p, o.committed);
    const delivery = db.prepare('INSERT OR IGNORE INTO deliveries (grp, p, from_o, to_o, win, attempts) VALUES (?, ?, ?, ?, ?, ?)');
    for (const d of deliveries) delivery.run(d.grp, d.p, d.from_o, d.to_o, d.win, d.attempts);
  });
  immediate(log, () => {
    log.prepare('DELETE FROM offsets').run();
    log.prepare('DELETE FROM deliveries').run();
  });
}
