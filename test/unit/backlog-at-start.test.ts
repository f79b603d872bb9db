import { describe, expect, it } from 'vitest';
import { backlogAtStart } from '../../src/app/backlog-at-start.js';
import { ManualClock } from '../../src/core/clock.js';
import { SluiceError } from '../../src/core/errors.js';

/**
 * An ingest process counts the backlog an earlier one left before it takes requests. The
 * count reads the log, and on NATS a pull timed out under load: the restarted `sluice ingest`
 * then exited with 1 instead of starting (seen in the scale-out suite's kill-9 test). A log
 * that says it is unavailable is asked again with backoff, up to a bound; other errors fail
 * at once. The log here answers as a script says: the retry policy is what is under test.
 */
describe('backlog count at start', () => {
  const unavailable = () => new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', 'a pull from the stream got no answer within 3000 ms (a NATS server is away?); retrying', { retryAfter: 1 });
  const scripted = (failures: number, error: () => Error = unavailable) => {
    let calls = 0;
    return {
      get calls() {
        return calls;
      },
      async backlogByTenant(): Promise<Map<string, number>> {
        if (calls++ < failures) throw error();
        return new Map([['acme', 42]]);
      },
      async positions() {
        return [{ partition: 0, head: 42, committed: 0, oldestUnackedAt: 1, owner: null }];
      },
    };
  };

  it('backlog-at-start.retries-a-log-that-is-unavailable-with-backoff-until-it-answers', async () => {
    const clock = new ManualClock();
    const log = scripted(3);
    const warnings: unknown[] = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (fields: object) => void warnings.push(fields) };
    let result: Awaited<ReturnType<typeof backlogAtStart>> | undefined;
    void backlogAtStart(log, 'workers', { clock, logger, random: () => 0.999 }).then((r) => (result = r));
    await clock.advance(0);
    expect(log.calls).toBe(1);
    // Backoff with full jitter: under 250, 500 and 1,000 ms before the second, third and fourth asks.
    await clock.advance(249);
    expect(log.calls).toBe(2);
    await clock.advance(499);
    expect(log.calls).toBe(3);
    expect(result).toBeUndefined();
    await clock.advance(999);
    expect(log.calls).toBe(4);
    expect(result?.byTenant).toEqual(new Map([['acme', 42]]));
    expect(result?.heads.map((h) => h.head)).toEqual([42]);
    expect(warnings).toHaveLength(3);
  });

  it('backlog-at-start.gives-up-after-its-wait-and-fails-other-errors-at-once', async () => {
    const clock = new ManualClock();
    const never = scripted(Number.POSITIVE_INFINITY);
    const outcome = backlogAtStart(never, 'workers', { clock, waitMs: 10_000, random: () => 0.999 }).then(
      () => 'answered',
      (e: SluiceError) => e.code,
    );
    await clock.advance(20_000);
    expect(await outcome).toBe('SLUICE_ERR_LOG_UNAVAILABLE');
    expect(never.calls).toBeGreaterThan(3);

    const broken = scripted(1, () => new Error('stream not found'));
    await expect(backlogAtStart(broken, 'workers', { clock })).rejects.toThrow('stream not found');
    expect(broken.calls).toBe(1);
  });
});
