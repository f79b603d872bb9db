import { bucketStart, INTERVAL_MS } from '../core/time.js';
import type { Interval, MinuteCount, Tally } from '../core/types.js';

/**
 * The pipeline's history per bucket, as the console's Overview draws it (`GET /v1/signals`).
 *
 * Two kinds of column:
 * - *Exact, per tenant*, from what sluice already keeps per minute: `received`, `rejected`
 *   and `duplicate` from the log's tallies, `accepted` = received − rejected − duplicate,
 *   `stored` from the store (by minute of receipt), `dead_lettered` from the catalog, and
 *   the conservation `gap` = received − (stored + dead_lettered + rejected + duplicate)
 *   for buckets that end before the watermark (null after it: still settling).
 * - *Sampled, for the whole pipeline* (shared infrastructure, as in `/v1/status`), by the
 *   SignalSampler of the process that answers: the worst `freshness_seconds` and
 *   `lag_events` seen in the bucket, and the ingest requests' `ingest_p99_ms` and
 *   `ingest_error_rate` (5xx share). Null where the process sampled nothing (it was not
 *   running then, or it serves no ingest).
 */
export const SIGNAL_COLUMNS = [
  'bucket',
  'received',
  'accepted',
  'rejected',
  'duplicate',
  'stored',
  'dead_lettered',
  'gap',
  'freshness_seconds',
  'lag_events',
  'ingest_p99_ms',
  'ingest_error_rate',
] as const;

/** Minutes of samples kept: seven days (the Overview's longest range); older ones are dropped. */
export const SAMPLED_MINUTES = 7 * 1440;

/**
 * Latency histogram bounds: 0.1 ms × √2^i for i in 0..39 (up to about 74 s), and one
 * bucket past the last. A p99 read from it is the bound of its bucket: at most √2 (41%)
 * above the true value; a p99 past the last bound is reported as that bound (74,146 ms). Fixed log-spaced buckets as in HdrHistogram, coarser, so that a
 * minute costs 42 integers.
 */
const LATENCY_BOUNDS_MS = Array.from({ length: 40 }, (_, i) => 0.1 * Math.SQRT2 ** i);

interface MinuteSample {
  freshnessSeconds: number | null;
  lagEvents: number | null;
  requests: number;
  errors: number;
  latency: Uint32Array | null;
}

/**
 * Keeps per-minute samples in memory, bounded to SAMPLED_MINUTES minutes. Time comes from
 * the caller (the clock is the caller's), so tests drive it without sleeping.
 */
export class SignalSampler {
  private readonly minutes = new Map<number, MinuteSample>();

  private at(now: number): MinuteSample {
    const minute = bucketStart(now, '1m');
    let s = this.minutes.get(minute);
    if (!s) {
      s = { freshnessSeconds: null, lagEvents: null, requests: 0, errors: 0, latency: null };
      this.minutes.set(minute, s);
      // Maps iterate in insertion order: the oldest minutes go first.
      for (const m of this.minutes.keys()) {
        if (this.minutes.size <= SAMPLED_MINUTES && m > minute - SAMPLED_MINUTES * 60_000) break;
        this.minutes.delete(m);
      }
    }
    return s;
  }

  /** A reading of the log's lag (see obs/status.ts lagOf); the minute keeps its worst. */
  sampleLag(now: number, freshnessSeconds: number, lagEvents: number): void {
    const s = this.at(now);
    s.freshnessSeconds = Math.max(s.freshnessSeconds ?? 0, freshnessSeconds);
    s.lagEvents = Math.max(s.lagEvents ?? 0, lagEvents);
  }

  /** One ingest request, answered after `ms` with `status`. */
  observeIngest(now: number, ms: number, status: number): void {
    const s = this.at(now);
    s.requests++;
    if (status >= 500) s.errors++;
    s.latency ??= new Uint32Array(LATENCY_BOUNDS_MS.length + 1);
    // The first bound at or above ms: 0.1·√2^i ≥ ms ⇔ i ≥ 2·log2(ms / 0.1); the loops fix rounding.
    let i = ms <= LATENCY_BOUNDS_MS[0]! ? 0 : Math.min(LATENCY_BOUNDS_MS.length, Math.ceil(2 * Math.log2(ms / 0.1)));
    while (i > 0 && ms <= LATENCY_BOUNDS_MS[i - 1]!) i--;
    while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]!) i++;
    s.latency[i]!++;
  }

  /** Minutes kept (for tests of the bound). */
  get size(): number {
    return this.minutes.size;
  }

  /** The sampled columns of the bucket [from, from + size). */
  bucket(from: number, size: number): { freshnessSeconds: number | null; lagEvents: number | null; p99Ms: number | null; errorRate: number | null } {
    let freshness: number | null = null;
    let lag: number | null = null;
    let requests = 0;
    let errors = 0;
    const hist = new Uint32Array(LATENCY_BOUNDS_MS.length + 1);
    for (let m = from; m < from + size; m += 60_000) {
      const s = this.minutes.get(m);
      if (!s) continue;
      if (s.freshnessSeconds !== null) freshness = Math.max(freshness ?? 0, s.freshnessSeconds);
      if (s.lagEvents !== null) lag = Math.max(lag ?? 0, s.lagEvents);
      requests += s.requests;
      errors += s.errors;
      if (s.latency) for (let i = 0; i < hist.length; i++) hist[i]! += s.latency[i]!;
    }
    let p99: number | null = null;
    if (requests > 0) {
      const rank = Math.ceil(requests * 0.99);
      let seen = 0;
      for (let i = 0; i < hist.length; i++) {
        seen += hist[i]!;
        if (seen >= rank) {
          p99 = Math.round(LATENCY_BOUNDS_MS[Math.min(i, LATENCY_BOUNDS_MS.length - 1)]! * 100) / 100;
          break;
        }
      }
    }
    return { freshnessSeconds: freshness, lagEvents: lag, p99Ms: p99, errorRate: requests > 0 ? errors / requests : null };
  }
}

export type SignalRow = [string, number, number, number, number, number, number, number | null, number | null, number | null, number | null, number | null];

/**
 * Pure: the rows of one tenant's signals over [from, to) (aligned to `interval`), from the
 * minute tallies, stored and dead-lettered counts (any tenant: filtered here), the sampler,
 * and the watermark (buckets ending after it get a null gap).
 */
export function signalRows(input: {
  tenant: string;
  from: number;
  to: number;
  interval: Interval;
  tallies: readonly Tally[];
  stored: readonly MinuteCount[];
  deadLettered: readonly MinuteCount[];
  sampler: SignalSampler;
  watermark: number;
}): SignalRow[] {
  const size = INTERVAL_MS[input.interval];
  const n = Math.max(0, Math.ceil((input.to - input.from) / size));
  const sums = Array.from({ length: n }, () => ({ received: 0, rejected: 0, duplicate: 0, stored: 0, dead: 0 }));
  const slot = (minute: number) => (minute >= input.from && minute < input.to ? sums[Math.floor((minute - input.from) / size)] : undefined);
  for (const t of input.tallies) {
    if (t.tenant !== input.tenant) continue;
    const s = slot(t.minute);
    if (!s) continue;
    s.received += t.received;
    s.rejected += t.rejected;
    s.duplicate += t.duplicate;
  }
  for (const c of input.stored) if (c.tenant === input.tenant) slot(c.minute) && (slot(c.minute)!.stored += c.n);
  for (const c of input.deadLettered) if (c.tenant === input.tenant) slot(c.minute) && (slot(c.minute)!.dead += c.n);
  return sums.map((s, i) => {
    const start = input.from + i * size;
    const settled = start + size <= input.watermark;
    const sampled = input.sampler.bucket(start, size);
    return [
      new Date(start).toISOString(),
      s.received,
      s.received - s.rejected - s.duplicate,
      s.rejected,
      s.duplicate,
      s.stored,
      s.dead,
      settled ? s.received - (s.stored + s.dead + s.rejected + s.duplicate) : null,
      sampled.freshnessSeconds,
      sampled.lagEvents,
      sampled.p99Ms,
      sampled.errorRate,
    ];
  });
}
