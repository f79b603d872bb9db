import type { StreamReader } from './reader.js';

/** How often a partition's lag is counted again by the server (ms); see PartitionLag. */
export const PENDING_REFRESH_MS = 10_000;

/**
 * Records of a partition after a group's committed offset: counted by the server (a consumer's
 * num_pending, reader.ts), since offsets are the stream's sequences and their difference is not
 * a count. The server may walk part of the partition to count it (up to tens of ms on a stream
 * of a million records), so a partition is counted at most once a PENDING_REFRESH_MS, and this
 * process asks one count at a time: a stale count is answered at once while its refresh waits
 * its turn (a gauge, stale by that long and the queue); only a partition never counted waits.
 */
export class PartitionLag {
  /** Per group and partition: the last count, and when it was made. */
  private readonly counts = new Map<string, { at: number; pending: number; refreshing?: boolean }>();
  /** Counts asked of the server, one at a time. */
  private counting: Promise<unknown> = Promise.resolve();

  constructor(private readonly reader: StreamReader) {}

  /** Records of `partition` after `committed` for `group`, as of at most PENDING_REFRESH_MS before `now` (epoch ms). */
  async of(group: string, partition: number, committed: number, now: number): Promise<number> {
    const key = `${group}\u0000${partition}`;
    const last = this.counts.get(key);
    if (last && (now - last.at < PENDING_REFRESH_MS || last.refreshing)) return last.pending;
    const counted = this.counting.then(() => this.reader.pending(partition, committed));
    this.counting = counted.catch(() => undefined);
    if (!last) {
      const pending = await counted;
      this.counts.set(key, { at: now, pending });
      return pending;
    }
    last.refreshing = true;
    counted.then(
      (pending) => this.counts.set(key, { at: now, pending }),
      () => this.counts.set(key, { ...last, refreshing: false }),
    );
    return last.pending;
  }
}
