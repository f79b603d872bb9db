import type { GroupState, GroupStatus } from '../core/dlq-lifecycle.js';
import type { DeadLetter, Fault, MinuteCount } from '../core/types.js';

/**
 * The dead-letter store: one place for every event that could not be stored — refused by its
 * schema at the door, poison in a worker, too late, failed by an enricher, or held while a
 * tenant's breaker was open — with its original payload, so that it can be fixed and
 * replayed.
 *
 * An entry is identified by (tenant, idempotency key) and moves through these states:
 *
 *   open ──replay──► replayed ──(fails again)──► open …
 *   held ──resume──► replayed
 *   open | held ──discard──► discarded
 *
 * Each replay gives the entry a new generation (`replays`). A failure reported for an
 * older generation than the entry's is stale (a redelivery of an earlier attempt) and is
 * ignored, so a resolved entry is never reopened by a late duplicate.
 */
export interface DeadLetterStore {
  /**
   * Records entries (upsert by tenant and idempotency key) as `open`, `held` for the
   * breaker, or `discarded` for events a transform's `drop` step dropped on purpose (kept
   * so that they are counted and can be looked up). A record whose replay generation is
   * older than the entry's is ignored.
   */
  record(entries: readonly DeadLetter[], status?: 'open' | 'held' | 'discarded'): Promise<void>;

  /** Entries matching the filter, newest first, a page at a time (`cursor` from the previous page; null at the end). */
  list(tenant: string, filter: DeadLetterFilter, limit: number, cursor?: string | null): Promise<DeadLetterPage>;

  /** One entry, whatever its state; null when there is none. */
  get(tenant: string, idempotencyKey: string): Promise<DeadLetterRow | null>;

  /** Open entries grouped by error signature (reason + field + message template), largest first, with samples. */
  groups(tenant: string, filter: DeadLetterFilter, limit: number): Promise<DeadLetterGroup[]>;

  /** Open and held entries of a tenant, per reason. */
  counts(tenant: string): Promise<Record<string, number>>;

  /** Entries that are not replayed, per tenant and minute of their receipt by ingest, for minutes in [from, to). */
  byMinute(from: number, to: number): Promise<MinuteCount[]>;

  /**
   * Marks open or held entries replayed as generation `generation`, each if it is still at
   * generation `generation - 1`, in one transaction. Per entry, false when someone else
   * replayed or changed it first.
   */
  markReplayed(tenant: string, entries: readonly { idempotencyKey: string; generation: number }[]): Promise<boolean[]>;

  /** Entries that failed again before they could be re-injected (replay re-validation): new reason, still open. */
  refail(tenant: string, entries: readonly { idempotencyKey: string; fault: Fault }[]): Promise<void>;

  /** Marks open or held entries matching the filter discarded; returns how many. */
  discard(tenant: string, filter: DeadLetterFilter, limit: number): Promise<number>;

  /** The lifecycle states of groups (see core/dlq-lifecycle.ts) by signature; a group never changed is absent (open). */
  groupStates(tenant: string, signatures: readonly string[]): Promise<Map<string, GroupState>>;

  /**
   * Changes a group's lifecycle state in one transaction: reads it (open when absent), applies
   * `change` (throws SLUICE_ERR_CONFLICT for a move the lifecycle does not have), appends to
   * its history and to the audit log.
   */
  updateGroup(tenant: string, signature: string, change: { status?: GroupStatus; owner?: string | null; note?: string | null }, actor: string): Promise<GroupState>;
}

export type DeadLetterStatus = 'open' | 'held' | 'replayed' | 'discarded';

export interface DeadLetterFilter {
  ids?: readonly string[];
  type?: string;
  reason?: string;
  signature?: string;
  /** Last seen in [from, to) (epoch ms). */
  from?: number;
  to?: number;
  /** Defaults to open and held. */
  status?: readonly DeadLetterStatus[];
}

export interface DeadLetterRow {
  tenant: string;
  type: string;
  idempotencyKey: string;
  reason: string;
  message: string;
  /** JSON pointer to the field at fault ("" when none). */
  path: string;
  schemaVersion: number | null;
  signature: string;
  status: DeadLetterStatus;
  attempts: number;
  /** How many times it was replayed. */
  replays: number;
  partition: number;
  offset: number;
  receivedAt: number;
  firstSeen: number;
  lastSeen: number;
  origin: string;
  /** The event as the producer sent it (type, key, ts, idempotency_key, properties, context). */
  payload: string;
}

export interface DeadLetterPage {
  entries: DeadLetterRow[];
  cursor: string | null;
}

export interface DeadLetterGroup {
  signature: string;
  reason: string;
  path: string;
  template: string;
  count: number;
  firstSeen: number;
  lastSeen: number;
  types: string[];
  samples: DeadLetterRow[];
}
