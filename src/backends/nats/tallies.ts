import type { KV } from 'nats';
import type { Receipt, Tally } from '../../core/types.js';
import { casUpdate } from './partition-state.js';

/** How long a minute's tallies stay in the bucket (the conservation check reads the last day). */
export const TALLY_TTL_MS = 86_400_000;

/**
 * Ingest receipts per tenant and minute (received, rejected, duplicate), for the conservation
 * check, in the `<stream>_tallies` KV bucket: one entry per minute holding each tenant's tally.
 * Receipts are summed in memory and added to the bucket every second (one compare-and-set per
 * minute, not one per request). A crash loses at most the last second of tallies: the
 * conservation check then shows that minute's receipts lost (`talliesWithRecords` is false on
 * this log, obs/conservation.ts), not a gap.
 */
export class ReceiptTallies {
  private readonly buffer = new Map<string, Tally>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly kv: KV) {
    this.timer = setInterval(() => void this.flush(), 1_000);
    this.timer.unref();
  }

  /** Counts one request's receipt, with the appends the log found to be duplicates. */
  add(receipt: Receipt, duplicates: number): void {
    const minute = receipt.receivedAt - (receipt.receivedAt % 60_000);
    const k = `${minute}\u0000${receipt.tenant}`;
    const t = this.buffer.get(k) ?? { tenant: receipt.tenant, minute, received: 0, rejected: 0, duplicate: 0 };
    t.received += receipt.received;
    t.rejected += receipt.rejected;
    t.duplicate += duplicates;
    this.buffer.set(k, t);
  }

  /** Adds the buffered receipts to the bucket; what cannot be written (NATS unreachable) waits for the next flush. */
  async flush(): Promise<void> {
    const byMinute = new Map<number, Tally[]>();
    for (const t of this.buffer.values()) byMinute.set(t.minute, [...(byMinute.get(t.minute) ?? []), t]);
    this.buffer.clear();
    for (const [minute, adds] of byMinute) {
      try {
        await casUpdate(this.kv, String(minute), (prev: Record<string, Tally> | null) => {
          const next = { ...prev };
          for (const t of adds) {
            const p = next[t.tenant];
            next[t.tenant] = p ? { ...p, received: p.received + t.received, rejected: p.rejected + t.rejected, duplicate: p.duplicate + t.duplicate } : t;
          }
          return next;
        });
      } catch {
        for (const t of adds) this.add({ tenant: t.tenant, receivedAt: t.minute, received: t.received, rejected: t.rejected }, t.duplicate);
      }
    }
  }

  /** Every tenant's tallies of the minutes in [from, to) (epoch ms), this process's buffer flushed first. */
  async range(from: number, to: number): Promise<Tally[]> {
    await this.flush();
    const minutes: number[] = [];
    for (let m = from - (from % 60_000); m < to; m += 60_000) if (m >= from) minutes.push(m);
    const entries = await Promise.all(minutes.map((m) => this.kv.get(String(m))));
    return entries.flatMap((e) => (e && e.operation === 'PUT' ? Object.values(e.json<Record<string, Tally>>()) : []));
  }

  /** Stops the timer; call flush() for what is buffered. */
  stop(): void {
    clearInterval(this.timer);
  }
}
