import type { Clock } from '../../core/clock.js';
import type { Lease } from '../../ports/log.js';
import { immediate, type SqliteDatabase } from './database.js';

/**
 * The consumer groups' leases and memberships in the embedded log (the `leases` and `members`
 * tables of the log's file; see ports/log.ts for the contract and the call order).
 *
 * A lease is a row per group and partition: its owner, a token and an expiry. Granting it
 * (to a new owner, or to one whose lease expired) bumps the token, under the write lock, so
 * two owners never hold the same token: the store's commit refuses an older token (fencing),
 * and `holds` is how the log checks a lease before a read or an ack. Releasing or expiring a
 * lease keeps its token. A membership is a row per group and owner with an expiry, renewed by
 * `join`; the live members are counted so that each aims at its fair share of partitions.
 */
export class SqliteLeases {
  private readonly stmts: ReturnType<SqliteLeases['prepare']>;

  constructor(
    private readonly db: SqliteDatabase,
    /** The clock of expiries (the log's). */
    private readonly clock: Pick<Clock, 'now'>,
  ) {
    this.stmts = this.prepare();
  }

  private prepare() {
    const db = this.db;
    return {
      join: db.prepare(
        `INSERT INTO members (grp, owner, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (grp, owner) DO UPDATE SET expires_at = excluded.expires_at`,
      ),
      expireMembers: db.prepare('DELETE FROM members WHERE grp = ? AND expires_at < ?'),
      members: db.prepare('SELECT count(*) FROM members WHERE grp = ? AND expires_at >= ?').pluck(),
      leave: db.prepare('DELETE FROM members WHERE grp = ? AND owner = ?'),
      lease: db.prepare('SELECT owner, token, expires_at FROM leases WHERE grp = ? AND p = ?'),
      insertLease: db.prepare('INSERT OR IGNORE INTO leases (grp, p, owner, token, expires_at) VALUES (?, ?, NULL, 0, 0)'),
      grant: db.prepare('UPDATE leases SET owner = ?, token = token + 1, expires_at = ? WHERE grp = ? AND p = ?'),
      renew: db.prepare('UPDATE leases SET expires_at = ? WHERE grp = ? AND p = ? AND owner = ? AND token = ?'),
      release: db.prepare('UPDATE leases SET owner = NULL, expires_at = 0 WHERE grp = ? AND p = ? AND owner = ? AND token = ?'),
      leases: db.prepare('SELECT p, owner, expires_at FROM leases WHERE grp = ?'),
    };
  }

  /** See SqliteLog.expireLeases: every live lease and membership expired, tokens kept. Answers how many leases it freed. */
  expireAll(): number {
    return immediate(this.db, () => {
      this.db.prepare('DELETE FROM members').run();
      return this.db.prepare('UPDATE leases SET owner = NULL, expires_at = 0 WHERE owner IS NOT NULL').run().changes;
    });
  }

  async acquire(group: string, partition: number, owner: string, ttlMs: number): Promise<Lease | null> {
    const now = this.clock.now();
    return immediate(this.db, () => {
      this.stmts.insertLease.run(group, partition);
      const row = this.stmts.lease.get(group, partition) as { owner: string | null; token: number; expires_at: number };
      if (row.owner !== null && row.owner !== owner && row.expires_at > now) return null;
      this.stmts.grant.run(owner, now + ttlMs, group, partition);
      return { group, partition, owner, token: row.token + 1, expiresAt: now + ttlMs };
    });
  }

  async join(group: string, owner: string, ttlMs: number): Promise<number> {
    const now = this.clock.now();
    return immediate(this.db, () => {
      this.stmts.join.run(group, owner, now + ttlMs);
      this.stmts.expireMembers.run(group, now);
      return this.stmts.members.get(group, now) as number;
    });
  }

  /** Must not throw. */
  async leave(group: string, owner: string): Promise<void> {
    try {
      this.stmts.leave.run(group, owner);
    } catch {
      // The membership expires on its own.
    }
  }

  /** Never throws: false when the lease was lost (or the file could not be written). */
  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    try {
      const expiresAt = this.clock.now() + ttlMs;
      const ok = this.stmts.renew.run(expiresAt, lease.group, lease.partition, lease.owner, lease.token).changes === 1;
      if (ok) lease.expiresAt = expiresAt;
      return ok;
    } catch {
      return false;
    }
  }

  /** Must not throw. */
  async release(lease: Lease): Promise<void> {
    try {
      this.stmts.release.run(lease.group, lease.partition, lease.owner, lease.token);
    } catch {
      // The lease expires on its own.
    }
  }

  /** Whether `lease` is still its partition's newest (same owner and token; its expiry is not looked at). */
  holds(lease: Lease): boolean {
    const row = this.stmts.lease.get(lease.group, lease.partition) as { owner: string | null; token: number } | undefined;
    return row !== undefined && row.owner === lease.owner && row.token === lease.token;
  }

  /** The owner of each of the group's partitions that has a lease row: null when its lease expired or was released. */
  owners(group: string): Map<number, string | null> {
    const owners = new Map<number, string | null>();
    const now = this.clock.now();
    for (const r of this.stmts.leases.all(group) as { p: number; owner: string | null; expires_at: number }[]) {
      owners.set(r.p, r.expires_at > now ? r.owner : null);
    }
    return owners;
  }
}
