import { partitionOf } from '../../src/core/hash.js';
import type { LogEntry } from '../../src/core/types.js';

/** A log entry for tests: `n`-th event of `tenant`, partitioned like ingest does. */
export function entry(tenant: string, n: number, partitions: number, overrides: Partial<LogEntry> = {}): LogEntry {
  const key = overrides.key ?? `user-${n % 97}`;
  return {
    tenant,
    type: 'checkout',
    key,
    idempotencyKey: `k-${n}`,
    ts: Date.UTC(2026, 10, 24, 10, 0) + n * 1000,
    receivedAt: Date.now(),
    partition: partitionOf(tenant, key, partitions),
    origin: 'live',
    properties: JSON.stringify({ amount: n }),
    context: '{}',
    ...overrides,
  };
}
