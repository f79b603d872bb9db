import type { AppendOutcome } from '../core/types.js';
import type { PartitionPosition } from '../ports/log.js';

/**
 * What a process on a shared log (NATS) still holds of each tenant's backlog: the events it
 * appended that the worker group has not committed yet. Workers of other processes report
 * nothing to it (a `sluice ingest` process has none of its own); the log's committed offsets
 * (`Log.positions`) say how far they got.
 *
 * Appends are grouped in epochs, one per `seal()` (each refresh of the positions): an epoch
 * holds, per tenant, how many events it appended and, per partition, the highest offset it
 * wrote. An epoch is released, whole, once the group's committed offset of every partition it
 * wrote to has reached that offset, whatever older epochs still wait (a stalled partition
 * holds only the epochs that wrote to it). An event is thus released at most one refresh after
 * its offset is committed, never before (a count that is late is conservative: the cap refuses
 * a little longer, it never admits past it). Offsets are only compared, never subtracted: on
 * NATS they are stream sequences, not contiguous within a partition.
 *
 * Memory is bounded whatever the backlog: past `maxEpochs` unreleased epochs, the two newest
 * sealed ones are merged (sums of counts, maxima of offsets). The older epochs keep their
 * targets and are released as the workers pass them, freeing room; merging the oldest instead
 * would move the oldest target forward on every refresh, and workers steadily that far behind
 * would never release anything.
 */
export class CommittedBacklog {
  /** Oldest first; the last is open (appends go to it) until sealed. */
  private readonly epochs: Epoch[] = [emptyEpoch()];

  constructor(private readonly maxEpochs = 1_000) {}

  /** Events of `tenant` appended by this process: the outcomes of one durable append. */
  appended(tenant: string, outcomes: readonly AppendOutcome[]): void {
    const open = this.epochs[this.epochs.length - 1]!;
    let n = 0;
    for (const o of outcomes) {
      if (o.status !== 'appended') continue;
      n++;
      if (o.offset > (open.offsets.get(o.partition) ?? 0)) open.offsets.set(o.partition, o.offset);
    }
    if (n > 0) open.counts.set(tenant, (open.counts.get(tenant) ?? 0) + n);
  }

  /**
   * A backlog this process did not append (what the log held at its start, per tenant), to be
   * released once the group has committed everything up to `heads` (offset per partition, as
   * read after the count, so never below what was counted).
   */
  inherit(counts: ReadonlyMap<string, number>, heads: readonly Pick<PartitionPosition, 'partition' | 'head'>[]): void {
    const e = emptyEpoch();
    for (const [tenant, n] of counts) if (n > 0) e.counts.set(tenant, n);
    for (const { partition, head } of heads) if (head > 0) e.offsets.set(partition, head);
    // Older than anything appended since: it goes first in line.
    this.epochs.unshift(e);
    this.bound();
  }

  /**
   * The group's committed offsets, read now: returns the events released per tenant (every
   * epoch all of whose offsets are committed), then starts a new epoch for the appends that
   * follow.
   */
  committed(positions: readonly Pick<PartitionPosition, 'partition' | 'committed'>[]): Map<string, number> {
    const committed = new Map<number, number>();
    for (const p of positions) committed.set(p.partition, p.committed);
    const released = new Map<string, number>();
    for (let i = 0; i < this.epochs.length; ) {
      const e = this.epochs[i]!;
      let done = e.counts.size > 0 || i < this.epochs.length - 1; // the open epoch, empty, stays
      for (const [p, o] of e.offsets) if ((committed.get(p) ?? 0) < o) done = false;
      if (!done) {
        i++;
        continue;
      }
      for (const [tenant, n] of e.counts) released.set(tenant, (released.get(tenant) ?? 0) + n);
      this.epochs.splice(i, 1);
    }
    this.seal();
    return released;
  }

  /** Unreleased epochs (the open one included): at most `maxEpochs`. */
  get size(): number {
    return this.epochs.length;
  }

  private seal(): void {
    const open = this.epochs[this.epochs.length - 1];
    if (!open || open.counts.size > 0) this.epochs.push(emptyEpoch());
    this.bound();
  }

  private bound(): void {
    while (this.epochs.length > Math.max(2, this.maxEpochs)) {
      // The two newest sealed epochs (the open one, last, stays open).
      const i = this.epochs.length - 3;
      const [a, b] = this.epochs.splice(i, 2) as [Epoch, Epoch];
      for (const [tenant, n] of b.counts) a.counts.set(tenant, (a.counts.get(tenant) ?? 0) + n);
      for (const [p, o] of b.offsets) if (o > (a.offsets.get(p) ?? 0)) a.offsets.set(p, o);
      this.epochs.splice(i, 0, a);
    }
  }
}

interface Epoch {
  /** Events appended per tenant. */
  counts: Map<string, number>;
  /** The highest offset written per partition. */
  offsets: Map<number, number>;
}

function emptyEpoch(): Epoch {
  return { counts: new Map(), offsets: new Map() };
}
