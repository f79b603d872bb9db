import { describe, expect, it } from 'vitest';
import { SeriesCache, type SeriesRow } from '../../src/alerts/series-cache.js';

const M = 60_000;
const T0 = Date.UTC(2026, 10, 20, 12, 0);

/**
 * A kept series' window sums (prefix sums) equal adding its minutes one by one, through full
 * reads, reads of what arrived since (minutes before, inside and past what it keeps), longer
 * spans and trimming.
 */
describe('alerts: window sums of kept series', () => {
  it('series-cache.window-sums-equal-adding-minutes-one-by-one', async () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let now = T0;
    const cache = new SeriesCache({ now: () => now, refreshMs: 3_600_000 });
    const rows = (from: number, n: number): SeriesRow[] => Array.from({ length: n }, () => [from + Math.floor(random() * 400) * M, 1 + Math.floor(random() * 5), null]);
    let checked = 0;
    for (let pass = 0; pass < 40; pass++) {
      now += M;
      const span = (pass < 20 ? 120 : 300) * M;
      const s = await cache.series('t', 'q', now - span, now, now, null, async (from) => rows(from - 30 * M, 50));
      for (let k = 0; k < 30; k++) {
        const a = now - span - 10 * M + Math.floor(random() * (span / M + 40)) * M;
        const b = a + Math.floor(random() * 200) * M;
        let one = 0;
        for (let m = a; m < b; m += M) one += s.count(m);
        expect(s.sum(a, b)).toBe(one);
        if (one > 0) checked++;
      }
    }
    expect(checked).toBeGreaterThan(100);
  });
});
