import { INTERVAL_MS, iso } from '../core/time.js';
import type { CountQuery, CountRow } from '../core/types.js';

/** A plain count timeseries (from the per-minute counts), shaped with every bucket of the range present. */

/** Every bucket from `from` to `to`, zero where nothing was counted. */
export function fillBuckets(q: CountQuery, rows: readonly CountRow[]): [string, number][] {
  const size = INTERVAL_MS[q.interval];
  const byBucket = new Map(rows.map((r) => [r.bucket, r.count]));
  const out: [string, number][] = [];
  for (let b = q.from; b < q.to; b += size) out.push([iso(b), byBucket.get(b) ?? 0]);
  return out;
}
