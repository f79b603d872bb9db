import type { LogRecord } from '../core/types.js';

/** A batch's events per (tenant, type, minute of event time): the rows a store adds to `counts_1m`. */
export function countsPerMinute(records: readonly LogRecord[]): { tenant: string; type: string; minute: number; n: number }[] {
  const agg = new Map<string, { tenant: string; type: string; minute: number; n: number }>();
  for (const r of records) {
    const minute = Math.floor(r.ts / 60_000) * 60_000;
    const k = `${r.tenant}\u0000${r.type}\u0000${minute}`;
    const cur = agg.get(k);
    if (cur) cur.n++;
    else agg.set(k, { tenant: r.tenant, type: r.type, minute, n: 1 });
  }
  // In key order: concurrent upserts of the same rows (workers on PostgreSQL) lock them in one order.
  return [...agg.values()].sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : a.type < b.type ? -1 : a.type > b.type ? 1 : a.minute - b.minute));
}
