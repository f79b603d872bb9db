import { INTERVAL_MS, iso } from '../core/time.js';
import type { Interval } from '../core/types.js';
import type { Cell } from '../ports/store.js';

/**
 * Every bucket of a timeseries from `from` to `to`, the bucket shown as an RFC 3339 time:
 * the row of `rows` (whose first cell is the bucket's start, epoch ms) where there is one,
 * `empty` after the bucket where nothing was counted.
 */
export function fillBuckets(range: { from: number; to: number; interval: Interval }, rows: readonly Cell[][], empty: readonly Cell[]): Cell[][] {
  const size = INTERVAL_MS[range.interval];
  const byBucket = new Map(rows.map((r) => [r[0] as number, r.slice(1)]));
  const out: Cell[][] = [];
  for (let b = range.from; b < range.to; b += size) out.push([iso(b), ...(byBucket.get(b) ?? empty)]);
  return out;
}
