import { SluiceError } from '../core/errors.js';

/**
 * The fields alert rules, receivers and silences are written with, checked one by one: each
 * refusal is a 400 `SLUICE_ERR_INVALID_BODY` naming the field. Durations are Prometheus's
 * (`"30s"`, `"5m"`, `"1h"`, `"30d"`, `"1w"`); label names are Prometheus label names.
 */

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** A refusal of `field` (400, SLUICE_ERR_INVALID_BODY). */
export function bad(field: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_INVALID_BODY', message, { field });
}

const DURATION = /^(\d{1,6})(s|m|h|d|w)$/;
const UNIT = { s: 1_000, m: MINUTE, h: HOUR, d: DAY, w: 7 * DAY } as const;

/** `"30s"`, `"5m"`, `"1h"`, `"30d"`, `"1w"` → ms. */
export function parseDuration(v: unknown, field: string, opts: { min?: number; wholeMinutes?: boolean } = {}): number {
  const m = typeof v === 'string' ? DURATION.exec(v) : null;
  if (!m) throw bad(field, `"${field}" must be a duration like "30s", "5m", "1h" or "30d"`);
  const ms = Number(m[1]) * UNIT[m[2] as keyof typeof UNIT];
  if (opts.wholeMinutes && ms % MINUTE !== 0) throw bad(field, `"${field}" must be whole minutes (alerts are evaluated on per-minute counts)`);
  if (ms < (opts.min ?? 0)) throw bad(field, `"${field}" must be at least ${formatDuration(opts.min ?? 0)}`);
  return ms;
}

/** ms → the shortest exact duration text (`3600000` → `"1h"`). */
export function formatDuration(ms: number): string {
  for (const [u, size] of [['w', UNIT.w], ['d', DAY], ['h', HOUR], ['m', MINUTE]] as const) if (ms >= size && ms % size === 0) return `${ms / size}${u}`;
  return `${Math.round(ms / 1000)}s`;
}

export function object(v: unknown, field: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(field, `"${field}" must be a JSON object`);
  return v as Record<string, unknown>;
}

export function checkKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(where ? `${where}.${k}` : k, `unknown field "${k}"${where ? ` in "${where}"` : ''}; allowed: ${allowed.join(', ')}`);
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,62}$/;
const RESERVED_LABELS = new Set(['alertname', 'tenant', 'severity']);

export function stringMap(v: unknown, field: string, labels: boolean): Record<string, string> {
  if (v === undefined || v === null) return {};
  const o = object(v, field);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) {
    if (labels && !LABEL_NAME.test(k)) throw bad(`${field}.${k}`, `label name "${k}" must be letters, digits and "_" (Prometheus label names)`);
    if (labels && RESERVED_LABELS.has(k)) throw bad(`${field}.${k}`, `"${k}" is set by sluice on every alert; choose another label name`);
    if (typeof val !== 'string' || val.length > 1000) throw bad(`${field}.${k}`, `"${field}.${k}" must be a string of at most 1000 characters`);
    out[k] = val;
  }
  return out;
}
