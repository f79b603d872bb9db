import { randomUUID } from 'node:crypto';
import { RE2JS } from 're2js';
import { SluiceError } from '../core/errors.js';
import { parseRfc3339 } from '../core/time.js';

/**
 * Silences (pure): label matchers as Alertmanager's (`{name, value, isRegex, isEqual}`), active
 * from `starts_at` to `ends_at`; a recurring silence is active, within those bounds, on its
 * weekdays between `start_time` and `end_time` of the wall clock of `time_zone` (IANA), for
 * planned work ("every Sunday 02:00-04:00 Europe/Paris"). Silenced alerts still show in
 * `GET /v1/alerts`, marked; they do not notify.
 *
 * A regex matcher (`isRegex: true`) is anchored (`^(?:value)$`, as Alertmanager's) and runs on
 * RE2's linear-time engine (re2js), never on JavaScript's backtracking one: the labels it is
 * matched against are chosen by tenants (rule names), and `GET /v1/alerts` matches them on the
 * thread that answers every tenant. A pattern RE2 cannot run (backreferences, lookaround) is
 * refused when the silence is posted.
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

const MATCHER_KEYS = ['name', 'value', 'isRegex', 'isEqual'];
/** A label name, as Prometheus's (the labels of an alert are: alertname, tenant, severity and the rule's own). */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,62}$/;

function parseMatcher(m: unknown, at: string): Matcher {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw bad(at, `${at} must be an object {name, value, isRegex, isEqual}`);
  const x = m as Record<string, unknown>;
  for (const k of Object.keys(x)) if (!MATCHER_KEYS.includes(k)) throw bad(`${at}.${k}`, `unknown field "${k}" in ${at}; a matcher has ${MATCHER_KEYS.join(', ')}`);
  if (typeof x.name !== 'string' || x.name.length === 0) throw bad(`${at}.name`, `${at}.name must be a label name (e.g. "alertname", "severity", "tenant")`);
  if (!LABEL_NAME.test(x.name)) throw bad(`${at}.name`, `${at}.name ${JSON.stringify(x.name.slice(0, 80))} is not a label name: letters, digits and "_", not starting with a digit`);
  if (typeof x.value !== 'string') throw bad(`${at}.value`, `${at}.value must be a string`);
  if (x.value.length > 1000) throw bad(`${at}.value`, `${at}.value is at most 1000 characters`);
  for (const k of ['isRegex', 'isEqual']) {
    if (x[k] !== undefined && typeof x[k] !== 'boolean') throw bad(`${at}.${k}`, `${at}.${k} must be true or false (JSON booleans, not ${JSON.stringify(x[k])})`);
  }
  const isRegex = x.isRegex === true;
  if (isRegex) {
    try {
      // The pattern as written first, so that RE2's reason quotes what the user typed (not the anchored wrapper).
      RE2JS.compile(x.value);
      RE2JS.compile(anchored(x.value));
    } catch (e: unknown) {
      const reason = (e as Error).message.replace(/^error parsing regexp: /, '');
      // Backreferences (\1, \k<name>) and lookaround ((?=, (?!, (?<=, (?<!) are what RE2 leaves out on purpose.
      const unsupported = /\\[1-9k]|\(\?<?[=!]/.test(x.value) ? '; RE2 has no backreferences or lookaround: rewrite the pattern without them' : '';
      throw bad(`${at}.value`, `${at}.value ${JSON.stringify(x.value.slice(0, 200))} is not a regular expression sluice can run (RE2, linear time): ${reason}${unsupported}`);
    }
  }
  return { name: x.name, value: x.value, isRegex, isEqual: x.isEqual !== false };
}

/** A silence as `POST /v1/alerts/silences` takes it; `createdBy` is the key that posts it. */
export function parseSilence(body: unknown, createdBy: string, now: number): Silence {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('body', 'a silence must be a JSON object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['matchers', 'starts_at', 'ends_at', 'comment', 'created_by', 'recurring'].includes(k)) throw bad(k, `unknown field "${k}"; a silence has matchers, starts_at, ends_at, comment, created_by, recurring`);
  if (!Array.isArray(o.matchers) || o.matchers.length === 0 || o.matchers.length > 20) throw bad('matchers', '"matchers" must be a list of 1 to 20 {name, value, isRegex, isEqual}');
  const matchers = o.matchers.map((m: unknown, i): Matcher => parseMatcher(m, `matchers[${i}]`));
  // As Alertmanager: a silence whose every matcher matches the empty string would match every alert.
  if (matchers.every((m) => matches([m], {}))) {
    throw bad('matchers', 'at least one matcher must not match the empty string: these would silence every alert (e.g. add alertname="checkout-errors")');
  }
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

/**
 * How long an expired silence stays listed (ms): 120 h, Alertmanager's default
 * `--data.retention`. Expiring a silence ends it now and keeps it, as Alertmanager does, so
 * that the list shows what was silenced and until when; past this it is deleted.
 */
export const SILENCE_RETENTION_MS = 120 * 3_600_000;

/** The silence ended now (a pending one starts and ends now); unchanged when it has ended already. */
export function expireSilence(s: Silence, now: number): Silence {
  if (s.endsAt !== null && s.endsAt <= now) return s;
  return { ...s, startsAt: Math.min(s.startsAt, now), endsAt: now };
}

/** Expired longer than SILENCE_RETENTION_MS ago: to delete. */
export function pastRetention(s: Silence, now: number): boolean {
  return s.endsAt !== null && now - s.endsAt > SILENCE_RETENTION_MS;
}

export function activeSilences(silences: Silence[], now: number): Silence[] {
  return silences.filter((s) => isActive(s, now));
}

function anchored(value: string): string {
  return `^(?:${value})$`;
}

/** Compiled matcher patterns (RE2), by pattern; null: RE2 cannot run it (a silence stored before patterns were checked). */
const compiled = new Map<string, RE2JS | null>();
const MAX_COMPILED = 1_000;

/** A regex matcher's pattern on RE2 (linear time in the label's length, whatever the pattern). */
export function matcherRegExp(value: string): RE2JS | null {
  let re = compiled.get(value);
  if (re === undefined) {
    try {
      re = RE2JS.compile(anchored(value));
    } catch {
      re = null;
    }
    if (compiled.size >= MAX_COMPILED) compiled.clear();
    compiled.set(value, re);
  }
  return re;
}

/** Whether every matcher matches the labels (a missing label is the empty string, as in Alertmanager). */
export function matches(matchers: Matcher[], labels: Record<string, string>): boolean {
  return matchers.every((m) => {
    const v = labels[m.name] ?? '';
    // A pattern RE2 cannot run matches nothing (only silences stored before the check have one).
    const hit = m.isRegex ? (matcherRegExp(m.value)?.test(v) ?? false) : v === m.value;
    return hit === m.isEqual;
  });
}
