import type { AppendOutcome, LogEntry, LogRecord, Receipt, Tally } from '../core/types.js';

/**
 * The Log: a durable, partitioned, append-only sequence of records, read by consumer groups.
 *
 * Call order for a producer: `append` (any number of concurrent calls), then `close`.
 * Call order for a consumer: `acquire` a partition's lease, then repeatedly
 * `read` → (commit to the store) → `ack`, with `renew` at least every ttl/3; `release` when
 * done. A consumer whose lease expired or was taken must stop: `read`, `renew` and `ack`
 * tell it so (see each method).
 */
export interface Log {
  readonly name: string;
  readonly capabilities: LogCapabilities;

  /**
   * Appends entries durably and resolves only once they are durable (committed and synced
   * according to the configured durability). One outcome per entry, in order: `appended`
   * with its position, or `duplicate` when an entry with the same (tenant, idempotency key)
   * was appended within the dedupe horizon (`capabilities.dedupeHorizonMs`).
   * All-or-nothing: on a rejection (disk full, closed), nothing of the call is appended.
   * Rejects with SluiceError SLUICE_ERR_LOG_UNAVAILABLE (with a retry hint) when the log
   * cannot write.
   * `receipt`, when given, is added to the tallies of its tenant and minute in the same
   * transaction, with the duplicates found; it may come with no entries (every event of the
   * request was rejected).
   */
  append(entries: readonly LogEntry[], receipt?: Receipt): Promise<AppendOutcome[]>;

  /** The tallies of receipts for minutes in [from, to) (epoch ms), any tenant, unordered. */
  tallies(from: number, to: number): Promise<Tally[]>;

  /**
   * Grants `owner` the lease of `partition` in `group` for `ttlMs` if it is free, expired,
   * or already held by `owner`. Every grant gets a fencing token greater than any earlier
   * grant of that partition. Returns null when another owner holds a live lease.
   */
  acquire(group: string, partition: number, owner: string, ttlMs: number): Promise<Lease | null>;

  /**
   * Registers `owner` as a live member of `group` until `ttlMs` from now and returns how many
   * members are live, so that each can aim at its fair share of the partitions.
   */
  join(group: string, owner: string, ttlMs: number): Promise<number>;

  /** Removes `owner` from the group's live members. Must not throw. */
  leave(group: string, owner: string): Promise<void>;

  /** Extends a lease. Returns false (never throws) when the lease was lost: stop using it. */
  renew(lease: Lease, ttlMs: number): Promise<boolean>;

  /**
   * Reads up to `max` records after the group's committed offset, in offset order, and
   * persists that they were delivered before returning them, so that a record that crashes
   * the process is counted too. An empty array means the partition is caught up.
   * A delivery that was not acked makes its range suspect: it comes back in halving windows
   * (and doubling again as windows are acked), so that a record that crashes its consumer
   * ends up delivered alone. `attempt` exceeds 1 only for such a lone record: it counts how
   * many times in a row it was delivered alone without being acked.
   * Throws FencedError when the lease is no longer the partition's newest.
   */
  read(lease: Lease, max: number): Promise<LogRecord[]>;

  /**
   * The records of one partition at these offsets, in offset order, outside any consumer
   * group (no lease, no delivery marker): a rollout's repair re-derives events from them.
   * Offsets past the log's retention (pruned) are missing from the answer. `attempt` is 0.
   */
  readAt(partition: number, offsets: readonly number[]): Promise<LogRecord[]>;

  /**
   * The earliest retained offset of `partition` whose record was received at or after `time`
   * (epoch ms); null when every retained record is older (or there is none). A binary search
   * on receive times, which rise with offsets up to the clock skew between ingest processes:
   * callers seek with a margin. Kafka's `offsetsForTimes`, for one partition.
   */
  offsetForTime(partition: number, time: number): Promise<number | null>;

  /**
   * For the live tail of a process that does not append itself (a query role beside ingest
   * processes): calls `onRecord` for each record appended from now on, by any process, in each
   * partition's order, until the returned function is called (it resolves once following has
   * stopped). Outside any consumer group: nothing is acknowledged or leased. A live view, best
   * effort: records appended while the follower reconnects may be missed. Absent on logs that
   * only one process appends to (the embedded log: its ingest publishes to the tail itself).
   */
  follow?(onRecord: (record: LogRecord) => void): () => Promise<void>;

  /**
   * Marks every record up to and including `offset` as processed by the group. Call it only
   * after the store committed them. Must not throw: returns false when the lease was lost
   * (the records will be redelivered to the new owner, whose store commit skips them).
   */
  ack(lease: Lease, offset: number): Promise<boolean>;

  /** Gives the lease up so that another consumer can take it at once. Must not throw. */
  release(lease: Lease): Promise<void>;

  /** Heads and committed offsets per partition for a group: backlog and lag. */
  positions(group: string): Promise<PartitionPosition[]>;

  /**
   * Records not yet acknowledged by `group`, per tenant: the backlog a process inherits at
   * start (a scan of the backlog; not for a hot path).
   */
  backlogByTenant(group: string): Promise<Map<string, number>>;

  /**
   * Whether the dedupe ledger holds this idempotency key of the tenant: an event with it was
   * appended within the dedupe horizon, and the same key sent again is a duplicate.
   */
  seen(tenant: string, idempotencyKey: string): Promise<boolean>;

  /**
   * The receive time of the oldest record that is not yet at or below `applied[partition]`,
   * including appends still in flight; null when there is none. The watermark of a query is
   * min(this, now): every event received before it is visible in the store.
   */
  oldestUnapplied(applied: ReadonlyMap<number, number>): Promise<number | null>;

  /**
   * Whether the log can take writes now; a reason when it cannot; its size on disk, and the
   * mean size of a record appended lately (to turn a backlog into bytes), when known; and,
   * for a log that keeps its own ledger of idempotency keys, the keys it holds and the memory
   * their filters take.
   */
  health(): Promise<LogHealth>;

  /**
   * Records, durably, that this log must not be served from again (`reason`: a store filled
   * from another log was found beside it, see startWorkers): every later open refuses with it.
   * Logs whose heads can go back (`capabilities.headsNeverGoBack` false) need not have it.
   */
  markUnusable?(reason: string): Promise<void>;

  /** Flushes in-flight appends and closes. Idempotent; must not throw. */
  close(): Promise<void>;
}

/** What `Log.health` answers. */
export interface LogHealth {
  ok: boolean;
  detail?: string;
  /** The log's size on disk. */
  bytes?: number;
  /** The mean size of a record appended lately, bytes. */
  recordBytes?: number;
  /** Idempotency keys in the log's own key ledger (both generations), when it keeps one; read back at the first append after a start. */
  ledgerKeys?: number;
  /**
   * Memory held by that ledger's run filters, bytes: it grows with the keys within the dedupe
   * horizon. Keys have a filter once their tail is rewritten as a run; the tail's exact set
   * beside it (not counted) is bounded by `log.ledgerRunKeys`.
   */
  ledgerFilterBytes?: number;
}

export interface LogCapabilities {
  partitions: number;
  /** How long an idempotency key is remembered at append time; 0 = no dedupe at append. */
  dedupeHorizonMs: number;
  /**
   * Whether a partition's head never goes back, retention included (the embedded log keeps
   * heads apart from records). Then a store that applied an offset past a head was filled
   * from another log, or this one was lost or restored from an older copy: workers refuse to
   * start (see startWorkers). NATS: false (a subject whose messages all expired has no last
   * message to read its head from).
   */
  headsNeverGoBack?: boolean;
  /**
   * Whether a request's receipt (received, rejected, duplicate) is written in the same durable
   * step as its records (the embedded log: one transaction). Then a minute with more events
   * stored than received counted some twice. NATS: false (receipts are summed in memory and
   * written every second, so a crash loses up to a second of them, and its minutes then show
   * more stored than received without anything counted twice).
   */
  talliesWithRecords?: boolean;
}

export interface Lease {
  group: string;
  partition: number;
  owner: string;
  /** Fencing token: strictly greater for every new grant of the partition. */
  token: number;
  expiresAt: number;
}

export interface PartitionPosition {
  partition: number;
  /** Offset of the newest record (0 when empty). */
  head: number;
  /** Newest offset acked by the group (0 when none). */
  committed: number;
  /** Receive time of the oldest unacked record, or null when caught up. */
  oldestUnackedAt: number | null;
  owner: string | null;
  /**
   * Records after `committed` (the lag in events), given by a log whose offsets are not dense
   * per partition: on NATS an offset is the stream's sequence, shared by every partition, so
   * `head − committed` also counts the other partitions' records. Absent: `head − committed`.
   */
  pending?: number;
}
