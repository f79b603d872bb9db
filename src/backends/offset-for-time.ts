/**
 * The binary search behind Log.offsetForTime, for logs whose offsets may have gaps (pruned
 * records; NATS sequences shared by every partition): `at(o)` answers the partition's first
 * retained record at offset `o` or later, with its receive time (epoch ms), or null.
 * `first` is the partition's first retained offset (null: none), `last` its newest offset.
 * Answers the earliest offset in [first, last] whose record was received at or after `time`,
 * or null; O(log(last - first)) calls of `at`.
 */
export async function searchOffsetForTime(
  first: number | null,
  last: number,
  time: number,
  at: (offset: number) => Promise<{ o: number; at: number } | null>,
): Promise<number | null> {
  if (first === null) return null;
  let lo = first;
  let hi = last;
  let found: number | null = null;
  while (lo <= hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const r = await at(mid);
    // No record in [mid, hi]: the answer, if any, is below mid.
    if (!r || r.o > hi) hi = mid - 1;
    else if (r.at >= time) {
      found = r.o;
      hi = mid - 1;
    } else lo = r.o + 1;
  }
  return found;
}
