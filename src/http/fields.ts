import { SluiceError } from '../core/errors.js';
import { parseRfc3339 } from '../core/time.js';

/**
 * Reading the fields of an operator's request (a JSON body or a query string) with errors
 * that name the field. Unknown fields are errors too: a typo must not silently widen a
 * replay or a discard.
 */
export type Fields = Record<string, unknown>;

export function objectBody(body: unknown, allowed: readonly string[]): Fields {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'the body must be a JSON object', { field: 'body' });
  }
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `unknown field "${k}"; known fields: ${allowed.join(', ')}`, { field: k });
  }
  return body as Fields;
}

export function optString(f: Fields, name: string, max = 512): string | undefined {
  const v = f[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || v.length > max) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"${name}" must be a string of at most ${max} characters`, { field: name });
  return v;
}

export function optBool(f: Fields, name: string): boolean | undefined {
  const v = f[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"${name}" must be true or false`, { field: name });
}

export function optInt(f: Fields, name: string, min: number, max: number): number | undefined {
  const v = f[name];
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"${name}" must be an integer from ${min} to ${max}`, { field: name });
  }
  return n;
}

/** An RFC 3339 time, or a time relative to now: "-24h", "-30m", "-7d", "now". */
export function optTime(f: Fields, name: string, now: number): number | undefined {
  const v = optString(f, name, 64);
  if (v === undefined) return undefined;
  if (v === 'now') return now;
  const rel = /^-(\d{1,6})([smhd])$/.exec(v);
  if (rel) return now - Number(rel[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const t = parseRfc3339(v);
  if (t === null) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"${name}" must be an RFC 3339 time or relative like "-24h"`, { field: name });
  return t;
}

export function optStrings(f: Fields, name: string, maxItems: number): string[] | undefined {
  const v = f[name];
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? v.split(',') : v;
  if (!Array.isArray(list) || list.length > maxItems || list.some((x) => typeof x !== 'string' || x.length === 0 || x.length > 512)) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"${name}" must be a list of at most ${maxItems} non-empty strings`, { field: name });
  }
  return list as string[];
}
