import { retryUntil } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { coerceError, SluiceError } from '../core/errors.js';
import type { Logger } from '../core/service.js';
import type { Log, PartitionPosition } from '../ports/log.js';

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
 *
 * `byTenant` is the count; `heads`, the group's positions read just after it (never below what
 * was counted), say up to where it reaches: a process whose events are processed elsewhere
 * releases the count once the group has committed up to them (ingest/committed-backlog.ts).
 */
export function backlogAtStart(
  log: Pick<Log, 'backlogByTenant' | 'positions'>,
  group: string,
  opts: { clock: Clock; logger?: Logger; waitMs?: number; random?: () => number },
): Promise<{ byTenant: Map<string, number>; heads: PartitionPosition[] }> {
  const count = async () => {
    const byTenant = await log.backlogByTenant(group);
    return { byTenant, heads: byTenant.size > 0 ? await log.positions(group) : [] };
  };
  return retryUntil(count, {
    deadline: opts.clock.now() + (opts.waitMs ?? BACKLOG_COUNT_WAIT_MS),
    baseMs: 250,
    capMs: 5_000,
    retryable: (e) => e instanceof SluiceError && e.code === 'SLUICE_ERR_LOG_UNAVAILABLE',
    clock: opts.clock,
    ...(opts.random ? { random: opts.random } : {}),
    onRetry: (e, attempt) => opts.logger?.warn({ err: coerceError(e).message, attempt }, 'counting the backlog an earlier process left: the log did not answer; retrying'),
  });
}
