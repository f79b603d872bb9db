import { backoffDelay } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { SluiceError } from '../core/errors.js';
import type { Logger } from '../core/service.js';
import type { Log } from '../ports/log.js';

/** How long a start waits for the log to answer the backlog count (ms) before it fails. */
export const BACKLOG_COUNT_WAIT_MS = 60_000;

/**
 * The per-tenant backlog (events appended, not yet acknowledged by `group`) an earlier process
 * left, counted before an ingest process takes requests so that it counts against each
 * tenant's cap. The count reads the backlog (on NATS, a scan of the stream), and a pull can
 * time out while the machine is loaded or a NATS server restarts: a log that answers
 * SLUICE_ERR_LOG_UNAVAILABLE is asked again, with exponential backoff and full jitter (250 ms
 * doubling to 5 s), for up to `waitMs`; any other error, or the same one after `waitMs`, fails
 * the start as before. Each retry is logged.
 */
export async function backlogAtStart(
  log: Pick<Log, 'backlogByTenant'>,
  group: string,
  opts: { clock: Clock; logger?: Logger; waitMs?: number; random?: () => number },
): Promise<Map<string, number>> {
  const deadline = opts.clock.now() + (opts.waitMs ?? BACKLOG_COUNT_WAIT_MS);
  for (let attempt = 0; ; attempt++) {
    try {
      return await log.backlogByTenant(group);
    } catch (e: unknown) {
      const unavailable = e instanceof SluiceError && e.code === 'SLUICE_ERR_LOG_UNAVAILABLE';
      if (!unavailable || opts.clock.now() >= deadline) throw e;
      opts.logger?.warn({ err: e.message, attempt: attempt + 1 }, 'counting the backlog an earlier process left: the log did not answer; retrying');
      await opts.clock.sleep(Math.max(1, backoffDelay(attempt, 250, 5_000, opts.random)));
    }
  }
}
