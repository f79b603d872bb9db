import { describe, expect, it } from 'vitest';
import { periodic, Services } from '../../src/core/service.js';
import { ManualClock } from '../../src/core/clock.js';

describe('clock', () => {
  it('clock.manual-runs-due-timers-in-order-at-their-own-instant', async () => {
    const clock = new ManualClock(1_000);
    const seen: [string, number][] = [];
    clock.setTimeout(() => seen.push(['b', clock.now()]), 200);
    clock.setTimeout(() => seen.push(['a', clock.now()]), 100);
    const c = clock.setTimeout(() => seen.push(['cancelled', clock.now()]), 150);
    clock.clearTimeout(c);
    await clock.advance(150);
    expect(seen).toEqual([['a', 1_100]]);
    expect(clock.now()).toBe(1_150);
    await clock.advance(100);
    expect(seen).toEqual([['a', 1_100], ['b', 1_200]]);
    expect(clock.timers).toBe(0);
  });

  it('clock.manual-sleep-resolves-when-advanced-and-rejects-on-abort', async () => {
    const clock = new ManualClock(0);
    let woke = false;
    const p = clock.sleep(1_000).then(() => (woke = true));
    await clock.advance(999);
    expect(woke).toBe(false);
    await clock.advance(1);
    await p;
    expect(woke).toBe(true);
    const abort = new AbortController();
    const q = clock.sleep(1_000, abort.signal);
    abort.abort(new Error('stop'));
    await expect(q).rejects.toThrow('stop');
    expect(clock.timers).toBe(0);
  });

  it('service.periodic-runs-every-interval-without-overlap-and-reports-failures', async () => {
    const clock = new ManualClock(0);
    const runs: number[] = [];
    let fail = false;
    const job = periodic(
      'job',
      1_000,
      () => {
        runs.push(clock.now());
        if (fail) throw new Error('disk full');
      },
      { clock },
    );
    const services = new Services();
    services.add(job);
    await services.start();
    await clock.advance(3_500);
    expect(runs).toEqual([1_000, 2_000, 3_000]);
    fail = true;
    await clock.advance(1_000);
    expect(services.health()).toEqual({ job: { ok: false, detail: 'disk full' } });
    fail = false;
    await clock.advance(1_000);
    expect(job.health()).toEqual({ ok: true });
    await services.stop();
    await clock.advance(10_000);
    expect(runs).toHaveLength(5);
  });
});
