import { createHash } from 'node:crypto';

/**
 * Per-minute series kept between evaluation passes, so that a pass reads only what arrived
 * since the one before instead of every window of every rule again.
 *
 * A series is the per-minute (event time) aggregate of one query: a count, and for threshold
 * rules a second column (sum, min or max). It is identified by the tenant and the query's
 * canonical text, so rules that share a query (many SLOs share their `total`) share it.
 *
 * What a series holds is exact: for every minute it keeps, the aggregate over the events
 * *received before its cutoff*. A pass with a later watermark W reads only the events
 * received in [cutoff, W) (any event time; `received` in the query, served from raw events)
 * and folds them in, then moves the cutoff to W. Every event received before W is visible
 * (the watermark's promise), so each event is counted exactly once, at the pass whose
 * watermark passes its receipt, late event times included.
 *
 * A series is read again in full (a miss):
 * - the first time, and when a rule needs minutes older than it keeps (a longer window);
 * - when the watermark moved backwards (a restored store, a process whose log lags): the
 *   receipts in between might be counted twice;
 * - every `refreshMs` (staggered between tenants; every series of a tenant at once), so that
 *   anything outside this model (events removed behind sluice's back, a record received
 *   before the watermark but appended after it was read) lasts at most that long.
 *
 * `prepare` brings every series a pass will use up to date before the pass reads them: all
 * the full reads of a tenant in one batch, and the reads of what arrived since in one batch
 * per cutoff (one, as a rule), so that a store that reads many series in one scan
 * (`Store.seriesScan`) reads a tenant's events once: a first pass after a start, or after a
 * thousand rules were created, costs one scan instead of one per series.
 * A series no pass has used for `idleMs` is dropped: the rules that read it were deleted or
 * changed their query. Memory per series: 8 bytes per minute kept per column (the longest
 * window of its rules: 3 days are 4,320 minutes, 35 KB a column).
 */

const MINUTE = 60_000;

/** How a series' second column merges: added, or the smaller or larger kept. */
export type ValueMerge = 'sum' | 'min' | 'max';

/** Rows of a read: [minute start, count, value (null when the minute has none)]. */
export type SeriesRow = [number, number, number | null];

/**
 * Reads a series' rows over event minutes from `from` on, counting events received in
 * [receivedFrom, receivedTo). Rows may repeat a minute: counts are added, values merged.
 */
export type SeriesReader = (from: number, receivedFrom: number | null, receivedTo: number) => Promise<SeriesRow[]>;

/** A series a pass reads: its key, the minutes [from, to) it needs, its second column's merge. */
export interface SeriesWant {
  key: string;
  from: number;
  to: number;
  merge: ValueMerge | null;
}

/**
 * Reads several series at once (as SeriesReader, for each): their rows in the order of
 * `wants`, over event minutes from `from` on.
 */
export type SeriesBatchReader = (wants: SeriesWant[], from: number, receivedFrom: number | null, receivedTo: number) => Promise<SeriesRow[][]>;

/** One minute of a series: its count and (for a second column) its value, null when it has none. */
export interface SeriesMinute {
  count: number;
  value: number | null;
}

/** A read-only view of a series at one pass. */
export interface Series {
  count(minute: number): number;
  /** The counts of the minutes [from, to) (minute starts, whole minutes) added up. */
  sum(from: number, to: number): number;
  value(minute: number): number | null;
}

class Entry {
  /** Minute of index 0. */
  start: number;
  counts: Float64Array;
  /** NaN: no value. */
  values: Float64Array | null;
  /** Events received before this are counted. */
  cutoff = 0;
  /** The longest span [to − span, to) a rule asked for; older minutes are dropped. */
  span: number;
  usedAt = 0;
  refreshAt = 0;
  /** prefix[i]: the sum of counts[0..i) (null: changed since it was built). */
  private prefix: Float64Array | null = null;

  constructor(
    from: number,
    span: number,
    readonly merge: ValueMerge | null,
  ) {
    this.start = from;
    this.span = span;
    const n = Math.max(1, Math.ceil(span / MINUTE)) + 64;
    this.counts = new Float64Array(n);
    this.values = merge ? new Float64Array(n).fill(NaN) : null;
  }

  /** Drops minutes before `from`. */
  trim(from: number): void {
    const drop = Math.floor((from - this.start) / MINUTE);
    if (drop <= 0) return;
    this.counts.copyWithin(0, Math.min(drop, this.counts.length));
    this.counts.fill(0, Math.max(0, this.counts.length - drop));
    if (this.values) {
      this.values.copyWithin(0, Math.min(drop, this.values.length));
      this.values.fill(NaN, Math.max(0, this.values.length - drop));
    }
    this.start += drop * MINUTE;
    this.prefix = null;
  }

  add(minute: number, count: number, value: number | null): void {
    if (minute < this.start) return;
    const i = (minute - this.start) / MINUTE;
    if (i >= this.counts.length) this.grow(i + 1);
    this.counts[i]! += count;
    this.prefix = null;
    if (this.values && value !== null) {
      const v = this.values[i]!;
      this.values[i] = Number.isNaN(v) ? value : this.merge === 'sum' ? clampSum(v + value) : this.merge === 'min' ? Math.min(v, value) : Math.max(v, value);
    }
  }

  private grow(size: number): void {
    const n = Math.max(size, Math.ceil(this.counts.length * 1.5));
    const counts = new Float64Array(n);
    counts.set(this.counts);
    this.counts = counts;
    if (this.values) {
      const values = new Float64Array(n).fill(NaN);
      values.set(this.values);
      this.values = values;
    }
  }

  count(minute: number): number {
    const i = (minute - this.start) / MINUTE;
    return i >= 0 && i < this.counts.length ? this.counts[i]! : 0;
  }

  /**
   * The counts of the minutes [from, to) (minute starts) added up: from prefix sums, built
   * once after a change. Counts are whole numbers below 2^53, so the differences are exact.
   */
  sum(from: number, to: number): number {
    const n = this.counts.length;
    const i0 = Math.min(n, Math.max(0, (from - this.start) / MINUTE));
    const i1 = Math.min(n, Math.max(0, (to - this.start) / MINUTE));
    if (i1 <= i0) return 0;
    if (!Number.isInteger(i0) || !Number.isInteger(i1)) {
      let total = 0;
      for (let m = from; m < to; m += MINUTE) total += this.count(m) || 0;
      return total;
    }
    if (!this.prefix) {
      const p = new Float64Array(n + 1);
      for (let i = 0; i < n; i++) p[i + 1] = p[i]! + this.counts[i]!;
      this.prefix = p;
    }
    return this.prefix[i1]! - this.prefix[i0]!;
  }

  value(minute: number): number | null {
    if (!this.values) return null;
    const i = (minute - this.start) / MINUTE;
    const v = i >= 0 && i < this.values.length ? this.values[i]! : NaN;
    return Number.isNaN(v) ? null : v;
  }
}

export interface SeriesCacheOptions {
  /** The time of refreshes and idleness (the evaluator's clock). */
  now: () => number;
  /** Each series is read again in full within this (ms, staggered between 1/2 and 1 of it); default 1 h. */
  refreshMs?: number;
  /** A series unused for this long is dropped (ms); default 10 min. */
  idleMs?: number;
}

/** Counters for tests and the bench. */
export interface SeriesCacheStats {
  series: number;
  /** Series read in full, and series read since their cutoff. */
  fullReads: number;
  deltaReads: number;
  /** Batches read by `prepare` (one store scan each, where the store can). */
  batches: number;
}

export class SeriesCache {
  /** Per tenant, its series by query. */
  private readonly tenants = new Map<string, Map<string, Entry>>();
  /** Per tenant, the last watermark seen. */
  private readonly watermarks = new Map<string, number>();
  /** Per tenant, when its series are read in full again. */
  private readonly refreshes = new Map<string, number>();
  private readonly refreshMs: number;
  private readonly idleMs: number;
  readonly stats: SeriesCacheStats = { series: 0, fullReads: 0, deltaReads: 0, batches: 0 };

  constructor(private readonly opts: SeriesCacheOptions) {
    this.refreshMs = opts.refreshMs ?? 3_600_000;
    this.idleMs = opts.idleMs ?? 600_000;
  }

  /**
   * The series `key` covering the minutes [from, to), with every event received before
   * `watermark` counted: from memory, reading only what arrived since its last pass, or in
   * full (see the module's comment). `merge` is the second column's (null: counts only).
   */
  async series(tenant: string, key: string, from: number, to: number, watermark: number, merge: ValueMerge | null, read: SeriesReader): Promise<Series> {
    await this.prepare(tenant, [{ key, from, to, merge }], watermark, async (_, start, receivedFrom, receivedTo) => [await read(start, receivedFrom, receivedTo)]);
    const e = this.tenants.get(tenant)!.get(key)!;
    return { count: (m) => e.count(m), sum: (from, to) => e.sum(from, to), value: (m) => e.value(m) };
  }

  /**
   * Brings the series `wants` of a tenant up to date at `watermark` (see the module's
   * comment): one `read` of every series that needs a full read, one per cutoff of those
   * that need what arrived since. `series` then answers them from memory. A failed read
   * leaves the series it was for as they were (the next call reads them again).
   */
  async prepare(tenant: string, wants: SeriesWant[], watermark: number, read: SeriesBatchReader): Promise<void> {
    const now = this.opts.now();
    this.watermark(tenant, watermark);
    let entries = this.tenants.get(tenant);
    if (!entries) this.tenants.set(tenant, (entries = new Map()));
    // One want per key: the earliest start, the longest span.
    const byKey = new Map<string, SeriesWant & { span: number }>();
    for (const w of wants) {
      const had = byKey.get(w.key);
      byKey.set(w.key, had ? { ...had, from: Math.min(had.from, w.from), to: Math.max(had.to, w.to), span: Math.max(had.span, w.to - w.from) } : { ...w, span: w.to - w.from });
    }
    const full: (SeriesWant & { span: number })[] = [];
    const deltas = new Map<number, { want: SeriesWant; entry: Entry }[]>();
    for (const w of byKey.values()) {
      const e = entries.get(w.key);
      if (!e || watermark < e.cutoff || w.from < e.start || now >= e.refreshAt || e.merge !== w.merge) full.push(w);
      else if (watermark > e.cutoff) deltas.set(e.cutoff, [...(deltas.get(e.cutoff) ?? []), { want: w, entry: e }]);
    }
    if (full.length > 0) {
      const rows = await read(full, Math.min(...full.map((w) => w.from)), null, watermark);
      this.stats.batches++;
      const refreshAt = this.refreshAt(tenant, now);
      full.forEach((w, i) => {
        const e = new Entry(w.from, w.span, w.merge);
        for (const [m, n, v] of rows[i]!) e.add(m, n, v);
        e.cutoff = watermark;
        e.refreshAt = refreshAt;
        entries.set(w.key, e);
        this.stats.fullReads++;
      });
    }
    for (const [cutoff, group] of deltas) {
      const rows = await read(
        group.map((g) => g.want),
        Math.min(...group.map((g) => g.entry.start)),
        cutoff,
        watermark,
      );
      this.stats.batches++;
      group.forEach(({ entry }, i) => {
        for (const [m, n, v] of rows[i]!) entry.add(m, n, v);
        entry.cutoff = watermark;
        this.stats.deltaReads++;
      });
    }
    for (const w of byKey.values()) {
      const e = entries.get(w.key)!;
      e.span = Math.max(e.span, w.span);
      e.trim(Math.min(w.from, w.to - e.span));
      e.usedAt = now;
    }
    this.stats.series = this.size;
  }

  /** The tenant's next refresh (staggered between tenants), moved on once passed. */
  private refreshAt(tenant: string, now: number): number {
    let at = this.refreshes.get(tenant);
    if (at === undefined || now >= at) this.refreshes.set(tenant, (at = now + this.refreshMs * (0.5 + 0.5 * stagger(tenant))));
    return at;
  }

  /**
   * The tenant's watermark at a pass (whether or not any series is read): one that moved
   * backwards drops the tenant's series, whose cutoffs may count receipts that were not all
   * visible yet.
   */
  watermark(tenant: string, watermark: number): void {
    const last = this.watermarks.get(tenant);
    if (last !== undefined && watermark < last) this.tenants.delete(tenant);
    this.watermarks.set(tenant, watermark);
  }

  /** Drops the series no pass used for `idleMs`. */
  sweep(): void {
    const before = this.opts.now() - this.idleMs;
    for (const [tenant, entries] of this.tenants) {
      for (const [k, e] of entries) if (e.usedAt < before) entries.delete(k);
      if (entries.size === 0) {
        this.tenants.delete(tenant);
        this.watermarks.delete(tenant);
        this.refreshes.delete(tenant);
      }
    }
    this.stats.series = this.size;
  }

  /** Drops every series (a store swapped, tests). */
  clear(): void {
    this.tenants.clear();
    this.watermarks.clear();
    this.refreshes.clear();
    this.stats.series = 0;
  }

  /** Series kept, every tenant's. */
  get size(): number {
    let n = 0;
    for (const entries of this.tenants.values()) n += entries.size;
    return n;
  }
}

/** A sum past the largest double is that double, as the stores' sums are (core/query.ts). */
function clampSum(x: number): number {
  return Math.min(Math.max(x, -Number.MAX_VALUE), Number.MAX_VALUE);
}

/** A number in [0, 1) from a tenant's name: the tenants' refreshes spread over time. */
function stagger(key: string): number {
  return createHash('sha1').update(key).digest().readUInt32BE(0) / 2 ** 32;
}
