import { describe, expect, it } from 'vitest';
import { CommittedBacklog } from '../../src/ingest/committed-backlog.js';
import type { AppendOutcome } from '../../src/core/types.js';

const at = (...po: [number, number][]): AppendOutcome[] => po.map(([partition, offset]) => ({ status: 'appended', partition, offset }));
const committed = (...c: number[]) => c.map((committed, partition) => ({ partition, committed }));

describe('CommittedBacklog: what an ingest process appended, released by the worker group\'s committed offsets', () => {
  it('committed-backlog.releases-an-epoch-only-once-every-partition-it-wrote-is-committed', () => {
    const b = new CommittedBacklog();
    b.appended('a', at([0, 10], [1, 5], [0, 11]));
    b.appended('b', [...at([1, 6]), { status: 'duplicate' }]);
    // The first refresh seals the epoch: nothing committed yet.
    expect(b.committed(committed(0, 0))).toEqual(new Map());
    expect(b.committed(committed(11, 5))).toEqual(new Map()); // partition 1 not past 6
    expect(b.committed(committed(11, 6))).toEqual(new Map([['a', 3], ['b', 1]]));
    expect(b.committed(committed(11, 6))).toEqual(new Map());
  });

  it('committed-backlog.a-stalled-partition-holds-only-the-epochs-that-wrote-to-it', () => {
    const b = new CommittedBacklog();
    b.appended('a', at([0, 1]));
    b.committed(committed(0, 0));
    b.appended('b', at([1, 1]));
    b.committed(committed(0, 0));
    // Partition 0 is stalled: b's epoch, on partition 1 alone, is released all the same.
    expect(b.committed(committed(0, 1))).toEqual(new Map([['b', 1]]));
    expect(b.committed(committed(1, 1))).toEqual(new Map([['a', 1]]));
  });

  it('committed-backlog.a-backlog-inherited-at-start-goes-first-and-waits-for-the-heads-it-was-counted-below', () => {
    const b = new CommittedBacklog();
    b.appended('a', at([0, 101]));
    b.inherit(new Map([['a', 40], ['c', 60]]), [{ partition: 0, head: 100 }, { partition: 1, head: 7 }]);
    expect(b.committed(committed(100, 6))).toEqual(new Map());
    expect(b.committed(committed(100, 7))).toEqual(new Map([['a', 40], ['c', 60]]));
    expect(b.committed(committed(101, 7))).toEqual(new Map([['a', 1]]));
  });

  it('committed-backlog.holds-at-most-max-epochs-however-long-the-workers-are-away-and-loses-no-count', () => {
    const b = new CommittedBacklog(8);
    for (let i = 1; i <= 1_000; i++) {
      b.appended(i % 2 ? 'a' : 'b', at([i % 3, i]));
      b.committed(committed(0, 0, 0));
      expect(b.size).toBeLessThanOrEqual(8);
    }
    expect(b.committed(committed(1_000, 1_000, 1_000))).toEqual(new Map([['a', 500], ['b', 500]]));
    expect(b.size).toBe(1);
  });

  it('committed-backlog.workers-steadily-more-than-max-epochs-behind-still-release-what-they-passed', () => {
    // One append a refresh; the workers always commit what was appended 20 refreshes earlier.
    const b = new CommittedBacklog(8);
    let released = 0;
    for (let i = 1; i <= 2_000; i++) {
      b.appended('a', at([0, i]));
      const c = Math.max(0, i - 20);
      released += b.committed(committed(c)).get('a') ?? 0;
      expect(b.size).toBeLessThanOrEqual(8);
      // Never released before committed; never more than a bounded distance behind it.
      expect(released).toBeLessThanOrEqual(c);
      if (i > 100) expect(released).toBeGreaterThan(c - 200);
    }
  });
});
