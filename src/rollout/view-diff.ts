import type { FieldRef, Measure, ViewDef } from '../core/query.js';
import { FieldReader, parseColumn } from '../core/query-eval.js';
import { INTERVAL_MS } from '../core/time.js';
import type { LogRecord } from '../core/types.js';
import { sampleKey, type CellState, type NumberState, type ViewDiff } from '../ports/view-diff.js';

/**
 * The per-view compare of a rollout (the dual-write's "per view and bucket"): for the same
 * batch of records, each of the tenant's views is aggregated in memory from the rows the
 * active version stored and from those the candidate stored, per (bucket, group) cell, as the
 * store would add them to the view (its event type, filters, dimensions and grain, with the
 * query language's semantics: core/query-eval.ts). A cell differs when one of the view's
 * measures differs between the two sides:
 *
 * - count, sum, min, max and avg are computed exactly and compared exactly (both sides add the
 *   same records in the same order, so an unchanged value sums to the same double);
 * - uniq (a HyperLogLog in the store) and pNN (a DDSketch) are compared by their exact inputs:
 *   the set of distinct texts, the multiset of numbers. Equal inputs make equal sketches, so
 *   this is stricter than "within the sketch's error" (1.6% and 1%: backends/sql/views.ts): a
 *   changed input shows as a difference even where the sketch would not show it.
 *
 * Only a batch's cells are held, and only while it is compared: the answer is counts and at
 * most `limit` samples per view (ports/view-diff.ts says how batches add up). Samples show the
 * exact measures; the sketches' inputs are not kept, so a sketch measure appears in a sample
 * only in `differs`.
 */

/** One side's aggregate of a cell: per numeric field (by index) the values' count, sum, least, greatest; distinct texts; quantile inputs. */
interface Acc {
  events: number;
  n: number[];
  sum: number[];
  min: number[];
  max: number[];
  uniq: Set<string>[];
  quantile: number[][];
}

interface Cell {
  bucket: number;
  group: (string | null)[];
  a: Acc | null;
  c: Acc | null;
}

/** A view's fields, each once: the numeric ones (sum, min, max, avg), the uniq ones, the quantile ones. */
interface Plan {
  def: ViewDef;
  size: number;
  numeric: FieldRef[];
  uniq: FieldRef[];
  quantile: FieldRef[];
  cells: Map<string, Cell>;
}

function planOf(def: ViewDef): Plan {
  const fields = (kinds: readonly string[]) => {
    const out = new Map<string, FieldRef>();
    for (const m of def.measures) if (kinds.includes(m.kind) && !out.has(m.field!.name)) out.set(m.field!.name, m.field!);
    return [...out.values()];
  };
  return { def, size: INTERVAL_MS[def.grain], numeric: fields(['sum', 'min', 'max', 'avg']), uniq: fields(['uniq']), quantile: fields(['quantile']), cells: new Map() };
}

function newAcc(p: Plan): Acc {
  const k = p.numeric.length;
  return {
    events: 0,
    n: new Array<number>(k).fill(0),
    sum: new Array<number>(k).fill(0),
    min: new Array<number>(k).fill(Infinity),
    max: new Array<number>(k).fill(-Infinity),
    uniq: p.uniq.map(() => new Set<string>()),
    quantile: p.quantile.map(() => []),
  };
}

/** The reader's record belongs in the view: adds it to its cell on one side. */
function add(p: Plan, r: LogRecord, f: FieldReader, side: 'a' | 'c'): void {
  const d = p.def;
  if (d.event !== null && r.type !== d.event) return;
  for (const filter of d.filters) if (!f.matches(filter)) return;
  const bucket = Math.floor(r.ts / p.size) * p.size;
  // Each text with its length ahead: no two groups share a key, whatever their texts hold.
  let key = String(bucket);
  for (const dim of d.dimensions) {
    const t = f.text(dim);
    key += t === null ? '|-' : `|${t.length}:${t}`;
  }
  let cell = p.cells.get(key);
  if (!cell) p.cells.set(key, (cell = { bucket, group: d.dimensions.map((dim) => f.text(dim)), a: null, c: null }));
  const acc = cell[side] ?? (cell[side] = newAcc(p));
  acc.events++;
  for (let i = 0; i < p.numeric.length; i++) {
    const x = f.number(p.numeric[i]!);
    if (x === null) continue;
    acc.n[i]!++;
    acc.sum[i]! += x;
    if (x < acc.min[i]!) acc.min[i] = x;
    if (x > acc.max[i]!) acc.max[i] = x;
  }
  for (let i = 0; i < p.uniq.length; i++) {
    const t = f.text(p.uniq[i]!);
    if (t !== null) acc.uniq[i]!.add(t);
  }
  for (let i = 0; i < p.quantile.length; i++) {
    const x = f.number(p.quantile[i]!);
    if (x !== null) acc.quantile[i]!.push(x);
  }
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function sameValues(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  const x = Float64Array.from(a).sort();
  const y = Float64Array.from(b).sort();
  return x.every((v, i) => v === y[i]);
}

/** The measures of the view whose values differ between the two sides of a cell. */
function differing(p: Plan, a: Acc, c: Acc): string[] {
  const out: string[] = [];
  const num = (m: Measure, acc: Acc): number | null => {
    const i = p.numeric.findIndex((f) => f.name === m.field!.name);
    if (acc.n[i] === 0) return null;
    return m.kind === 'sum' ? acc.sum[i]! : m.kind === 'min' ? acc.min[i]! : m.kind === 'max' ? acc.max[i]! : acc.sum[i]! / acc.n[i]!;
  };
  for (const m of p.def.measures) {
    let same: boolean;
    if (m.kind === 'count') same = a.events === c.events;
    else if (m.kind === 'uniq') {
      const i = p.uniq.findIndex((f) => f.name === m.field!.name);
      same = sameSet(a.uniq[i]!, c.uniq[i]!);
    } else if (m.kind === 'quantile') {
      const i = p.quantile.findIndex((f) => f.name === m.field!.name);
      same = sameValues(a.quantile[i]!, c.quantile[i]!);
    } else same = num(m, a) === num(m, c);
    if (!same) out.push(m.name);
  }
  return out;
}

const MAX = Number.MAX_VALUE;

function stateOf(p: Plan, acc: Acc): CellState {
  const numbers: Record<string, NumberState> = {};
  p.numeric.forEach((f, i) => {
    // A sum past the largest double is that double, as the stores clamp it (core/query.ts).
    if (acc.n[i]! > 0) numbers[f.name] = { n: acc.n[i]!, sum: Math.max(-MAX, Math.min(MAX, acc.sum[i]!)), min: acc.min[i]!, max: acc.max[i]! };
  });
  return { events: acc.events, numbers };
}

/**
 * Compares the views of one batch. `active` and `candidate` are the rows each version stored
 * of the same records (held records in neither); `viewsOf` answers a tenant's views. A cell
 * is sampled when it differs (at most `limit` new ones per view), and whatever it does when
 * `follow` has its key (ports/view-diff.ts `sampleKey`): a sample already kept goes on adding
 * up. Answers one entry per view of every tenant in the batch, even with no cell.
 */
export function diffViews(
  active: readonly LogRecord[],
  candidate: readonly LogRecord[],
  viewsOf: (tenant: string) => readonly ViewDef[],
  follow: ReadonlySet<string>,
  limit: number,
): ViewDiff[] {
  const plans = new Map<string, Plan[]>();
  // Equal texts are parsed once: on both sides an event the candidate did not change has the same JSON.
  const parsed = new Map<string, unknown>();
  const reader = new FieldReader((text) => {
    let v = parsed.get(text);
    if (v === undefined) parsed.set(text, (v = parseColumn(text)));
    return v;
  });
  const run = (records: readonly LogRecord[], side: 'a' | 'c') => {
    for (const r of records) {
      let ps = plans.get(r.tenant);
      if (!ps) plans.set(r.tenant, (ps = viewsOf(r.tenant).map(planOf)));
      if (ps.length === 0) continue;
      reader.reset(r);
      for (const p of ps) add(p, r, reader, side);
    }
  };
  run(active, 'a');
  run(candidate, 'c');
  const out: ViewDiff[] = [];
  for (const [tenant, ps] of plans) {
    for (const p of ps) {
      const v: ViewDiff = { tenant, view: p.def.name, measures: p.def.measures.map((m) => m.name), buckets_compared: p.cells.size, buckets_differing: 0, samples: [] };
      let fresh = 0;
      for (const cell of p.cells.values()) {
        const a = cell.a ?? newAcc(p);
        const c = cell.c ?? newAcc(p);
        const differs = differing(p, a, c);
        if (differs.length > 0) v.buckets_differing++;
        if (differs.length === 0 && follow.size === 0) continue;
        const group: Record<string, string | null> = {};
        p.def.dimensions.forEach((d, i) => (group[d.name] = cell.group[i]!));
        const followed = follow.has(sampleKey(v, { bucket: cell.bucket, group }));
        if (!followed && (differs.length === 0 || fresh >= limit)) continue;
        if (!followed) fresh++;
        v.samples.push({ bucket: cell.bucket, group, differs, active: stateOf(p, a), candidate: stateOf(p, c) });
      }
      out.push(v);
    }
  }
  return out;
}
