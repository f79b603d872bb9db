import { partitionOf } from '../../src/core/hash.js';
import type { LogEntry, LogRecord } from '../../src/core/types.js';

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

/** A record as a worker reads it (one partition, offset n + 1, first attempt): the `n`-th event of `tenant`, with `overrides` over it. */
export function record(tenant: string, n: number, overrides: Partial<LogRecord> = {}): LogRecord {
  return { ...entry(tenant, n, 1), offset: n + 1, attempt: 1, suspect: false, ...overrides } as LogRecord;
}
