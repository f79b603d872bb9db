import { deriveIdempotencyKey, partitionOf } from './hash.js';
import { isWellFormed } from './text.js';
import { parseRfc3339Detailed, RFC3339_REQUIRED } from './time.js';
import type { Fault, LogEntry, Origin } from './types.js';

/**
 * Validation of one event as a producer sends it. Pure: no I/O, no clock (the receive time
 * is passed in). The result is either a log entry or a rejection naming the field (as a
 * JSON pointer relative to the event) and the reason.
 */

export interface EventLimits {
  /** Largest event, in bytes of its JSON encoding. */
  maxEventBytes: number;
  /** Deepest nesting of objects and arrays inside `properties` and `context`. */
  maxDepth: number;
}

/** The time policy: how event times are corrected and how late or early they may be. */
export interface TimePolicy {
  /** An event older than this (event time before received_at minus the window) is dead-lettered as too_late; 0 = no limit. */
  lateWindowMs: number;
  /** An event time further in the future than this is clamped to received_at, and flagged in `context.sluice`. */
  futureToleranceMs: number;
}

export const NO_TIME_POLICY: TimePolicy = { lateWindowMs: 0, futureToleranceMs: Number.MAX_SAFE_INTEGER };

export interface Rejection {
  code: 'invalid_event' | 'missing_field' | 'invalid_field' | 'unknown_field' | 'event_too_large';
  message: string;
  /** JSON pointer to the field at fault, relative to the event ("" for the event itself). */
  path: string;
}

export type Validated =
  | { ok: true; entry: LogEntry; bytes: number; properties: Record<string, unknown> }
  | { ok: false; rejection: Rejection };

const KNOWN_FIELDS = new Set(['type', 'key', 'ts', 'idempotency_key', 'properties', 'context']);
// Only `__proto__` can change an object's prototype (through assignment or a spread into a
// literal); `constructor` and `prototype` are ordinary names, kept like any other.
const FORBIDDEN_KEYS = new Set(['__proto__']);
// Control characters (C0, DEL) are refused in identifiers: they break logs, terminals and CSV.
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_TYPE = 200;
const MAX_KEY = 512;

function reject(code: Rejection['code'], path: string, message: string): Validated {
  return { ok: false, rejection: { code, path, message } };
}

function checkIdentifier(value: unknown, field: string, max: number, required: boolean): Validated | null {
  if (value === undefined || value === null) {
    return required ? reject('missing_field', `/${field}`, `"${field}" is required and must be a non-empty string`) : null;
  }
  if (typeof value !== 'string') return reject('invalid_field', `/${field}`, `"${field}" must be a string, got ${typeName(value)}`);
  if (required && value.length === 0) return reject('invalid_field', `/${field}`, `"${field}" must not be empty`);
  if (value.length > max) return reject('invalid_field', `/${field}`, `"${field}" is ${value.length} characters; the limit is ${max}`);
  if (CONTROL.test(value)) return reject('invalid_field', `/${field}`, `"${field}" contains a control character`);
  if (!isWellFormed(value)) return reject('invalid_field', `/${field}`, `"${field}" holds a lone UTF-16 surrogate, which is not Unicode text`);
  return null;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Escapes one key for a JSON pointer (RFC 6901). */
export function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Walks a JSON value, refusing prototype-polluting keys, NUL characters and nesting beyond
 * `maxDepth`. Returns the offence with its path relative to `value` (built only on the way
 * out of a failure, since this runs on every key of every event), or null. Bounded
 * recursion: it stops at maxDepth.
 */
function inspect(value: unknown, depth: number, maxDepth: number): Rejection | null {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return { code: 'invalid_field', path: '', message: 'strings must not contain NUL characters' };
    return isWellFormed(value) ? null : { code: 'invalid_field', path: '', message: 'the string holds a lone UTF-16 surrogate, which is not Unicode text' };
  }
  if (value === null || typeof value !== 'object') return null;
  if (depth >= maxDepth) return { code: 'invalid_field', path: '', message: `nesting deeper than ${maxDepth} levels` };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const r = inspect(value[i], depth + 1, maxDepth);
      if (r) return { ...r, path: `/${i}${r.path}` };
    }
    return null;
  }
  for (const k of Object.keys(value)) {
    let r: Rejection | null;
    if (FORBIDDEN_KEYS.has(k)) r = { code: 'invalid_field', path: '', message: `the key "${k}" is not allowed` };
    else if (k.includes('\u0000')) r = { code: 'invalid_field', path: '', message: 'keys must not contain NUL characters' };
    else if (!isWellFormed(k)) r = { code: 'invalid_field', path: '', message: 'the key holds a lone UTF-16 surrogate, which is not Unicode text' };
    else r = inspect((value as Record<string, unknown>)[k], depth + 1, maxDepth);
    if (r) return { ...r, path: `/${escapePointer(k)}${r.path}` };
  }
  return null;
}

/** A JSON object (not null, not an array): what events, properties and context must be. */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkObject(value: unknown, field: string, limits: EventLimits): Validated | null {
  if (value === undefined) return null;
  if (!isJsonObject(value)) {
    return reject('invalid_field', `/${field}`, `"${field}" must be an object, got ${typeName(value)}`);
  }
  const r = inspect(value, 1, limits.maxDepth);
  return r ? { ok: false, rejection: { ...r, path: `/${field}${r.path}` } } : null;
}

function sluiceOf(ctx: Record<string, unknown> | undefined): Record<string, unknown> {
  const s = ctx?.sluice;
  return isJsonObject(s) ? s : {};
}

/**
 * `sentAt` is the producer's clock when it sent the batch: when given, the event time is
 * corrected for the producer's clock skew, `ts = receivedAt − (sentAt − ts)`.
 */
export function validateEvent(
  raw: unknown,
  tenant: string,
  receivedAt: number,
  partitions: number,
  limits: EventLimits,
  origin: Origin = 'live',
  time: TimePolicy = NO_TIME_POLICY,
  sentAt?: number,
): Validated {
  if (!isJsonObject(raw)) {
    return reject('invalid_event', '', `an event must be a JSON object, got ${typeName(raw)}`);
  }
  const e = raw;
  for (const k of Object.keys(e)) {
    if (!KNOWN_FIELDS.has(k)) {
      return reject('unknown_field', `/${escapePointer(k)}`, `unknown field "${k}"; an event has type, key, ts, idempotency_key, properties and context`);
    }
  }
  const bad =
    checkIdentifier(e.type, 'type', MAX_TYPE, true) ??
    checkIdentifier(e.key, 'key', MAX_KEY, false) ??
    checkIdentifier(e.idempotency_key, 'idempotency_key', MAX_KEY, false) ??
    checkObject(e.properties, 'properties', limits) ??
    checkObject(e.context, 'context', limits);
  if (bad) return bad;

  let ts: number | null = null;
  let leapSecond = false;
  if (e.ts !== undefined && e.ts !== null) {
    if (typeof e.ts !== 'string') return reject('invalid_field', '/ts', `"ts" must be an RFC 3339 string (${RFC3339_REQUIRED}), got ${typeName(e.ts)}`);
    const parsed = parseRfc3339Detailed(e.ts);
    if (parsed === null) return reject('invalid_field', '/ts', `"ts" is not an RFC 3339 timestamp (${RFC3339_REQUIRED}): got a string of ${e.ts.length} characters`);
    ts = parsed.ms;
    leapSecond = parsed.leapSecond;
  }

  const type = e.type as string;
  const key = (e.key as string | undefined) ?? '';
  const props = (e.properties as Record<string, unknown> | undefined) ?? {};
  // The key is derived from the time as the producer sent it: a retry carries a new sent_at.
  const producerTs = ts;
  if (ts !== null && sentAt !== undefined) ts = receivedAt - (sentAt - ts);
  let fault: Fault | undefined;
  let ctx = e.context as Record<string, unknown> | undefined;
  // A leap second (23:59:60) is kept as the last millisecond before it, flagged.
  if (leapSecond) ctx = { ...ctx, sluice: { ...sluiceOf(ctx), ts_leap_second: e.ts } };
  if (ts !== null && ts > receivedAt + time.futureToleranceMs) {
    ctx = { ...ctx, sluice: { ...sluiceOf(ctx), ts_clamped_from: new Date(ts).toISOString() } };
    ts = receivedAt;
  } else if (ts !== null && time.lateWindowMs > 0 && ts < receivedAt - time.lateWindowMs) {
    fault = {
      reason: 'too_late',
      path: '/ts',
      message: `the event is ${Math.round((receivedAt - ts) / 3_600_000)} h old; events older than ${Math.round(time.lateWindowMs / 3_600_000)} h are not counted`,
    };
  }
  const properties = e.properties === undefined ? '{}' : JSON.stringify(props);
  const context = ctx === undefined ? '{}' : JSON.stringify(ctx);
  const bytes = properties.length + context.length + type.length + key.length + 64;
  // String length counts UTF-16 units; the byte count is only needed when it could matter.
  const exact = bytes * 3 > limits.maxEventBytes ? Buffer.byteLength(properties) + Buffer.byteLength(context) + Buffer.byteLength(type) + Buffer.byteLength(key) + 64 : bytes;
  if (exact > limits.maxEventBytes) {
    return reject('event_too_large', '', `the event is ${exact} bytes; the limit is ${limits.maxEventBytes}`);
  }
  const eventTime = ts ?? receivedAt;
  const idempotencyKey = (e.idempotency_key as string | undefined) || deriveIdempotencyKey(tenant, type, key, producerTs ?? receivedAt, props);
  return {
    ok: true,
    bytes: exact,
    properties: props,
    entry: {
      ...(fault ? { fault } : {}),
      tenant,
      type,
      key,
      idempotencyKey,
      ts: eventTime,
      receivedAt,
      partition: partitionOf(tenant, key, partitions),
      origin,
      properties,
      context,
    },
  };
}

/**
 * `event` with `context.sluice[flag] = value` (a copy), when it is an object whose context
 * is an object or absent; anything else is returned as it is, for the validator to refuse.
 */
export function flagContext(event: unknown, flag: string, value: unknown): unknown {
  if (!isJsonObject(event)) return event;
  const ctx = event.context;
  if (ctx !== undefined && !isJsonObject(ctx)) return event;
  const sluice = isJsonObject(ctx?.sluice) ? ctx.sluice : {};
  return { ...event, context: { ...ctx, sluice: { ...sluice, [flag]: value } } };
}
