/**
 * A reader of the Prometheus text exposition format, enough for `sluice top`: one sample per
 * line, `name{label="value",...} number`, comments and blank lines skipped. Pure.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.push({ name: m[1]!, labels, value: v });
  }
  return out;
}

/** Sum of the samples of `name` whose labels match `where`, grouped by the label `by` (or '' for all). */
export function sumBy(samples: readonly Sample[], name: string, by = '', where: Record<string, string | RegExp> = {}): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name) continue;
    let ok = true;
    for (const [k, want] of Object.entries(where)) {
      const got = s.labels[k] ?? '';
      if (typeof want === 'string' ? got !== want : !want.test(got)) ok = false;
    }
    if (!ok) continue;
    const key = by ? (s.labels[by] ?? '') : '';
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

export function total(samples: readonly Sample[], name: string, where: Record<string, string | RegExp> = {}): number {
  return sumBy(samples, name, '', where).get('') ?? 0;
}

/**
 * The `q` quantile of a histogram from the increase of its cumulative buckets between two
 * scrapes (what PromQL's histogram_quantile does over a rate), linear within the bucket.
 * NaN when nothing was observed in between.
 */
export function quantileBetween(before: readonly Sample[], after: readonly Sample[], name: string, q: number, where: Record<string, string | RegExp> = {}): number {
  const inc = new Map<number, number>();
  const b = sumBy(before, `${name}_bucket`, 'le', where);
  for (const [le, v] of sumBy(after, `${name}_bucket`, 'le', where)) inc.set(Number(le === '+Inf' ? Infinity : le), v - (b.get(le) ?? 0));
  const bounds = [...inc.keys()].sort((x, y) => x - y);
  const count = inc.get(Infinity) ?? 0;
  if (count <= 0) return NaN;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const c = inc.get(le)!;
    if (c >= rank) {
      if (le === Infinity) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(1e-12, c - below);
    }
    lower = le;
    below = c;
  }
  return lower;
}
