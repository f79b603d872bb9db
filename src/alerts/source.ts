import type { Measure, QuerySpec } from '../core/query.js';
import type { DeadLetterStore } from '../ports/dead-letters.js';
import type { IngestMinute } from '../ports/alerts.js';
import type { Log } from '../ports/log.js';
import type { StoreReader } from '../ports/reader.js';
import { mergeable, type MinuteLookup, type MinutePartial, type MinuteSeries, type RuleData, type SignalReading, type WindowMeasure } from './evaluate.js';
import { formatDuration } from './rule-fields.js';
import { type BuiltinSignal, type Rule, type Selector, type ThresholdRule } from './rules.js';
import type { SeriesCache, SeriesRow, SeriesWant, ValueMerge } from './series-cache.js';

const MINUTE = 60_000;
/** Rows a per-minute query may return: a week of minutes and some. */
const CAP = 20_000;
/** Window queries of a non-merging measure asked at once (the store's readers: query.readers, default 4). */
const PREFETCH_BATCH = 4;

/**
 * Where alert evaluation reads its numbers: the store's queries (the same as `POST /v1/query`,
 * served from a covering view when one exists, else from raw events) and the log's
 * watermark. Exact per-minute counts; nothing sampled.
 */
export interface AlertSource {
  /**
   * A time T such that every event received before T is visible to the queries made after
   * this call (the query watermark): windows end at the last whole minute at or before it.
   */
  watermark(tenant: string): Promise<number>;
  /**
   * A rule's data covering [from, to) (whole minutes). `watermark` (the one `to` was taken
   * from) lets a source that keeps series between passes count every event received before it.
   */
  ruleData(tenant: string, rule: Rule, from: number, to: number, watermark?: number): Promise<RuleData>;
  /**
   * Called once per tenant and pass, before `ruleData` for each of `rules` (with the same
   * `from`, `to` and `watermark`): a source that keeps series reads all of them that need a
   * read here, in as few scans of the store as it can (one per tenant, as a rule). Optional;
   * whatever it leaves undone `ruleData` does.
   */
  prepare?(tenant: string, rules: { rule: Rule; from: number; to: number }[], watermark: number): Promise<void>;
  /** Called after each evaluation pass: a source that keeps series drops those no rule read for a while. */
  endPass?(): void;
  /** Counts of a selector per bucket (per minute by default) over [from, to), keyed by bucket start. */
  counts(tenant: string, sel: Selector, from: number, to: number, interval?: '1m' | '1h'): Promise<MinuteSeries>;
}

const COUNT: Measure = { name: 'count', kind: 'count', field: null };

function spec(tenant: string, sel: Selector, from: number, to: number, interval: '1m' | '1h' | null, measures: Measure[]): QuerySpec {
  return { tenant, event: sel.event, from, to, interval, measures, filters: sel.filters, groupBy: [], orderBy: [], limit: null, source: 'auto' };
}

/** Dead-letter reasons that are the pipeline's faults, not the producer's. */
export const PIPELINE_FAULTS = ['poison', 'invalid_row', 'enrich_failed'] as const;
const RATIO_WINDOW = 3_600_000;
const RATIO_MIN_EVENTS = 100;

export interface StoreSourceOptions {
  /** The catalog's dead letters, for the dead-letter ratio. */
  deadLetters?: DeadLetterStore;
  /** Where the evaluation keeps series between passes. */
  cache?: SeriesCache;
  /** A store scan of many series may run this long (ms; default: the store's query timeout); `sluice up` gives it the evaluation interval. */
  scanTimeoutMs?: number;
  /** The ingest minutes of a tenant in [from, to) (`AlertStore.ingestMinutes`), for ingest availability. */
  ingest?: (tenant: string, from: number, to: number) => Promise<IngestMinute[]>;
  /** The conservation check's window (`obs.conservationWindowMs`), named by the gap's reading before the first check (default 1 h). */
  conservationWindowMs?: number;
}

/**
 * Series read in one store scan at most. A scan's answer holds a row per minute with events
 * of each series (32 bytes, a few times over while it crosses threads): at most about what
 * the cache keeps for those series, several times over; 2,000 series over 3 days are at most
 * 8.6M rows, mostly far fewer (a series of 5xx answers has few minutes with any).
 */
const SCAN_SERIES = 2_000;

/** Events received with an event time more than this ahead are counted by a series' next full read (ingest clamps them at 5 min by default). */
const AHEAD = 86_400_000;

/**
 * The source over the store reader and the log (and the catalog's dead letters, for the
 * dead-letter ratio), as `sluice up` has them. With `cache`, SLOs and threshold rules on
 * count, sum, min and max read their per-minute series through it (only what arrived since
 * the last pass; rules with the same query share one series); without, every call queries its
 * whole span (the API's budgets and backtests).
 */
export function storeSource(reader: StoreReader, log: Log, now: () => number, opts: StoreSourceOptions = {}): AlertSource {
  const { deadLetters, cache, ingest, scanTimeoutMs } = opts;
  const conservationWindow = opts.conservationWindowMs ?? 3_600_000;
  const counts = async (tenant: string, sel: Selector, from: number, to: number, interval: '1m' | '1h' = '1m'): Promise<MinuteSeries> => {
    const out: MinuteSeries = new Map();
    if (to <= from) return out;
    const answer = await reader.query(spec(tenant, sel, from, to, interval, [COUNT]), CAP);
    for (const [bucket, n] of answer.rows) out.set(Number(bucket), Number(n));
    return out;
  };
  const watermark = async (tenant: string): Promise<number> => {
    // The applied offsets are read before the log's oldest unapplied record: everything
    // received before the answer is in the store for the queries that follow.
    const t = now();
    const r = await reader.counts({ tenant, type: null, from: t - MINUTE, to: t, interval: '1m' });
    const oldest = await log.oldestUnapplied(r.applied);
    const w = oldest === null ? t : Math.min(oldest, t);
    cache?.watermark(tenant, w);
    return w;
  };
  const signal = async (tenant: string, name: BuiltinSignal): Promise<SignalReading> => {
    if (name === 'freshness') return { value: Math.max(0, now() - (await watermark(tenant))) / 1000, window: 'now', events: 0 };
    if (name === 'dead_letter_ratio') {
      const window = formatDuration(RATIO_WINDOW);
      if (!deadLetters) return { value: null, window, events: 0 };
      const t = now();
      let dead = 0;
      for (const reason of PIPELINE_FAULTS) {
        const groups = await deadLetters.groups(tenant, { reason, from: t - RATIO_WINDOW, to: t, status: ['open', 'held', 'replayed', 'discarded'] }, 10_000);
        dead += groups.reduce((n, g) => n + g.count, 0);
      }
      const stored = (await reader.counts({ tenant, type: null, from: t - RATIO_WINDOW, to: t, interval: '1m' })).rows.reduce((n, r) => n + r.count, 0);
      const events = stored + dead;
      return { value: events < RATIO_MIN_EVENTS ? null : dead / events, window, events, bad: dead };
    }
    // The conservation gap: the sum of |gap| over the settled minutes of the check's window
    // (the last hour by default); it counts no events of its own, so it gives none.
    const c = await reader.conservation();
    if (c.checkedAt === null || c.settledUntil === null || c.from === null) return { value: null, window: formatDuration(conservationWindow) };
    return { value: c.gapByTenant.find(([t]) => t === tenant)?.[1] ?? 0, window: formatDuration(Math.max(MINUTE, c.settledUntil - c.from)) };
  };
  /** A series' key in the cache, its query and its second column's merge. */
  const seriesOf = (sel: Selector, measure: Measure | null) => {
    const merge = measure && measure.kind !== 'count' ? (measure.kind as ValueMerge) : null;
    const key = JSON.stringify([sel.event, sel.filters.map((f) => [f.field.name, f.op, f.value]), merge && measure!.name]);
    return { key, merge, measures: merge ? [COUNT, measure!] : [COUNT] };
  };
  /** One series' rows, by one query (the store's query compiler; `POST /v1/query`'s filters). */
  const readOne = async (tenant: string, sel: Selector, measures: Measure[], start: number, receivedFrom: number | null, receivedTo: number): Promise<SeriesRow[]> => {
    const q = { ...spec(tenant, sel, start, receivedTo + AHEAD, '1m', measures), source: 'raw' as const, received: { from: receivedFrom, to: receivedTo } };
    const answer = await reader.query(q, CAP);
    return answer.rows.map((r) => [Number(r[0]), Number(r[1]), r[2] === null || r[2] === undefined ? null : Number(r[2])]);
  };
  /** The series of `sel` (and `measure`, the second column) through the cache. */
  const cached = (tenant: string, sel: Selector, measure: Measure | null, from: number, to: number, watermark: number) => {
    const { key, merge, measures } = seriesOf(sel, measure);
    return cache!.series(tenant, key, from, to, watermark, merge, (start, receivedFrom, receivedTo) => readOne(tenant, sel, measures, start, receivedFrom, receivedTo));
  };
  /** The series a rule reads through the cache (none for the others). */
  const wantsOf = (rule: Rule, from: number, to: number): (SeriesWant & { sel: Selector; measure: Measure | null })[] => {
    const sides: [Selector, Measure | null][] =
      rule.kind === 'slo' ? [[rule.total, null], [(rule.bad ?? rule.good)!, null]] : rule.kind === 'threshold' && mergeable(rule) ? [[rule.query, rule.query.measure]] : [];
    return sides.map(([sel, measure]) => ({ ...seriesOf(sel, measure), from, to, sel, measure }));
  };
  /**
   * Several series' rows: in one store scan per SCAN_SERIES where the store has one
   * (Store.seriesScan: DuckDB and PostgreSQL), else one query each.
   */
  const readMany = async (tenant: string, wants: (SeriesWant & { sel: Selector; measure: Measure | null })[], start: number, receivedFrom: number | null, receivedTo: number): Promise<SeriesRow[][]> => {
    const out: SeriesRow[][] = wants.map(() => []);
    for (let at = 0; at < wants.length; at += SCAN_SERIES) {
      const chunk = wants.slice(at, at + SCAN_SERIES);
      // Optional call: a reader made of the store's calls alone (tests, benches) may lack it.
      const answer = await reader.seriesScan?.({
        tenant,
        from: start,
        to: receivedTo + AHEAD,
        received: { from: receivedFrom, to: receivedTo },
        series: chunk.map((w) => ({ event: w.sel.event, filters: w.sel.filters, measure: w.merge ? w.measure : null })),
        ...(scanTimeoutMs ? { timeoutMs: scanTimeoutMs } : {}),
      });
      if (!answer) {
        for (let i = 0; i < chunk.length; i++) out[at + i] = await readOne(tenant, chunk[i]!.sel, seriesOf(chunk[i]!.sel, chunk[i]!.measure).measures, start, receivedFrom, receivedTo);
        continue;
      }
      for (let r = 0; r < answer.series.length; r++) {
        const v = answer.values[r]!;
        out[at + answer.series[r]!]!.push([answer.minutes[r]!, answer.counts[r]!, Number.isNaN(v) ? null : v]);
      }
    }
    return out;
  };
  const counted = (s: { count(m: number): number; sum(from: number, to: number): number }): MinuteLookup => ({ get: (m) => s.count(m), sum: (from, to) => s.sum(from, to) });
  return {
    watermark,
    counts,
    endPass: () => cache?.sweep(),
    async prepare(tenant, rules, watermark) {
      if (!cache) return;
      const wants = rules.flatMap((r) => wantsOf(r.rule, r.from, r.to));
      if (wants.length === 0) return;
      const bySel = new Map(wants.map((w) => [w.key, w]));
      await cache.prepare(tenant, wants, watermark, (batch, start, receivedFrom, receivedTo) =>
        readMany(tenant, batch.map((w) => bySel.get(w.key)!), start, receivedFrom, receivedTo),
      );
    },
    async ruleData(tenant, rule, from, to, watermark) {
      if (cache && watermark !== undefined && rule.kind === 'slo') {
        const total = await cached(tenant, rule.total, null, from, to, watermark);
        const side = await cached(tenant, (rule.bad ?? rule.good)!, null, from, to, watermark);
        const bad: MinuteLookup = rule.bad ? counted(side) : { get: (m) => Math.max(0, total.count(m) - side.count(m)) };
        return { slo: { total: counted(total), bad } };
      }
      if (cache && watermark !== undefined && rule.kind === 'threshold' && mergeable(rule)) {
        const m = rule.query.measure;
        const s = await cached(tenant, rule.query, m, from, to, watermark);
        const partial = (minute: number): MinutePartial | undefined => {
          const count = s.count(minute);
          if (count === 0) return undefined;
          const v = s.value(minute);
          return { count, sum: m.kind === 'sum' ? (v ?? 0) : 0, min: m.kind === 'min' ? v : null, max: m.kind === 'max' ? v : null };
        };
        return { partials: { get: partial } };
      }
      if (rule.kind === 'slo') {
        const total = await counts(tenant, rule.total, from, to);
        if (rule.bad) return { slo: { total, bad: await counts(tenant, rule.bad, from, to) } };
        const good = await counts(tenant, rule.good!, from, to);
        const bad: MinuteSeries = new Map();
        for (const [m, n] of total) bad.set(m, Math.max(0, n - (good.get(m) ?? 0)));
        return { slo: { total, bad } };
      }
      if (rule.kind === 'builtin' && rule.burn) {
        const total: MinuteSeries = new Map();
        const bad: MinuteSeries = new Map();
        for (const m of (await ingest?.(tenant, from, to)) ?? []) {
          total.set(m.minute, m.requests);
          bad.set(m.minute, m.failed);
        }
        return { slo: { total, bad } };
      }
      if (rule.kind === 'builtin') return { signal: await signal(tenant, rule.signal) };
      if (mergeable(rule)) return { partials: await partials(reader, tenant, rule, from, to) };
      // Measures that do not merge: one query per window end, over the whole window.
      const measured = new Map<number, WindowMeasure>();
      const windows = new Map<number, Promise<WindowMeasure>>();
      const measure = (end: number) => windowMeasure(reader, tenant, rule, end - rule.window, end);
      // Prefetched by the caller through `prefetch`; evaluated synchronously from the cache.
      return {
        window: (end) => {
          const m = measured.get(end);
          if (!m) throw new Error(`no window measure fetched for ${new Date(end).toISOString()}`);
          return m;
        },
        prefetch: async (ends: number[], signal?: AbortSignal) => {
          // PREFETCH_BATCH windows at a time, awaited together: a backtest over a day asks for
          // 1,440 of them, and starting all at once queued them all for the readers; awaiting
          // them one by one left every rejection after the first unhandled, which ended the
          // process. A failed window is forgotten, to be asked again.
          const todo = ends.filter((end) => !measured.has(end));
          for (let i = 0; i < todo.length; i += PREFETCH_BATCH) {
            // The asker went away (a backtest's client closed its connection): no more queries for it.
            signal?.throwIfAborted();
            const chunk = todo.slice(i, i + PREFETCH_BATCH);
            for (const end of chunk) {
              if (windows.has(end)) continue;
              const p = measure(end);
              p.catch(() => windows.delete(end));
              windows.set(end, p);
            }
            const values = await Promise.all(chunk.map((end) => windows.get(end)!));
            chunk.forEach((end, j) => measured.set(end, values[j]!));
          }
        },
      } as RuleData;
    },
  };
}

async function partials(reader: StoreReader, tenant: string, rule: ThresholdRule, from: number, to: number): Promise<Map<number, MinutePartial>> {
  const m = rule.query.measure;
  const measures = m.kind === 'count' ? [COUNT] : [COUNT, m];
  const answer = await reader.query(spec(tenant, rule.query, from, to, '1m', measures), CAP);
  const out = new Map<number, MinutePartial>();
  for (const row of answer.rows) {
    const v = row[2] === null || row[2] === undefined ? null : Number(row[2]);
    out.set(Number(row[0]), {
      count: Number(row[1]),
      sum: m.kind === 'sum' ? (v ?? 0) : 0,
      min: m.kind === 'min' ? v : null,
      max: m.kind === 'max' ? v : null,
    });
  }
  return out;
}

async function windowMeasure(reader: StoreReader, tenant: string, rule: ThresholdRule, from: number, to: number): Promise<WindowMeasure> {
  const answer = await reader.query(spec(tenant, rule.query, from, to, null, [COUNT, rule.query.measure]), 2);
  const row = answer.rows[0];
  if (!row) return { value: null, events: 0 };
  return { events: Number(row[0]), value: row[1] === null || row[1] === undefined ? null : Number(row[1]) };
}
