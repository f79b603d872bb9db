import type { Interval } from './types.js';

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Value of the `n` ASCII digits of `s` at `at`, or -1 when one of them is not a digit. */
function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** What an RFC 3339 timestamp needs, for error messages. */
export const RFC3339_REQUIRED = 'RFC 3339 with Z or ±hh:mm, e.g. 2026-11-29T16:00:27.029Z';

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant, "chrono-compatible low-level date algorithms"). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/**
 * Parses an RFC 3339 date-time (§5.6: `date-fullyear "-" date-month "-" date-mday "T"
 * time-hour ":" time-minute ":" time-second [time-secfrac] time-offset`) into epoch ms, or
 * null when it is not one or names a date that does not exist. The whole grammar: `t`/`z`
 * in either case (and a space for `T`, §5.6's note), any number of fractional digits (kept
 * to the millisecond, truncated), every offset from -23:59 to +23:59, years 0000–9999, and
 * the leap second `:60` (§5.7), which is kept as the last millisecond before it and flagged
 * by `leapSecond` (epoch ms have no leap seconds). Hand-written because it runs once per
 * ingested event: a regex plus Date.parse costs several times more.
 */
export function parseRfc3339Detailed(s: string): { ms: number; leapSecond: boolean } | null {
  if (s.length < 20) return null;
  const y = digits(s, 0, 4);
  const mo = digits(s, 5, 2);
  const d = digits(s, 8, 2);
  const h = digits(s, 11, 2);
  const mi = digits(s, 14, 2);
  const se = digits(s, 17, 2);
  const sep = s[10];
  if (s[4] !== '-' || s[7] !== '-' || (sep !== 'T' && sep !== 't' && sep !== ' ') || s[13] !== ':' || s[16] !== ':') return null;
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60) return null;
  const leap = mo === 2 && y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  if (d > DAYS_IN_MONTH[mo - 1]! + (leap ? 1 : 0)) return null;
  let i = 19;
  let ms = 0;
  if (s[i] === '.') {
    const from = ++i;
    while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    const n = i - from;
    if (n < 1) return null;
    ms = digits(s, from, Math.min(3, n)) * 10 ** (3 - Math.min(3, n));
  }
  let offset = 0;
  const z = s[i];
  if ((z === 'Z' || z === 'z') && i + 1 === s.length) offset = 0;
  else if ((z === '+' || z === '-') && i + 6 === s.length && s[i + 3] === ':') {
    const oh = digits(s, i + 1, 2);
    const om = digits(s, i + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return null;
    offset = (z === '+' ? 1 : -1) * (oh * 60 + om) * 60_000;
  } else return null;
  const leapSecond = se === 60;
  const seconds = ((daysFromCivil(y, mo, d) * 24 + h) * 60 + mi) * 60 + (leapSecond ? 59 : se);
  return { ms: seconds * 1000 + (leapSecond ? 999 : ms) - offset, leapSecond };
}

/** parseRfc3339Detailed's instant alone (a leap second as the millisecond before it). */
export function parseRfc3339(s: string): number | null {
  return parseRfc3339Detailed(s)?.ms ?? null;
}

export const INTERVAL_MS: Record<Interval, number> = {
  '1m': 60_000,
  '5m': 300_000,
  '15m': 900_000,
  '1h': 3_600_000,
  '6h': 21_600_000,
  '1d': 86_400_000,
};

export const INTERVALS = Object.keys(INTERVAL_MS) as Interval[];

export function isInterval(s: unknown): s is Interval {
  return typeof s === 'string' && Object.hasOwn(INTERVAL_MS, s);
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
