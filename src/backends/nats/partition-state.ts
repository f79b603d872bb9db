import type { KV } from 'nats';
import { coerceError, SluiceError } from '../../core/errors.js';
import type { Lease } from '../../ports/log.js';
import type { DeliveryMarker } from '../delivery.js';

/**
 * Consumer-group state on NATS, in the `<stream>_state` KV bucket: one entry per (group,
 * partition) holding its lease, committed offset and last delivery, and one per group holding
 * its members. Every change is a compare-and-set on the entry's revision, and a lease's
 * fencing token is the revision of the write that granted it, so a consumer that lost its
 * lease cannot read, ack or renew: the check and the write are one atomic operation on the
 * server (Kleppmann, "How to do distributed locking", 2016: fencing tokens).
 */

/** One partition's state for one consumer group, in one KV entry: lease, position, last delivery. */
export interface PartitionState {
  owner: string | null;
  /** The grant's fencing token; null on the write that granted it (the token is that write's revision). */
  token: number | null;
  expiresAt: number;
  committed: number;
  delivery: DeliveryMarker | null;
}

const EMPTY: PartitionState = { owner: null, token: null, expiresAt: 0, committed: 0, delivery: null };
/** Compare-and-set attempts before a change gives up (contention, or a lease renewed meanwhile). */
export const CAS_RETRIES = 20;

/** KV keys allow a small alphabet: names go in as hex. */
function hexOf(s: string): string {
  return Buffer.from(s, 'utf8').toString('hex');
}

/** The KV key of a (group, partition)'s state entry. */
export function partitionKey(group: string, partition: number): string {
  return `p.${hexOf(group)}.${partition}`;
}

/** The KV key of a group's members entry. */
export function membersKey(group: string): string {
  return `m.${hexOf(group)}`;
}

/**
 * Writes `key` if it is still at `revision` (0: if it does not exist): the new revision, or
 * null when someone wrote first. Other failures throw.
 */
export async function writeAt(kv: KV, key: string, data: string, revision: number): Promise<number | null> {
  try {
    return revision === 0 ? await kv.create(key, data) : await kv.update(key, data, revision);
  } catch (e: unknown) {
    if (/wrong last sequence|key exists/i.test(coerceError(e).message)) return null;
    throw e;
  }
}

/** Reads `key`, applies `change` and writes it back by compare-and-set, again on a conflict. Throws after CAS_RETRIES conflicts. */
export async function casUpdate<T>(kv: KV, key: string, change: (prev: T | null) => T): Promise<void> {
  for (let i = 0; i < CAS_RETRIES; i++) {
    const e = await kv.get(key);
    const prev = e && e.operation === 'PUT' ? e.json<T>() : null;
    if ((await writeAt(kv, key, JSON.stringify(change(prev)), e?.revision ?? 0)) !== null) return;
  }
  throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `too much contention on ${key}`, { retryAfter: 1 });
}

/** Leases, positions and memberships of consumer groups, on the state bucket (see above). */
export class PartitionStates {
  /** Partition entries as this process last saw them (see get). */
  private readonly known = new Map<string, { s: PartitionState; revision: number }>();

  constructor(
    private readonly kv: KV,
    /** The clock of leases and memberships (epoch ms). */
    private readonly now: () => number,
  ) {}

  /**
   * A partition's entry. `cached`: as this process last wrote or read it, when it has, which
   * saves a round trip per read of a held partition. Safe because every write is a
   * compare-and-set on the revision: a stale entry makes the write fail, and the caller then
   * reads it afresh. Only the holder writes its entry, so for a lease still held it is current.
   */
  async get(group: string, partition: number, cached = false): Promise<{ s: PartitionState; revision: number }> {
    const key = partitionKey(group, partition);
    const known = cached ? this.known.get(key) : undefined;
    if (known) return known;
    const e = await this.kv.get(key);
    const got = !e || e.operation !== 'PUT' ? { s: EMPTY, revision: 0 } : { s: e.json<PartitionState>(), revision: e.revision };
    this.known.set(key, got);
    return got;
  }

  /** Whether `lease` is the one `s` (at `revision`) grants. */
  holds(lease: Lease, s: PartitionState, revision: number): boolean {
    return s.owner === lease.owner && (s.token ?? revision) === lease.token;
  }

  /** Writes a new state if the entry is still at `revision`; the new revision, or null when someone wrote first. */
  async put(group: string, partition: number, s: PartitionState, revision: number): Promise<number | null> {
    const key = partitionKey(group, partition);
    this.known.delete(key);
    const next = await writeAt(this.kv, key, JSON.stringify(s), revision);
    if (next !== null) this.known.set(key, { s, revision: next });
    return next;
  }

  /** A lease on the partition for `ttlMs`, unless another owner holds an unexpired one (null). */
  async acquire(group: string, partition: number, owner: string, ttlMs: number): Promise<Lease | null> {
    for (let i = 0; i < CAS_RETRIES; i++) {
      const now = this.now();
      const { s, revision } = await this.get(group, partition);
      if (s.owner !== null && s.owner !== owner && s.expiresAt > now) return null;
      const token = await this.put(group, partition, { ...s, owner, token: null, expiresAt: now + ttlMs }, revision);
      if (token !== null) return { group, partition, owner, token, expiresAt: now + ttlMs };
    }
    return null;
  }

  /** Applies `change` to the lease's entry if the lease still holds; false when it was lost. */
  async withLease(lease: Lease, change: (s: PartitionState) => PartitionState): Promise<boolean> {
    for (let i = 0; i < CAS_RETRIES; i++) {
      const { s, revision } = await this.get(lease.group, lease.partition, i === 0);
      if (!this.holds(lease, s, revision)) return false;
      if ((await this.put(lease.group, lease.partition, { ...change(s), token: lease.token }, revision)) !== null) return true;
    }
    return false;
  }

  // KV key listings are not read-your-writes in this client: a group's members share one
  // entry, changed by compare-and-set, instead of one key each.
  /** Adds or refreshes `owner` in the group for `ttlMs`: the number of live members. */
  async join(group: string, owner: string, ttlMs: number): Promise<number> {
    let live = 0;
    await casUpdate(this.kv, membersKey(group), (prev: Record<string, number> | null) => {
      const now = this.now();
      const members: Record<string, number> = {};
      for (const [o, expiresAt] of Object.entries(prev ?? {})) if (expiresAt > now) members[o] = expiresAt;
      members[owner] = now + ttlMs;
      live = Object.keys(members).length;
      return members;
    });
    return live;
  }

  /** Removes `owner` from the group (its entry would expire by itself). */
  async leave(group: string, owner: string): Promise<void> {
    await casUpdate(this.kv, membersKey(group), (prev: Record<string, number> | null) => {
      const members = { ...prev };
      delete members[owner];
      return members;
    }).catch(() => undefined);
  }
}
