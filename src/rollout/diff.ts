import type { DeadLetter, LogRecord } from '../core/types.js';
import type { Processed } from '../worker/pipeline.js';

/**
 * The per-event diff of compare (the dual-write): for the same records, what the active
 * version and the candidate made of each one. An event is
 *
 * - identical: both stored it with the same type, key, time, properties and context, or both
 *   dead-lettered it for the same reason;
 * - changed: both stored it, with different fields (`fields` lists their JSON paths);
 * - dropped: the active version stored it and the candidate neither stored nor dead-lettered it;
 * - dead_lettered: the active version stored it and the candidate dead-lettered it
 *   (or the other way round: `active` then shows the dead letter).
 *
 * Samples are bounded (`limit` per kind), first come first kept, so a diff never grows with
 * the traffic.
 */
export type DiffKind = 'identical' | 'changed' | 'dropped' | 'dead_lettered';

/** What one version made of an event: a row, a dead letter, or nothing. */
export type Output = { stored: StoredFields } | { dead_letter: { reason: string; message: string } } | { held: true } | null;

export interface StoredFields {
  type: string;
  key: string;
  ts: number;
  properties: unknown;
  context: unknown;
}

export interface DiffSample {
  kind: Exclude<DiffKind, 'identical'>;
  key: string;
  idempotency_key: string;
  active: Output;
  candidate: Output;
  /** JSON paths of the fields that differ ("properties.plan"). */
  fields: string[];
}

export interface DiffSummary {
  compared: number;
  identical: number;
  changed: number;
  dropped: number;
  dead_lettered: number;
  samples: DiffSample[];
}

/** The counts of a diff, without its samples. */
export type DiffCounts = Pick<DiffSummary, 'compared' | 'identical' | 'changed' | 'dropped' | 'dead_lettered'>;

export const EMPTY_DIFF: DiffSummary = { compared: 0, identical: 0, changed: 0, dropped: 0, dead_lettered: 0, samples: [] };

/** The share of compared events that were not identical; 0 when nothing was compared. */
export function diffRate(d: DiffCounts): number {
  return d.compared === 0 ? 0 : (d.changed + d.dropped + d.dead_lettered) / d.compared;
}

function stored(r: LogRecord): StoredFields {
  return { type: r.type, key: r.key, ts: r.ts, properties: parseJson(r.properties), context: parseJson(r.context) };
}

function parseJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

const idOf = (r: LogRecord): string => `${r.partition}:${r.offset}`;

/** A stored output keeps its record: fields are parsed only when the two records differ. */
type Kept = Output | { record: LogRecord };

function outputs(p: Processed): Map<string, Kept> {
  const m = new Map<string, Kept>();
  for (const r of p.live) m.set(idOf(r), { record: r });
  for (const d of p.dead) m.set(idOf(d.record), deadOf(d));
  for (const h of p.held) m.set(idOf(h.record), { held: true });
  return m;
}

function same(a: LogRecord, b: LogRecord): boolean {
  return a === b || (a.type === b.type && a.key === b.key && a.ts === b.ts && a.properties === b.properties && a.context === b.context);
}

function shown(k: Kept | null): Output {
  return k !== null && 'record' in k ? { stored: stored(k.record) } : k;
}

function deadOf(d: DeadLetter): Output {
  return { dead_letter: { reason: d.reason, message: d.message } };
}

/** JSON paths where `a` and `b` differ (objects by key, everything else by value). */
export function changedFields(a: unknown, b: unknown, at = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const out: string[] = [];
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const p = at === '' ? k : `${at}.${k}`;
      if (!(k in a) || !(k in b)) out.push(p);
      else out.push(...changedFields(a[k], b[k], p));
    }
    return out;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
}

/**
 * Diffs the active and candidate results of one batch (`records`: the records both ran on).
 * Held records (a paused tenant) are not compared: neither version decided anything for them.
 */
export function diffBatch(records: readonly LogRecord[], active: Processed, candidate: Processed, into: DiffSummary, limit: number): DiffSummary {
  const a = outputs(active);
  const c = outputs(candidate);
  const out: DiffSummary = { ...into, samples: [...into.samples] };
  const perKind = new Map<string, number>();
  for (const s of out.samples) perKind.set(s.kind, (perKind.get(s.kind) ?? 0) + 1);
  for (const r of records) {
    const ak = a.get(idOf(r)) ?? null;
    const ck = c.get(idOf(r)) ?? null;
    if ((ak && 'held' in ak) || (ck && 'held' in ck)) continue;
    out.compared++;
    // The common case, both stored alike, is decided without parsing a field.
    if (ak && 'record' in ak && ck && 'record' in ck && same(ak.record, ck.record)) {
      out.identical++;
      continue;
    }
    const ao = shown(ak);
    const co = shown(ck);
    let kind: DiffKind;
    let fields: string[] = [];
    if (ao && 'stored' in ao && co && 'stored' in co) {
      fields = changedFields(ao.stored, co.stored);
      kind = fields.length === 0 ? 'identical' : 'changed';
    } else if (ao && 'dead_letter' in ao && co && 'dead_letter' in co) {
      kind = ao.dead_letter.reason === co.dead_letter.reason ? 'identical' : 'changed';
      if (kind === 'changed') fields = ['dead_letter.reason'];
    } else if (co && 'dead_letter' in co) kind = 'dead_lettered';
    else if (ao && 'dead_letter' in ao) kind = 'dead_lettered';
    else if (co === null && ao !== null) kind = 'dropped';
    else if (ao === null && co === null) kind = 'identical';
    else {
      // The candidate stored what the active version dropped: its output changed.
      kind = 'changed';
      fields = ['*'];
    }
    out[kind]++;
    if (kind !== 'identical' && (perKind.get(kind) ?? 0) < limit) {
      perKind.set(kind, (perKind.get(kind) ?? 0) + 1);
      out.samples.push({ kind, key: r.key, idempotency_key: r.idempotencyKey, active: ao, candidate: co, fields });
    }
  }
  return out;
}
