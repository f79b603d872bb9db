import { describe, expect, it } from 'vitest';
import { SAMPLED_MINUTES, SignalSampler, signalRows } from '../../src/obs/signals.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0);
const MIN = 60_000;

describe('signals', () => {
  it('sampler.keeps-the-worst-lag-per-minute-and-a-p99-within-its-bucket', () => {
    const s = new SignalSampler();
    s.sampleLag(T0 + 1_000, 2, 100);
    s.sampleLag(T0 + 11_000, 5, 40);
    s.sampleLag(T0 + MIN, 1, 0);
    for (let i = 0; i < 990; i++) s.observeIngest(T0 + i, 1, 202);
    for (let i = 0; i < 10; i++) s.observeIngest(T0 + MIN + i, 400, 503);
    const first = s.bucket(T0, MIN);
    expect(first).toMatchObject({ freshnessSeconds: 5, lagEvents: 100, errorRate: 0 });
    // p99 of 1 ms lies in the bucket (0.8, 1.13]: reported as its upper bound.
    expect(first.p99Ms).toBeGreaterThanOrEqual(1);
    expect(first.p99Ms).toBeLessThanOrEqual(1.42);
    const both = s.bucket(T0, 2 * MIN);
    expect(both.errorRate).toBeCloseTo(10 / 1000);
    // 1% of the requests took 400 ms: the 99th percentile is still among the fast ones.
    expect(both.p99Ms).toBeLessThanOrEqual(1.42);
    expect(s.bucket(T0 + 5 * MIN, MIN)).toEqual({ freshnessSeconds: null, lagEvents: null, p99Ms: null, errorRate: null });
  });

  it('sampler.puts-each-latency-in-the-first-bucket-bound-at-or-above-it', () => {
    for (const ms of [0.01, 0.1, 0.1001, 0.5, 1, 7.3, 100, 4_999, 50_000, 74_000]) {
      const s = new SignalSampler();
      s.observeIngest(T0, ms, 202);
      const bound = s.bucket(T0, MIN).p99Ms!;
      // Bounds are reported to 0.01 ms.
      expect(bound + 0.005).toBeGreaterThanOrEqual(ms);
      if (ms > 0.1) expect(bound / Math.SQRT2).toBeLessThan(ms + 0.005);
    }
    // Past the last bound (about 74 s): reported as that bound, a number JSON can carry.
    const s = new SignalSampler();
    s.observeIngest(T0, 1e6, 202);
    expect(s.bucket(T0, MIN).p99Ms).toBe(74_145.52);
  });

  it('sampler.is-bounded-to-seven-days-of-minutes', () => {
    const s = new SignalSampler();
    for (let m = 0; m < SAMPLED_MINUTES + 500; m++) s.sampleLag(T0 + m * MIN, m, m);
    expect(s.size).toBe(SAMPLED_MINUTES);
    expect(s.bucket(T0, MIN).lagEvents).toBeNull();
    expect(s.bucket(T0 + (SAMPLED_MINUTES + 499) * MIN, MIN).lagEvents).toBe(SAMPLED_MINUTES + 499);
  });

  it('rows.sum-one-tenants-minutes-into-buckets-and-leave-unsettled-gaps-null', () => {
    const rows = signalRows({
      tenant: 'a',
      from: T0,
      to: T0 + 10 * MIN,
      interval: '5m',
      tallies: [
        { tenant: 'a', minute: T0, received: 10, rejected: 1, duplicate: 2 },
        { tenant: 'a', minute: T0 + 4 * MIN, received: 5, rejected: 0, duplicate: 0 },
        { tenant: 'b', minute: T0, received: 99, rejected: 0, duplicate: 0 },
        { tenant: 'a', minute: T0 + 6 * MIN, received: 3, rejected: 0, duplicate: 0 },
      ],
      stored: [
        { tenant: 'a', minute: T0, n: 6 },
        { tenant: 'a', minute: T0 + 4 * MIN, n: 5 },
        { tenant: 'b', minute: T0, n: 99 },
        { tenant: 'a', minute: T0 + 6 * MIN, n: 1 },
      ],
      deadLettered: [{ tenant: 'a', minute: T0, n: 1 }],
      sampler: new SignalSampler(),
      watermark: T0 + 7 * MIN,
    });
    expect(rows).toEqual([
      [new Date(T0).toISOString(), 15, 12, 1, 2, 11, 1, 0, null, null, null, null],
      [new Date(T0 + 5 * MIN).toISOString(), 3, 3, 0, 0, 1, 0, null, null, null, null, null],
    ]);
  });
});
