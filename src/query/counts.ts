import { SluiceError } from '../core/errors.js';
import { bucketStart, INTERVAL_MS, isInterval, iso, parseQueryTime } from '../core/time.js';
import type { CountQuery, CountRow } from '../core/types.js';

/**
 * The timeseries query: `{ event?, from, to, interval, measures: ["count"] }`, validated
 * into a CountQuery (pure), and the answer shaped with every bucket of the range present.
 */

const FIELDS = new Set(['event', 'from', 'to', 'interval', 'measures']);
const MEASURES = new Set(['count']);

function bad(field: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_INVALID_QUERY', message, { field });
}

export function parseCountQuery(body: unknown, tenant: string, now: number, maxBuckets: number): CountQuery {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('body', 'the query must be a JSON object');
  const q = body as Record<string, unknown>;
  for (const k of Object.keys(q)) if (!FIELDS.has(k)) throw bad(k, `unknown field "${k}"; a query has event, from, to, interval and measures`);
  if (q.event !== undefined && q.event !== null && (typeof q.event !== 'string' || q.event.length === 0 || q.event.length > 200)) {
    throw bad('event', '"event" must be a non-empty event type (a string)');
  }
  const time = (field: 'from' | 'to', fallback: string): number => {
    const v = q[field] ?? fallback;
    const ms = typeof v === 'string' ? parseQueryTime(v, now) : null;
    if (ms === null) throw bad(field, `"${field}" must be an RFC 3339 timestamp, "now" or a relative time like "-24h"`);
    return ms;
  };
  const from = time('from', '-24h');
  const to = time('to', 'now');
  if (to <= from) throw bad('to', '"to" must be after "from"');
  const interval = q.interval ?? '1h';
  if (!isInterval(interval)) throw bad('interval', '"interval" must be one of "1m", "1h", "1d"');
  if (q.measures !== undefined) {
    if (!Array.isArray(q.measures) || q.measures.length === 0) throw bad('measures', '"measures" must be a non-empty array');
    for (const m of q.measures) {
      if (typeof m !== 'string' || !MEASURES.has(m)) throw bad('measures', `measure ${JSON.stringify(m)} is not supported; supported: count`);
    }
  }
  const start = bucketStart(from, interval);
  const buckets = Math.ceil((to - start) / INTERVAL_MS[interval]);
  if (buckets > maxBuckets) {
    throw new SluiceError('SLUICE_ERR_QUERY_TOO_LARGE', `the query spans ${buckets} buckets; the limit is ${maxBuckets}: use a larger interval or a shorter range`, {
      field: 'interval',
    });
  }
  return { tenant, type: (q.event as string | undefined | null) ?? null, from: start, to, interval };
}

/** Every bucket from `from` to `to`, zero where nothing was counted. */
export function fillBuckets(q: CountQuery, rows: readonly CountRow[]): [string, number][] {
  const size = INTERVAL_MS[q.interval];
  const byBucket = new Map(rows.map((r) => [r.bucket, r.count]));
  const out: [string, number][] = [];
  for (let b = q.from; b < q.to; b += size) out.push([iso(b), byBucket.get(b) ?? 0]);
  return out;
}
