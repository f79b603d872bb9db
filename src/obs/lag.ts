import type { Log, PartitionPosition } from '../ports/log.js';
import { WORKER_GROUP } from '../worker/workers.js';

/** Backlog, lag and freshness from the log's positions: what /metrics and /v1/status report. */
export function lagOf(positions: readonly PartitionPosition[], now: number) {
  let backlog = 0;
  let oldest: number | null = null;
  const partitions = positions.map((p) => {
    const lagEvents = p.pending ?? Math.max(0, p.head - p.committed);
    backlog += lagEvents;
    if (p.oldestUnackedAt !== null && (oldest === null || p.oldestUnackedAt < oldest)) oldest = p.oldestUnackedAt;
    return { ...p, lagEvents, lagSeconds: p.oldestUnackedAt === null ? 0 : Math.max(0, now - p.oldestUnackedAt) / 1000 };
  });
  const watermark = oldest ?? now;
  return { partitions, backlog, watermark, freshnessSeconds: Math.max(0, now - watermark) / 1000 };
}

/** The live consumer group's positions on every partition. */
export function positionsOf(log: Log): Promise<PartitionPosition[]> {
  return log.positions(WORKER_GROUP);
}
