import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { SluiceError } from '../../src/core/errors.js';
import { Quotas, STALLED_AFTER_MS } from '../../src/ingest/quotas.js';
import type { AppendOutcome } from '../../src/core/types.js';

const appended = (n: number, from = 0): AppendOutcome[] => Array.from({ length: n }, (_, i) => ({ status: 'appended', partition: 0, offset: from + i + 1 }) as AppendOutcome);

function refusal(q: Quotas, tenant: string): SluiceError {
  try {
    q.admit(tenant, undefined, 100);
  } catch (e: unknown) {
    if (e instanceof SluiceError) return e;
    throw e;
  }
  throw new Error('admitted');
}

describe('the backlog cap: Retry-After follows whether the tenant is being processed', () => {
  const open = () => {
    const clock = new ManualClock(1_000_000);
    const q = new Quotas({ defaults: { eventsPerSecond: 0, bytesPerSecond: 0, backlog: 100 }, logBacklog: 0, eventLoopLagMs: 0 }, clock);
    return { clock, q };
  };

  it('while workers process the tenant: 1 s, and the message does not blame them', async () => {
    const { clock, q } = open();
    q.appended('acme', appended(100));
    await clock.advance(STALLED_AFTER_MS * 3);
    q.processed([['acme', 10]]);
    q.appended('acme', appended(10, 100));
    await clock.advance(STALLED_AFTER_MS - 1);
    const e = refusal(q, 'acme');
    expect(e).toMatchObject({ code: 'SLUICE_ERR_QUOTA_EXCEEDED', field: 'backlog', retryAfter: 1 });
    expect(e.message).not.toMatch(/workers/);
    q.close();
  });

  it('nothing processed for the stall bound: a longer Retry-After (5 to 60 s) and where to look', async () => {
    const { clock, q } = open();
    q.appended('acme', appended(100));
    await clock.advance(STALLED_AFTER_MS);
    const first = refusal(q, 'acme');
    expect(first.retryAfter).toBe(5);
    expect(first.message).toMatch(/none has been processed for 10 s: check that workers are running/);
    await clock.advance(60 * 60_000);
    expect(refusal(q, 'acme').retryAfter).toBe(60);
    // Another tenant's stall is not this one's: bravo has room.
    expect(() => q.admit('bravo', undefined, 100)).not.toThrow();
    // Workers back: the next refusal is 1 s again.
    q.processed([['acme', 1]]);
    q.appended('acme', appended(1, 100));
    expect(refusal(q, 'acme').retryAfter).toBe(1);
    q.close();
  });

  it('a backlog inherited at start counts from the start, not from when it was appended', async () => {
    const { clock, q } = open();
    q.inherit(new Map([['acme', 100]]), []);
    expect(refusal(q, 'acme').retryAfter).toBe(1);
    await clock.advance(STALLED_AFTER_MS);
    expect(refusal(q, 'acme').retryAfter).toBe(5);
    q.close();
  });
});
