import type { ConservationReply, MinuteBalance } from '../ports/reader.js';
import type { MinuteCount, Tally } from '../core/types.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { Store } from '../ports/store.js';

/**
 * The conservation check (invariant 4): per tenant and minute of receipt,
 *
 *     received = stored + dead_lettered + rejected + duplicate
 *
 * evaluated only for minutes that have settled, that is, that end before the watermark (every
 * event received before it is in the store or dead-lettered). `received`, `rejected` and
 * `duplicate` come from the tallies the log writes with each request's records; `stored`
 * from the store, `dead_lettered` from the catalog. A positive gap means events were lost;
 * a negative one, counted twice, where the log writes receipts with the records
 * (`talliesWithRecords`). Where it does not (NATS: receipts are written every second, and a
 * crash loses up to a second of them), a negative gap is a receipt lost, not an event counted
 * twice: such minutes are still listed, and the gap that alerts (`gapByTenant`, the metric
 * `sluice_conservation_gap_events`, the built-in page) counts only events lost.
 */


export interface ConservationReport {
  /** Minutes before this (epoch ms) were checked; later ones have not settled yet. */
  settledUntil: number;
  /** Start of the window checked. */
  from: number;
  /** The minutes whose gap is not zero. */
  unbalanced: MinuteBalance[];
  /** Per tenant: the sum of |gap| over the window (of positive gaps only where receipts can be lost, see above). */
  gapByTenant: Map<string, number>;
}

/** Pure: the balance of each minute that has a tally. */
export function balance(tallies: readonly Tally[], stored: readonly MinuteCount[], deadLettered: readonly MinuteCount[]): MinuteBalance[] {
  const key = (tenant: string, minute: number): string => `${minute}\u0000${tenant}`;
  const storedBy = new Map(stored.map((s) => [key(s.tenant, s.minute), s.n]));
  const deadBy = new Map(deadLettered.map((d) => [key(d.tenant, d.minute), d.n]));
  return tallies.map((t) => {
    const k = key(t.tenant, t.minute);
    const s = storedBy.get(k) ?? 0;
    const d = deadBy.get(k) ?? 0;
    return { ...t, stored: s, deadLettered: d, gap: t.received - (s + d + t.rejected + t.duplicate) };
  });
}

export interface ConservationDeps {
  log: Log;
  store: Store;
  catalog: Catalog;
}

/** The minute before which every event received has been stored or dead-lettered. */
async function settledUntilAt(deps: ConservationDeps, now: number): Promise<number> {
  const applied = await deps.store.appliedOffsets();
  const watermark = Math.min((await deps.log.oldestUnapplied(applied)) ?? now, now);
  return watermark - (watermark % 60_000);
}

/** The unbalanced minutes in [from, to), and the tenants that had traffic there. Read-only. */
async function balanceBetween(deps: ConservationDeps, from: number, to: number): Promise<{ unbalanced: MinuteBalance[]; tenants: Set<string> }> {
  if (to <= from) return { unbalanced: [], tenants: new Set() };
  const [tallies, stored, dead] = await Promise.all([deps.log.tallies(from, to), deps.store.storedByMinute(from, to), deps.catalog.deadLetters.byMinute(from, to)]);
  return { unbalanced: balance(tallies, stored, dead).filter((m) => m.gap !== 0), tenants: new Set(tallies.map((t) => t.tenant)) };
}

/**
 * The part of a minute's gap that counts as one (events): all of it where the log writes
 * receipts with its records; only events lost (a positive gap) where receipts can be lost in a
 * crash (see above). `/v1/status`, the metric and the built-in page all count this.
 */
export function countedGap(m: Pick<MinuteBalance, 'gap'>, talliesWithRecords: boolean): number {
  return m.gap > 0 || talliesWithRecords ? Math.abs(m.gap) : 0;
}

function report(settledUntil: number, from: number, unbalanced: MinuteBalance[], tenants: Iterable<string>, talliesWithRecords: boolean): ConservationReport {
  const gapByTenant = new Map<string, number>();
  for (const t of tenants) gapByTenant.set(t, 0);
  for (const m of unbalanced) {
    const gap = countedGap(m, talliesWithRecords);
    if (gap > 0) gapByTenant.set(m.tenant, (gapByTenant.get(m.tenant) ?? 0) + gap);
  }
  return { settledUntil, from, unbalanced, gapByTenant };
}

/** Checks the settled minutes of the last `windowMs`. Read-only. */
export async function checkConservation(deps: ConservationDeps, now: number, windowMs: number): Promise<ConservationReport> {
  const settledUntil = await settledUntilAt(deps, now);
  const from = Math.max(0, settledUntil - windowMs);
  const { unbalanced, tenants } = await balanceBetween(deps, from, settledUntil);
  return report(settledUntil, from, unbalanced, tenants, deps.log.capabilities.talliesWithRecords === true);
}

/**
 * The periodic check, at a cost that does not grow with the window. The first run reads the
 * whole window. Each run after it reads the minutes settled since the run before (and the
 * minute before those, in case it was still filling), and re-reads one slice of the older
 * minutes, walking the window so that every minute of it is read again within `rotationMs`
 * (a stored row removed behind sluice's back, for one, shows within that time). The other
 * minutes keep the balance of the run that last read them.
 *
 * Reading the whole window on every run cost a scan of every row received in the last hour:
 * 72M rows at 20k ev/s, about 0.9 s of both cores, which the store's commits waited for.
 */
export class ConservationChecker {
  private last: ConservationReport | null = null;
  private lastRunAt = 0;
  /** Where the next slice of the re-read starts. */
  private cursor = 0;

  constructor(
    private readonly deps: ConservationDeps,
    private readonly windowMs: number,
    private readonly rotationMs: number,
  ) {}

  async check(now: number): Promise<ConservationReport> {
    const last = this.last;
    if (!last) {
      this.last = await checkConservation(this.deps, now, this.windowMs);
      this.lastRunAt = now;
      this.cursor = this.last.from;
      return this.last;
    }
    const settledUntil = await settledUntilAt(this.deps, now);
    const from = Math.max(0, settledUntil - this.windowMs);
    const since = Math.min(last.settledUntil - 60_000, settledUntil);
    // The slice: the share of the window that the time since the last run is of a rotation.
    const share = Math.max(0, now - this.lastRunAt) / this.rotationMs;
    const width = Math.max(60_000, Math.ceil((share * this.windowMs) / 60_000) * 60_000);
    if (this.cursor < from || this.cursor >= since) this.cursor = from;
    const sliceFrom = this.cursor;
    const sliceTo = Math.min(sliceFrom + width, since);
    const [recent, slice] = await Promise.all([balanceBetween(this.deps, since, settledUntil), balanceBetween(this.deps, sliceFrom, sliceTo)]);
    this.cursor = sliceTo;
    this.lastRunAt = now;
    const kept = last.unbalanced.filter((m) => m.minute >= from && m.minute < since && (m.minute < sliceFrom || m.minute >= sliceTo));
    const tenants = [...last.gapByTenant.keys(), ...recent.tenants, ...slice.tenants];
    this.last = report(settledUntil, from, [...kept, ...slice.unbalanced, ...recent.unbalanced].sort((a, b) => a.minute - b.minute), tenants, this.deps.log.capabilities.talliesWithRecords === true);
    return this.last;
  }
}


export function toReply(r: ConservationReport, checkedAt: number): ConservationReply {
  return { checkedAt, settledUntil: r.settledUntil, from: r.from, unbalanced: r.unbalanced, gapByTenant: [...r.gapByTenant] };
}
