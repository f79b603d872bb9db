import type { Interval } from './types.js';

// RFC 3339 date-time: a full date, a time, optional fraction, and a zone (Z or ±hh:mm).
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses an RFC 3339 timestamp into epoch ms, or returns null when it is not one. */
export function parseRfc3339(s: string): number | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  const [, y, mo, d, h, mi, se] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(se) > 60) {
    return null;
  }
  const ms = Date.parse(s.replace(' ', 'T'));
  if (!Number.isFinite(ms)) return null;
  // Date.parse rolls 2026-02-31 over into March; a date that does not exist is refused.
  const check = new Date(Date.UTC(Number(y), month - 1, day));
  if (check.getUTCDate() !== day) return null;
  return ms;
}

export const INTERVAL_MS: Record<Interval, number> = { '1m': 60_000, '1h': 3_600_000, '1d': 86_400_000 };

export function isInterval(s: unknown): s is Interval {
  return s === '1m' || s === '1h' || s === '1d';
}

/** Start of the bucket (UTC) that contains `ms`. */
export function bucketStart(ms: number, interval: Interval): number {
  const size = INTERVAL_MS[interval];
  return Math.floor(ms / size) * size;
}

const RELATIVE = /^-(\d{1,9})(s|m|h|d|w)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** Parses a query time: an RFC 3339 timestamp, `now`, or a relative time like `-24h`. */
export function parseQueryTime(s: string, now: number): number | null {
  if (s === 'now') return now;
  const rel = RELATIVE.exec(s);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS];
  return parseRfc3339(s);
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
