import { randomUUID } from 'node:crypto';
import { SluiceError } from '../core/errors.js';
import { parseRfc3339 } from '../core/time.js';

/**
 * Silences (pure): label matchers as Alertmanager's (`{name, value, isRegex, isEqual}`), active
 * from `starts_at` to `ends_at`; a recurring silence is active, within those bounds, on its
 * weekdays between `start_time` and `end_time` of the wall clock of `time_zone` (IANA), for
 * planned work ("every Sunday 02:00-04:00 Europe/Paris"). Silenced alerts still show in
 * `GET /v1/alerts`, marked; they do not notify.
 */
export interface Matcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}

export interface Recurrence {
  /** 0 = Sunday … 6 = Saturday. */
  weekdays: number[];
  /** Minutes after local midnight: [start, end); end < start spans midnight. */
  start: number;
  end: number;
  time_zone: string;
}

export interface Silence {
  id: string;
  matchers: Matcher[];
  startsAt: number;
  /** Null: a recurring silence with no end. */
  endsAt: number | null;
  comment: string;
  createdBy: string;
  recurring: Recurrence | null;
}

const DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

function bad(field: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_INVALID_BODY', message, { field });
}

function clockTime(v: unknown, field: string): number {
  const m = typeof v === 'string' ? /^([01]\d|2[0-3]):([0-5]\d)$/.exec(v) : null;
  if (!m) throw bad(field, `"${field}" must be a time of day "HH:MM" (24 h)`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** A silence as `POST /v1/alerts/silences` takes it; `createdBy` is the key that posts it. */
export function parseSilence(body: unknown, createdBy: string, now: number): Silence {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('body', 'a silence must be a JSON object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['matchers', 'starts_at', 'ends_at', 'comment', 'created_by', 'recurring'].includes(k)) throw bad(k, `unknown field "${k}"; a silence has matchers, starts_at, ends_at, comment, created_by, recurring`);
  if (!Array.isArray(o.matchers) || o.matchers.length === 0 || o.matchers.length > 20) throw bad('matchers', '"matchers" must be a list of 1 to 20 {name, value, isRegex, isEqual}');
  const matchers = o.matchers.map((m: unknown, i): Matcher => {
    const x = (m ?? {}) as Record<string, unknown>;
    if (typeof x.name !== 'string' || typeof x.value !== 'string') throw bad(`matchers[${i}]`, `matchers[${i}] needs "name" and "value" strings`);
    const isRegex = x.isRegex === true;
    if (isRegex) {
      try {
        new RegExp(`^(?:${x.value})$`);
      } catch {
        throw bad(`matchers[${i}].value`, `matchers[${i}].value is not a valid regular expression`);
      }
    }
    return { name: x.name, value: x.value, isRegex, isEqual: x.isEqual !== false };
  });
  const time = (v: unknown, field: string): number | null => {
    if (v === undefined || v === null) return null;
    const t = typeof v === 'string' ? parseRfc3339(v) : null;
    if (t === null) throw bad(field, `"${field}" must be an RFC 3339 timestamp`);
    return t;
  };
  let recurring: Recurrence | null = null;
  if (o.recurring !== undefined && o.recurring !== null) {
    const r = o.recurring as Record<string, unknown>;
    const weekdays = r.weekdays ?? DAYS;
    if (!Array.isArray(weekdays) || weekdays.length === 0) throw bad('recurring.weekdays', '"recurring.weekdays" must be a list of day names ("monday"…)');
    const days = weekdays.map((d: unknown) => {
      const i = typeof d === 'string' ? DAYS.findIndex((x) => x.startsWith(d.toLowerCase()) && d.length >= 3) : -1;
      if (i < 0) throw bad('recurring.weekdays', `${JSON.stringify(d)} is not a day: use "monday" … "sunday" (or "mon" … "sun")`);
      return i;
    });
    const zone = r.time_zone ?? 'UTC';
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: zone as string });
    } catch {
      throw bad('recurring.time_zone', `${JSON.stringify(zone)} is not an IANA time zone (e.g. "Europe/Paris")`);
    }
    recurring = { weekdays: [...new Set(days)].sort(), start: clockTime(r.start_time, 'recurring.start_time'), end: clockTime(r.end_time, 'recurring.end_time'), time_zone: zone as string };
  }
  const startsAt = time(o.starts_at, 'starts_at') ?? now;
  const endsAt = time(o.ends_at, 'ends_at');
  if (endsAt === null && !recurring) throw bad('ends_at', '"ends_at" is required (a silence without an end is only allowed for a recurring one)');
  if (endsAt !== null && endsAt <= startsAt) throw bad('ends_at', '"ends_at" must be after "starts_at"');
  if (typeof o.comment !== 'string' || o.comment.length === 0) throw bad('comment', '"comment" is required: say why (a planned migration, a known incident…)');
  return { id: randomUUID(), matchers, startsAt, endsAt, comment: o.comment.slice(0, 2000), createdBy: typeof o.created_by === 'string' ? o.created_by : createdBy, recurring };
}

export function silenceJson(s: Silence, now: number): Record<string, unknown> {
  return {
    id: s.id,
    matchers: s.matchers,
    starts_at: new Date(s.startsAt).toISOString(),
    ends_at: s.endsAt === null ? null : new Date(s.endsAt).toISOString(),
    comment: s.comment,
    created_by: s.createdBy,
    recurring: s.recurring && {
      weekdays: s.recurring.weekdays.map((d) => DAYS[d]),
      start_time: hhmm(s.recurring.start),
      end_time: hhmm(s.recurring.end),
      time_zone: s.recurring.time_zone,
    },
    status: { state: isActive(s, now) ? 'active' : s.endsAt !== null && now >= s.endsAt ? 'expired' : 'pending' },
  };
}

function hhmm(m: number): string {
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

/** The weekday (0 = Sunday) and minute of the day at `at` on the wall clock of `zone`. */
export function localTime(at: number, zone: string): { weekday: number; minute: number } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: zone, weekday: 'long', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  const get = (t: string) => parts.find((p) => p.type === t)!.value;
  return { weekday: DAYS.indexOf(get('weekday').toLowerCase()), minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

export function isActive(s: Silence, now: number): boolean {
  if (now < s.startsAt || (s.endsAt !== null && now >= s.endsAt)) return false;
  if (!s.recurring) return true;
  const { weekday, minute } = localTime(now, s.recurring.time_zone);
  const r = s.recurring;
  if (r.start <= r.end) return r.weekdays.includes(weekday) && minute >= r.start && minute < r.end;
  // Spans midnight: the evening of a listed day, or the morning after it.
  return (r.weekdays.includes(weekday) && minute >= r.start) || (r.weekdays.includes((weekday + 6) % 7) && minute < r.end);
}

export function activeSilences(silences: Silence[], now: number): Silence[] {
  return silences.filter((s) => isActive(s, now));
}

/** Whether every matcher matches the labels (a missing label is the empty string, as in Alertmanager). */
export function matches(matchers: Matcher[], labels: Record<string, string>): boolean {
  return matchers.every((m) => {
    const v = labels[m.name] ?? '';
    const hit = m.isRegex ? new RegExp(`^(?:${m.value})$`).test(v) : v === m.value;
    return hit === m.isEqual;
  });
}
