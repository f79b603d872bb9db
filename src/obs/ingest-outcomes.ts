import type { IngestMinute } from '../ports/alerts.js';

const MINUTE = 60_000;

/** How often an ingest process writes its counts (ms). */
export const INGEST_FLUSH_MS = 5_000;

/**
 * A minute of receipt is complete once every ingest process has written it: its end plus
 * three flush intervals (a flush that failed once is retried at the next). Rules on ingest
 * availability evaluate minutes that ended before `now − INGEST_SETTLE_MS`.
 */
export const INGEST_SETTLE_MS = 3 * INGEST_FLUSH_MS;

/** Minutes kept in memory when flushes fail (the catalog is down): an hour, then the oldest are dropped. */
const MAX_MINUTES = 60;

/**
 * Counts each tenant's ingest requests and those answered 5xx, per minute of receipt (the
 * clock is the caller's), until `drain` hands them to the catalog (`AlertStore.addIngestMinutes`).
 * A failed flush puts its rows back, so a short catalog outage loses nothing; memory is
 * bounded to MAX_MINUTES minutes of every tenant that sent.
 */
export class IngestOutcomes {
  private readonly minutes = new Map<string, IngestMinute>();

  /** One ingest request of `tenant` answered with `status` at `now`. */
  observe(tenant: string, now: number, status: number): void {
    const minute = now - (now % MINUTE);
    const k = `${minute}\u0000${tenant}`;
    let m = this.minutes.get(k);
    if (!m) {
      this.minutes.set(k, (m = { tenant, minute, requests: 0, failed: 0 }));
      this.bound(minute);
    }
    m.requests++;
    if (status >= 500) m.failed++;
  }

  /** Everything counted since the last drain; the counts start again from zero. */
  drain(): IngestMinute[] {
    const out = [...this.minutes.values()];
    this.minutes.clear();
    return out;
  }

  /** Rows a flush could not write, counted again (added to what came meanwhile). */
  restore(rows: readonly IngestMinute[]): void {
    for (const r of rows) {
      const k = `${r.minute}\u0000${r.tenant}`;
      const m = this.minutes.get(k);
      if (m) {
        m.requests += r.requests;
        m.failed += r.failed;
      } else this.minutes.set(k, { ...r });
    }
    const newest = Math.max(0, ...[...this.minutes.values()].map((m) => m.minute));
    this.bound(newest);
  }

  private bound(newest: number): void {
    for (const [k, m] of this.minutes) if (m.minute <= newest - MAX_MINUTES * MINUTE) this.minutes.delete(k);
  }

  /** Writes what was counted with `write`; on failure keeps it for the next flush and rethrows. */
  async flush(write: (rows: readonly IngestMinute[]) => Promise<void>): Promise<void> {
    const rows = this.drain();
    if (rows.length === 0) return;
    try {
      await write(rows);
    } catch (e: unknown) {
      this.restore(rows);
      throw e;
    }
  }
}
