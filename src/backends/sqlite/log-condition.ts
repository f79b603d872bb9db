import fs from 'node:fs';
import path from 'node:path';
import { SluiceError } from '../../core/errors.js';
import type { SqliteDatabase } from './database.js';

/**
 * What the embedded log records of its own condition in its `meta` table, beside its records:
 * that it must not be served from again (Log.markUnusable), and, after appends failed, whether
 * it can write again (readiness asks, so that it comes back when space does, not only at the
 * next append, which a balancer routing on /readyz would never send).
 */

/**
 * After appends failed for a full disk, readiness comes back once this much is free beside
 * the log's file (bytes): twice the largest request body once decompressed (10 MiB), so that
 * the next batch fits with its WAL pages.
 */
export const FREE_BYTES_TO_RESUME = 32 * 1024 * 1024;

function setMeta(db: SqliteDatabase, k: string, v: string): void {
  db.prepare('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v').run(k, v);
}

/** Records, durably, that the log in `db` must not be served from again, and why. */
export function markUnusable(db: SqliteDatabase, reason: string, now: number): void {
  setMeta(db, 'unusable', JSON.stringify({ at: now, reason }));
}

/** Throws SLUICE_ERR_DATA_DAMAGED when the log in `db` (at `file`) was marked unusable. */
export function refuseIfUnusable(db: SqliteDatabase, file: string): void {
  const row = db.prepare("SELECT v FROM meta WHERE k = 'unusable'").get() as { v: string } | undefined;
  if (!row) return;
  const { at, reason } = JSON.parse(row.v) as { at: number; reason: string };
  throw new SluiceError('SLUICE_ERR_DATA_DAMAGED', `${file} was found at ${new Date(at).toISOString()} not to be the log its store was filled from, and is not served from again: ${reason}`, { field: 'dataDir' });
}

/**
 * Whether appends that failed with `failure` could succeed now: after a full disk, at least
 * FREE_BYTES_TO_RESUME free beside `file` (a few bytes may be free while a batch does not
 * fit); then one small durable write (a row of `meta`) must succeed.
 */
export async function canWriteAgain(db: SqliteDatabase, file: string, failure: string, now: number): Promise<boolean> {
  if (/out of disk space/.test(failure)) {
    const free = await fs.promises.statfs(path.dirname(file)).then((f) => f.bavail * f.bsize, () => 0);
    if (free < FREE_BYTES_TO_RESUME) return false;
  }
  try {
    setMeta(db, 'write_probe', String(now));
    return true;
  } catch {
    return false;
  }
}
