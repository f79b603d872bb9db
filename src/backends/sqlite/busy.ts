import type Database from 'better-sqlite3';

/**
 * Waiting for SQLite's write lock without blocking the event loop.
 *
 * SQLite lets one connection write at a time; a connection that finds the lock taken waits
 * inside the call, up to its busy timeout (`BUSY_WAIT_MS`, set by openDatabase), and the
 * thread waits with it. On the thread that answers requests that froze every request for as
 * long as another connection (the workers' lease upkeep, the catalog, another process) held the
 * lock, and a holder on the same thread could never finish. So a group commit waits at most
 * `APPEND_BUSY_MS` inside the call, and on SQLITE_BUSY the log schedules the same group again
 * after `busyBackoff(attempt)`, with the event loop free meanwhile, until `BUSY_WAIT_MS` have
 * passed since the first attempt; then it fails as a busy timeout did. The key ledger's
 * background steps, on the same thread, wait as little and are simply tried again later.
 * (The workers' lease upkeep and acks run on the store thread, off the request path, and keep
 * the connection's busy timeout.)
 *
 * These are wall-clock bounds on a real lock held by another connection, measured as SQLite
 * measures its own busy timeout, not times of the pipeline's, so they take no injected clock.
 */

/** The connection's busy timeout, and the whole wait of an append for the lock (ms). */
export const BUSY_WAIT_MS = 5_000;

/** What one attempt of a group commit waits for the lock inside the call (ms). */
export const APPEND_BUSY_MS = 20;

/** Whether `e` is SQLite's "database is locked" (SQLITE_BUSY or one of its extended codes). */
export function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** The pause before attempt `attempt` (1, 2, …) of a group commit that found the lock taken: 5 ms doubling to 200 ms. */
export function busyBackoff(attempt: number): number {
  return Math.min(200, 5 * 2 ** Math.max(0, attempt - 1));
}

/** Runs `fn` with the connection's busy timeout at `ms`, and `BUSY_WAIT_MS` again after it. */
export function withBusyTimeout<T>(db: Database.Database, ms: number, fn: () => T): T {
  db.pragma(`busy_timeout = ${ms}`);
  try {
    return fn();
  } finally {
    db.pragma(`busy_timeout = ${BUSY_WAIT_MS}`);
  }
}
