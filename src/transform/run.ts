import { createHmac } from 'node:crypto';
import { canonicalJson } from '../core/hash.js';
import { compileDocument, type CastTarget, type CompiledStep } from './document.js';
import { ExpressionError, MAX_VALUE_SIZE, type CompileOptions, type ExpressionEvent } from './expression.js';
import { eventBudget, weigh } from './iteration-cost.js';

/**
 * Running a tenant's pipeline over one event. Steps run in order; each may change the event
 * (cast, set, rename, remove, redact), end it (drop, dead_letter) or fail on it (a cast that
 * cannot cast, an expression error): a failure dead-letters the event with reason
 * `transform_failed`, the step's position and kind, and the message. Pure: no I/O, no clock.
 */
export interface TransformResult {
  outcome: 'stored' | 'dropped' | 'dead_lettered';
  /** The event as it leaves the pipeline; null unless stored. */
  output: ExpressionEvent | null;
  /** For dead_lettered: the dead_letter step's reason, or `transform_failed`; for dropped, `dropped` (the reason its discarded dead letter is recorded with). */
  reason?: string;
  /** For dead_lettered and dropped: the deciding step's 0-based position. */
  step?: number;
  message?: string;
  /**
   * Dotted paths the steps changed, in the order first changed; empty (not built) when the
   * caller asked for `maps` only (see Transform.run).
   */
  changed: string[];
  /** The event maps the steps changed, as bits: PROPERTIES_CHANGED, CONTEXT_CHANGED. */
  maps: number;
}

/** Bits of TransformResult.maps. */
export const PROPERTIES_CHANGED = 1;
export const CONTEXT_CHANGED = 2;

/** A compiled pipeline: compile once per version, run per event. */
export interface Transform {
  readonly steps: readonly CompiledStep[];
  /**
   * The event maps the steps read or write (their fields and their expressions). A caller may
   * pass an empty object for a map not named here, and keep that map's text as it was.
   */
  readonly reads: ReadonlySet<'properties' | 'context'>;
  /**
   * `salt`: the tenant's redaction salt (see `hashValue`). Never throws. `owned`: the caller
   * gives up `event` (freshly parsed), so the steps change it in place instead of a copy.
   * `paths`: build `changed` (true by default); a caller that needs only which maps changed
   * (`maps`) passes false and saves the list's upkeep on every event.
   */
  run(event: ExpressionEvent, salt: string, owned?: boolean, paths?: boolean): TransformResult;
}

/** Compiles a pipeline document (throws PipelineError, see document.ts). */
export function compileTransform(doc: unknown, options: CompileOptions = {}): Transform {
  const steps = compileDocument(doc, options);
  const hashes = new HashMemo();
  return { steps, reads: mapsOf(steps), run: (event, salt, owned, paths) => runSteps(steps, event, salt, owned, hashes, paths) };
}

/** A stored version that no longer compiles: it dead-letters every event with `message` (transform_failed). */
export function failingTransform(message: string): Transform {
  return { steps: [], reads: new Set(), run: () => ({ outcome: 'dead_lettered', output: null, reason: 'transform_failed', message, changed: [], maps: 0 }) };
}

/** The event maps named by the steps' fields and expressions. */
function mapsOf(steps: readonly CompiledStep[]): Set<'properties' | 'context'> {
  const out = new Set<'properties' | 'context'>();
  const field = (path: readonly string[]) => out.add(path[0] as 'properties' | 'context');
  const expr = (e: { reads: ReadonlySet<'properties' | 'context'> } | null) => e?.reads.forEach((m) => out.add(m));
  for (const step of steps) {
    expr(step.when);
    switch (step.kind) {
      case 'cast':
      case 'set':
        field(step.field);
        if (step.kind === 'set') expr(step.value);
        break;
      case 'rename':
        field(step.from);
        field(step.to);
        break;
      case 'remove':
      case 'redact':
        step.fields.forEach(field);
        break;
      case 'drop':
      case 'dead_letter':
        expr(step.condition);
    }
  }
  return out;
}

/**
 * Redaction hashes already computed, by salt and canonical value: the same e-mail address or
 * user id comes back event after event, and an HMAC costs microseconds. Bounded: when full
 * it starts again empty (a miss only costs the HMAC).
 */
class HashMemo {
  static readonly MAX = 4_096;
  private salt = '';
  private readonly hashes = new Map<string, string>();

  /** Strings (the commonest redacted values) by the string itself: no canonical text to make on a hit. */
  private readonly strings = new Map<string, string>();

  hash(value: unknown, salt: string): string {
    if (salt !== this.salt) {
      this.hashes.clear();
      this.strings.clear();
      this.salt = salt;
    }
    const memo = typeof value === 'string' ? this.strings : this.hashes;
    const key = typeof value === 'string' ? value : canonicalJson(value);
    let h = memo.get(key);
    if (h === undefined) {
      if (memo.size >= HashMemo.MAX) memo.clear();
      h = hashValue(value, salt);
      memo.set(key, h);
    }
    return h;
  }
}

/** A step's field as written (`properties.amount`), joined once per compiled path. */
const dotted = new WeakMap<readonly string[], string>();
function dottedPath(path: readonly string[]): string {
  let p = dotted.get(path);
  if (p === undefined) dotted.set(path, (p = path.join('.')));
  return p;
}

/** Thrown by a step on one event. */
class StepFailure extends Error {}

/** `changed` when the caller did not ask for it (never written to). */
const NO_PATHS = Object.freeze([]) as unknown as string[];

/**
 * Records that the steps changed `path`: its map's bit, returned with `maps` added, and (when
 * `changed` is being built) the dotted path, once. A function of the module, not a closure
 * per event.
 */
function mark(maps: number, changed: string[] | null, path: readonly string[]): number {
  if (changed) {
    const p = dottedPath(path);
    if (!changed.includes(p)) changed.push(p);
  }
  return maps | (path[0] === 'properties' ? PROPERTIES_CHANGED : CONTEXT_CHANGED);
}

export function runSteps(steps: readonly CompiledStep[], input: ExpressionEvent, salt: string, owned = false, hashes?: HashMemo, paths = true): TransformResult {
  const event: ExpressionEvent = owned ? input : structuredClone(input);
  const list: string[] | null = paths ? [] : null;
  const changed = list ?? NO_PATHS;
  let maps = 0;
  // What the steps' comprehensions may spend on this event, all together (iteration-cost.ts).
  const budget = eventBudget();
  for (const step of steps) {
    try {
      if (step.types && !step.types.has(event.type)) continue;
      if (step.when && step.when(event, budget) !== true) continue;
      switch (step.kind) {
        case 'cast': {
          const value = read(event, step.field);
          if (value === MISSING || value === null) break;
          const cast = castValue(value, step.to);
          if (!Object.is(cast, value)) {
            write(event, step.field, cast);
            maps = mark(maps, list, step.field);
          }
          break;
        }
        case 'set': {
          const value = step.value(event, budget);
          const before = read(event, step.field);
          write(event, step.field, value);
          if (before === MISSING || !sameJson(before, value)) maps = mark(maps, list, step.field);
          break;
        }
        case 'rename': {
          const value = read(event, step.from);
          if (value === MISSING) break;
          remove(event, step.from);
          write(event, step.to, value);
          maps = mark(maps, list, step.from);
          maps = mark(maps, list, step.to);
          break;
        }
        case 'remove':
          for (const f of step.fields) if (remove(event, f)) maps = mark(maps, list, f);
          break;
        case 'redact':
          for (const f of step.fields) {
            const value = read(event, f);
            if (value === MISSING || value === null) continue;
            write(event, f, step.how === 'mask' ? maskValue(value) : hashes ? hashes.hash(value, salt) : hashValue(value, salt));
            maps = mark(maps, list, f);
          }
          break;
        case 'drop':
          if (step.condition(event, budget) === true) return { outcome: 'dropped', output: null, reason: 'dropped', step: step.position, message: `dropped by step ${step.position} (drop)`, changed, maps };
          break;
        case 'dead_letter':
          if (step.condition(event, budget) === true) {
            return { outcome: 'dead_lettered', output: null, reason: step.reason, step: step.position, message: `dead-lettered by step ${step.position} (dead_letter)`, changed, maps };
          }
          break;
      }
    } catch (e: unknown) {
      const message = e instanceof StepFailure || e instanceof ExpressionError ? e.message : `unexpected: ${String(e)}`;
      return { outcome: 'dead_lettered', output: null, reason: 'transform_failed', step: step.position, message: `step ${step.position} (${step.kind}): ${message}`, changed, maps };
    }
  }
  // Each value a step writes is bounded (MAX_VALUE_SIZE); so is what they add up to: 100 steps
  // of 262,144 characters made one 657-byte test event 26 MB.
  if (maps !== 0) {
    const size = weigh(event.properties, MAX_VALUE_SIZE + 1, 1) + weigh(event.context, MAX_VALUE_SIZE + 1, 1);
    if (size > MAX_VALUE_SIZE) {
      const last = steps[steps.length - 1]!.position;
      return { outcome: 'dead_lettered', output: null, reason: 'transform_failed', step: last, message: `the steps made the event larger than ${MAX_VALUE_SIZE.toLocaleString('en-US')} characters and items; an event holds at most that after its steps`, changed, maps };
    }
  }
  return { outcome: 'stored', output: event, changed, maps };
}

/**
 * Casts one JSON value (units: a number cast to a timestamp is epoch milliseconds, the
 * unit of JavaScript's Date; a timestamp is an ISO 8601 string in UTC with milliseconds).
 * Throws StepFailure saying why a value cannot be cast.
 */
export function castValue(v: unknown, to: CastTarget): unknown {
  switch (to) {
    case 'number': {
      if (typeof v === 'number') return v;
      if (typeof v === 'string' && v.trim() !== '') {
        const n = Number(v.trim());
        if (Number.isFinite(n)) return n;
      }
      return castFailure(v, to);
    }
    case 'integer': {
      if (typeof v === 'number') return Number.isSafeInteger(v) ? v : castFailure(v, to);
      if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) {
        const n = Number(v.trim());
        if (Number.isSafeInteger(n)) return n;
      }
      return castFailure(v, to);
    }
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'boolean') return String(v);
      return castFailure(v, to);
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (v === 1 || v === 0) return v === 1;
      if (typeof v === 'string') {
        const s = v.trim().toLowerCase();
        if (s === 'true' || s === '1') return true;
        if (s === 'false' || s === '0') return false;
      }
      return castFailure(v, to);
    case 'timestamp': {
      if (typeof v === 'number' && Number.isFinite(v)) return new Date(v).toISOString();
      // ISO 8601 / RFC 3339 only: Date.parse accepts many other spellings, locale-dependent.
      if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(v.trim())) {
        const t = Date.parse(v.trim());
        if (Number.isFinite(t)) return new Date(t).toISOString();
      }
      return castFailure(v, to);
    }
  }
}

function castFailure(v: unknown, to: CastTarget): never {
  // The value's kind, never the value: dead letters and logs name the field, not the payload.
  const what = typeof v === 'string' ? `a string of ${v.length} character${v.length === 1 ? '' : 's'}` : v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
  throw new StepFailure(`cannot cast ${what} to ${to}`);
}

/** Whether two JSON values are equal (primitives directly; objects and arrays by canonical text). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return Object.is(a, b) || (a === 0 && b === 0);
  return canonicalJson(a) === canonicalJson(b);
}

/**
 * Redaction by hash: HMAC-SHA256 keyed by the tenant's salt over the value's canonical JSON,
 * as 64 hex digits. Stable within a tenant (joins and counts by the hashed field still work),
 * different across tenants, and not reversible by hashing guesses without the salt.
 */
export function hashValue(v: unknown, salt: string): string {
  return hmacHex(canonicalJson(v), salt);
}

function hmacHex(text: string, salt: string): string {
  return createHmac('sha256', salt).update(text).digest('hex');
}

/**
 * Redaction by mask: a string keeps its last four characters when it has at least eight
 * (the convention for card numbers, PCI DSS 3.4), every other character becomes `*`; any
 * other value becomes `"****"`.
 */
export function maskValue(v: unknown): string {
  if (typeof v !== 'string') return '****';
  const chars = [...v];
  const keep = chars.length >= 8 ? 4 : 0;
  return '*'.repeat(chars.length - keep) + chars.slice(chars.length - keep).join('');
}

type Json = Record<string, unknown>;

/** What `read` answers for a path that is not there (a value of its own: `undefined` is not JSON, but a sentinel is clearer). */
const MISSING: unique symbol = Symbol('missing');

/**
 * The value at `path` (the first `depth` segments; all by default), or MISSING. Allocates
 * nothing: it runs several times per event and step.
 */
function read(event: ExpressionEvent, path: readonly string[], depth = path.length): unknown {
  let cur: unknown = event;
  for (let i = 0; i < depth; i++) {
    const seg = path[i]!;
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, seg)) return MISSING;
    cur = (cur as Json)[seg];
  }
  return cur;
}

function write(event: ExpressionEvent, path: readonly string[], value: unknown): void {
  let cur = event as unknown as Json;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    const next = Object.hasOwn(cur, seg) ? cur[seg] : undefined;
    if (next === undefined) cur[seg] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new StepFailure(`${path.join('.')}: ${seg} is not an object`);
    cur = cur[seg] as Json;
  }
  // A plain assignment: compileDocument refuses `__proto__`, `prototype` and `constructor` as
  // segments, so no setter of Object.prototype can be reached.
  cur[path[path.length - 1]!] = value;
}

function remove(event: ExpressionEvent, path: readonly string[]): boolean {
  const obj = read(event, path, path.length - 1);
  const last = path[path.length - 1]!;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj) || !Object.hasOwn(obj, last)) return false;
  delete (obj as Json)[last];
  return true;
}
