import { INTERVAL_MS } from './time.js';
import type { Filter, Measure, QuerySpec, ViewDef } from './query.js';

/**
 * Choosing where a query is answered from (pure): a built view that covers it, else raw
 * events. A view covers a query when it keeps everything the query needs at a grain that
 * divides the query's buckets:
 * - the same event type (or both all types);
 * - every filter of the view is also a filter of the query, and the query's other filters
 *   are on the view's dimensions (applied to the dimension's stored text, which is the
 *   same text the raw path filters on);
 * - the group-by fields are dimensions of the view;
 * - every measure is kept: count always; sum, min, max and avg of F by any of them on F
 *   (one row keeps count, sum, min and max of F); uniq:F by uniq:F; any percentile of F by
 *   any percentile of F (the sketch answers every quantile);
 * - the view's grain divides the interval, or, for totals, the range starts and ends on
 *   the grain.
 * Among covering views the one with the coarsest grain wins (fewest rows), then the one
 * with fewest dimensions.
 */

export const NUMERIC = new Set(['sum', 'min', 'max', 'avg']);

function sameFilter(a: Filter, b: Filter): boolean {
  return a.field.name === b.field.name && a.op === b.op && JSON.stringify(a.value) === JSON.stringify(b.value);
}

function keeps(view: ViewDef, m: Measure): boolean {
  if (m.kind === 'count') return true;
  const f = m.field!.name;
  if (NUMERIC.has(m.kind)) return view.measures.some((v) => NUMERIC.has(v.kind) && v.field!.name === f);
  return view.measures.some((v) => v.kind === m.kind && v.field!.name === f);
}

export function covers(view: ViewDef, q: QuerySpec): boolean {
  if (view.event !== q.event) return false;
  const dims = new Set(view.dimensions.map((d) => d.name));
  if (!view.filters.every((vf) => q.filters.some((qf) => sameFilter(vf, qf)))) return false;
  const extra = q.filters.filter((qf) => !view.filters.some((vf) => sameFilter(vf, qf)));
  if (!extra.every((f) => dims.has(f.field.name))) return false;
  if (!q.groupBy.every((g) => dims.has(g.name))) return false;
  if (!q.measures.every((m) => keeps(view, m))) return false;
  const grain = INTERVAL_MS[view.grain];
  if (q.interval !== null) return INTERVAL_MS[q.interval] % grain === 0;
  return q.from % grain === 0 && q.to % grain === 0;
}

/** The best covering view among `views` (built ones only), or null: answer from raw events. */
export function chooseView<V extends { def: ViewDef }>(views: readonly V[], q: QuerySpec): V | null {
  let best: V | null = null;
  for (const v of views) {
    if (!covers(v.def, q)) continue;
    if (
      !best ||
      INTERVAL_MS[v.def.grain] > INTERVAL_MS[best.def.grain] ||
      (v.def.grain === best.def.grain && v.def.dimensions.length < best.def.dimensions.length)
    ) {
      best = v;
    }
  }
  return best;
}

/** The filters of `q` left to apply on the view's rows (the view's own are already applied). */
export function residualFilters(view: ViewDef, q: QuerySpec): Filter[] {
  return q.filters.filter((qf) => !view.filters.some((vf) => sameFilter(vf, qf)));
}
