import { systemClock, type Clock, type TimerHandle } from '../../core/clock.js';
import { coerceError } from '../../core/errors.js';
import type { Logger } from '../../core/service.js';
import type { SqliteLog } from './log.js';

/**
 * Log retention for the embedded log, on the thread that appends (SQLite has one writer).
 * A pass deletes a bounded batch per partition and costs a few milliseconds; passes run every
 * `periodMs`, and back to back while a partition has more past its retention than a pass
 * deletes, each followed by a pause nine times as long as the pass took. So a log fed faster
 * than one batch per period still keeps to its retention, and requests keep nine tenths of the
 * thread while it catches up. Returns a function that stops it.
 */
export function startRetention(log: SqliteLog, logger: Logger, opts: { periodMs?: number; batch?: number; clock?: Clock } = {}): () => void {
  const { periodMs = 10_000, batch = 1_000, clock = systemClock } = opts;
  let timer: TimerHandle;
  const pass = (): void => {
    let next = periodMs;
    try {
      const started = performance.now();
      if (log.prune(batch).behind) next = Math.max(1, 9 * (performance.now() - started));
    } catch (e: unknown) {
      logger.warn({ err: coerceError(e).message }, 'log retention pass failed; will retry');
    }
    timer = clock.setTimeout(pass, next);
  };
  timer = clock.setTimeout(pass, periodMs);
  return () => clock.clearTimeout(timer);
}
