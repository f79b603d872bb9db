/**
 * The per-view part of a rollout's diff, as the catalog keeps it (inside the diff's JSON body):
 * for each view of a tenant, how many (bucket, group) cells the compare saw and how many of
 * them the candidate's outputs made differ from the active version's, with bounded samples of
 * differing cells. src/rollout/view-diff.ts computes it per batch; the catalog adds batches up
 * with `mergeViewDiffs`.
 *
 * Cells are counted per compared batch: a cell that the events of three batches fall in counts
 * three times in `buckets_compared` (a count of distinct cells would have to remember every
 * cell). A sample keeps each side's mergeable state of its cell (events, and per numeric field
 * the values' count, sum, least and greatest), so that later batches of the same cell add to
 * it: its measures are exact over the batches from the one in which the cell first differed.
 */
export interface ViewDiff {
  tenant: string;
  view: string;
  /** The view's measures as declared (`count`, `sum:amount`, `p95:latency`): a sample's shown measures. */
  measures: string[];
  buckets_compared: number;
  buckets_differing: number;
  samples: ViewDiffSample[];
}

/** Numeric values of a field in a cell: how many, their sum, least and greatest. */
export interface NumberState {
  n: number;
  sum: number;
  min: number;
  max: number;
}

/** One side's state of a cell. */
export interface CellState {
  events: number;
  /** By field name (`properties.amount`); a field without numeric values is absent. */
  numbers: Record<string, NumberState>;
}

export interface ViewDiffSample {
  /** The bucket's start, epoch ms. */
  bucket: number;
  /** The dimensions' texts by field name; null for missing. */
  group: Record<string, string | null>;
  /** The measures that differed in a batch merged into this sample; empty: it agreed every time so far. */
  differs: string[];
  active: CellState;
  candidate: CellState;
}

/** The identity of a sample's cell (tenant, view, bucket, group). */
export function sampleKey(v: { tenant: string; view: string }, s: Pick<ViewDiffSample, 'bucket' | 'group'>): string {
  return `${v.tenant}\u0000${v.view}\u0000${s.bucket}\u0000${JSON.stringify(s.group)}`;
}

function addNumbers(a: Record<string, NumberState>, b: Record<string, NumberState>): Record<string, NumberState> {
  const out: Record<string, NumberState> = { ...a };
  for (const [f, y] of Object.entries(b)) {
    const x = out[f];
    out[f] = x ? { n: x.n + y.n, sum: x.sum + y.sum, min: Math.min(x.min, y.min), max: Math.max(x.max, y.max) } : y;
  }
  return out;
}

export function addCells(a: CellState, b: CellState): CellState {
  return { events: a.events + b.events, numbers: addNumbers(a.numbers, b.numbers) };
}

/**
 * Adds `add` to `into` (neither changed): counts add up per (tenant, view); a sample of a cell
 * already sampled adds to it; a new sample is kept, up to `limit` per view, only if it differs
 * (a sample that agreed only continues one already kept).
 */
export function mergeViewDiffs(into: readonly ViewDiff[] | undefined, add: readonly ViewDiff[] | undefined, limit: number): ViewDiff[] {
  const out = (into ?? []).map((v) => ({ ...v, samples: [...v.samples] }));
  for (const v of add ?? []) {
    let o = out.find((x) => x.tenant === v.tenant && x.view === v.view);
    if (!o) out.push((o = { ...v, buckets_compared: 0, buckets_differing: 0, samples: [] }));
    o.measures = v.measures;
    o.buckets_compared += v.buckets_compared;
    o.buckets_differing += v.buckets_differing;
    const at = new Map(o.samples.map((s, i) => [sampleKey(o!, s), i]));
    for (const s of v.samples) {
      const i = at.get(sampleKey(o, s));
      if (i !== undefined) {
        const k = o.samples[i]!;
        o.samples[i] = { ...k, differs: [...new Set([...k.differs, ...s.differs])], active: addCells(k.active, s.active), candidate: addCells(k.candidate, s.candidate) };
      } else if (s.differs.length > 0 && o.samples.length < limit) {
        at.set(sampleKey(o, s), o.samples.length);
        o.samples.push(s);
      }
    }
  }
  return out;
}
