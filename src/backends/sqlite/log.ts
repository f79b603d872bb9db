import { systemClock, type Clock } from '../../core/clock.js';
import fs from 'node:fs';
import { coerceError, FencedError, SluiceError } from '../../core/errors.js';
import type { AppendOutcome, LogEntry, LogRecord, Receipt, Tally } from '../../core/types.js';
import type { Lease, Log, LogCapabilities, LogHealth, PartitionPosition } from '../../ports/log.js';
import { immediate, openDatabase, type Fsync, type SqliteDatabase } from './database.js';
import { openPositions, positionsFile } from './positions.js';
import { replayDedupeKey } from '../../core/hash.js';
import { deliveryWindow } from '../delivery.js';
import { OFFSET_SPAN, packTraceparent, RANGE_SQL, recordId, toRecord, type RecordRow } from './records.js';
import { KeyLedger } from './ledger.js';
import { APPEND_BUSY_MS, withBusyTimeout } from './busy.js';
import { GroupCommit, type Pending } from './group-commit.js';
import { searchOffsetForTime } from '../offset-for-time.js';
import { SqliteLeases } from './leases.js';
import { canWriteAgain, markUnusable, refuseIfUnusable } from './log-condition.js';

export interface SqliteLogOptions {
  file: string;
  partitions: number;
  fsync: Fsync;
  /** How long idempotency keys are remembered at append time (the dedupe horizon). */
  dedupeHorizonMs: number;
  /** How long acked records are kept (for lineage and re-reading), after which they are pruned. */
  retentionMs: number;
  /** Cap on entries written by one group commit. */
  maxGroupCommit?: number;
  /** The clock of leases, memberships, retention and the dedupe horizon (the system clock by default). */
  clock?: Pick<Clock, 'now'>;
  /** Called after each group commit that appended records (to wake consumers). Must not throw. */
  onFlush?: () => void;
  /** Keys per ledger tail before it is rewritten as a sorted run (see KeyLedger; tests set it small). */
  ledgerTailKeys?: number;
}

/**
 * The embedded log on SQLite (WAL).
 *
 * Appends are group-committed: every append that arrives while the event loop is busy is
 * written by one transaction (one fsync) on the next turn, and each caller's promise
 * resolves after that commit (group-commit.ts; a group that finds the write lock taken waits
 * for it off the event loop, busy.ts). The dedupe ledger lives in the same transaction as the
 * records, in generations of one horizon each (`ledger_<n>`): a key is checked against the
 * current and the previous generation, so keys are remembered for between one and two
 * horizons, and expiring a generation is a DROP TABLE instead of millions of deletes.
 */
export class SqliteLog implements Log {
  readonly name = 'sqlite';
  readonly capabilities: LogCapabilities;
  private readonly db: SqliteDatabase;
  /** The consumer groups' committed offsets and delivery markers: a file of their own (see positions.ts). */
  private readonly pos: SqliteDatabase;
  private readonly opts: Required<SqliteLogOptions>;
  /** Appends waiting for their group commit (see group-commit.ts). */
  private readonly groups: GroupCommit;
  private closed = false;
  /** Moving mean of appended record sizes (bytes, approximate); 0 until the first appends. */
  private recordBytes = 0;
  private readonly stmts: ReturnType<SqliteLog['prepare']>;
  private readonly ledger: KeyLedger;
  private ledgerScheduled = false;
  /** The consumer groups' leases and memberships (see leases.ts). */
  private readonly leases: SqliteLeases;

  constructor(options: SqliteLogOptions) {
    // Field by field: an option passed as undefined must not erase its default.
    this.opts = {
      ...options,
      maxGroupCommit: options.maxGroupCommit ?? 20_000,
      ledgerTailKeys: options.ledgerTailKeys ?? 32_768,
      clock: options.clock ?? systemClock,
      onFlush: options.onFlush ?? (() => undefined),
    };
    this.capabilities = { partitions: options.partitions, dedupeHorizonMs: options.dedupeHorizonMs, headsNeverGoBack: true, talliesWithRecords: true };
    this.db = openDatabase(options.file, { fsync: options.fsync, integrityCheck: true });
    try {
      this.pos = openPositions(positionsFile(options.file), this.db, options.fsync);
    } catch (e: unknown) {
      this.db.close();
      throw e;
    }
    try {
      refuseIfUnusable(this.db, options.file);
    } catch (e: unknown) {
      this.pos.close();
      this.db.close();
      throw e;
    }
    this.checkPartitions();
    this.stmts = this.prepare();
    this.leases = new SqliteLeases(this.db, this.opts.clock);
    this.ledger = new KeyLedger(this.db, { horizonMs: options.dedupeHorizonMs, tailKeys: this.opts.ledgerTailKeys });
    this.groups = new GroupCommit(this.db, {
      maxGroupCommit: this.opts.maxGroupCommit,
      write: (group) => this.write(group),
      committed: () => this.ledger.commit(),
      rolledBack: () => this.ledger.rollback(),
      onFlush: this.opts.onFlush,
      idle: () => this.scheduleLedgerWork(),
      now: () => this.opts.clock.now(),
    });
  }

  private checkPartitions(): void {
    const row = this.db.prepare(`SELECT v FROM meta WHERE k = 'partitions'`).get() as { v: string } | undefined;
    if (!row) {
      immediate(this.db, () => {
        this.db.prepare(`INSERT OR IGNORE INTO meta (k, v) VALUES ('partitions', ?)`).run(String(this.opts.partitions));
        const insert = this.db.prepare('INSERT OR IGNORE INTO heads (p, head) VALUES (?, 0)');
        for (let p = 0; p < this.opts.partitions; p++) insert.run(p);
      });
      return this.checkPartitions();
    }
    if (Number(row.v) !== this.opts.partitions) {
      throw new SluiceError(
        'SLUICE_ERR_CONFIG',
        `the log in ${this.opts.file} was created with ${row.v} partitions, not ${this.opts.partitions}: ` +
          `start with --partitions ${row.v}, or use a new data directory`,
        { field: 'partitions' },
      );
    }
  }

  private prepare() {
    const db = this.db;
    const pos = this.pos;
    return {
      heads: db.prepare('SELECT p, head FROM heads'),
      tally: db.prepare(
        `INSERT INTO tallies (tenant, minute, received, rejected, duplicate) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (tenant, minute) DO UPDATE SET received = received + excluded.received,
           rejected = rejected + excluded.rejected, duplicate = duplicate + excluded.duplicate`,
      ),
      tallies: db.prepare('SELECT tenant, minute, received, rejected, duplicate FROM tallies WHERE minute >= ? AND minute < ?'),
      pruneTallies: db.prepare('DELETE FROM tallies WHERE minute < ?'),
      head: db.prepare('SELECT head FROM heads WHERE p = ?').pluck(),
      setHead: db.prepare('UPDATE heads SET head = ? WHERE p = ?'),
      insert: db.prepare(
        `INSERT INTO records (id, tenant, type, key, idem, ts, received_at, origin, properties, context, trace, fault, gen)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      committed: pos.prepare('SELECT committed FROM offsets WHERE grp = ? AND p = ?'),
      setCommitted: pos.prepare(
        `INSERT INTO offsets (grp, p, committed) VALUES (?, ?, ?)
         ON CONFLICT (grp, p) DO UPDATE SET committed = max(committed, excluded.committed)`,
      ),
      delivery: pos.prepare('SELECT from_o, to_o, win, attempts FROM deliveries WHERE grp = ? AND p = ?'),
      setDelivery: pos.prepare(
        `INSERT INTO deliveries (grp, p, from_o, to_o, win, attempts) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (grp, p) DO UPDATE SET from_o = excluded.from_o, to_o = excluded.to_o, win = excluded.win, attempts = excluded.attempts`,
      ),
      clearDelivery: pos.prepare('DELETE FROM deliveries WHERE grp = ? AND p = ? AND to_o <= ?'),
      range: db.prepare(RANGE_SQL).raw(true),
      receivedAt: db.prepare('SELECT received_at FROM records WHERE id = ?'),
      firstFrom: db.prepare(`SELECT id & ${OFFSET_SPAN - 1} AS o, received_at AS at FROM records WHERE id BETWEEN ? AND ? ORDER BY id LIMIT 1`),
      first: db.prepare('SELECT min(id) FROM records WHERE id BETWEEN ? AND ?').pluck(),
      offsets: pos.prepare('SELECT p, committed FROM offsets WHERE grp = ?'),
      minCommitted: pos.prepare('SELECT min(committed) AS c, count(*) AS n FROM offsets WHERE p = ?'),
      // Only the oldest `limit` acked records of a partition are looked at, and those past the
      // retention deleted: a pass costs `limit` rows, however large the log. (Filtering on
      // received_at inside the range read every acked record on every pass: 2.6 s of blocked
      // event loop with 20M records.)
      prune: db.prepare(
        `DELETE FROM records WHERE id IN (
           SELECT id FROM records WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?) AND received_at < ?`,
      ),
    };
  }

  // ---- append ---------------------------------------------------------------------------

  append(entries: readonly LogEntry[], receipt?: Receipt): Promise<AppendOutcome[]> {
    if (this.closed) return Promise.reject(new SluiceError('SLUICE_ERR_SHUTTING_DOWN', 'the log is closed', { retryAfter: 1 }));
    if (entries.length === 0 && !receipt?.received) return Promise.resolve([]);
    return this.groups.push(entries, receipt);
  }

  /** The ledger's background work (runs written and merged), one step per turn of the event loop, between appends. */
  private scheduleLedgerWork(): void {
    if (this.ledgerScheduled || this.closed || !this.ledger.pending) return;
    this.ledgerScheduled = true;
    setImmediate(() => {
      this.ledgerScheduled = false;
      if (this.closed) return;
      try {
        // Like an append, it does not wait for a lock held elsewhere on the event loop (busy.ts).
        if (withBusyTimeout(this.db, APPEND_BUSY_MS, () => this.ledger.maintain())) this.scheduleLedgerWork();
      } catch {
        // Busy or out of space: the work is retried after the next append; lookups stay exact meanwhile.
      }
    });
  }

  /** Runs the ledger's background work to the end (tests, benchmarks). */
  compactLedger(): void {
    while (this.ledger.maintain());
  }

  /** The ledger's sizes: tails, runs, keys and filter memory. */
  ledgerStats(): ReturnType<KeyLedger['stats']> {
    return this.ledger.stats();
  }

  /** Inside the append transaction: dedupe, assign offsets, insert. */
  private write(group: Pending[]): AppendOutcome[][] {
    const now = this.opts.clock.now();
    const ledger = this.ledger;
    ledger.begin(now);
    const heads = new Map<number, number>();
    for (const row of this.stmts.heads.iterate() as Iterable<{ p: number; head: number }>) heads.set(row.p, row.head);
    const touched = new Set<number>();
    const out: AppendOutcome[][] = [];
    const insert = this.stmts.insert;
    // The entries of one request share their traceparent: encode it once.
    let traceText: string | undefined;
    let traceBlob: Buffer | null = null;
    for (const { entries, receipt } of group) {
      const outcomes: AppendOutcome[] = new Array(entries.length);
      let duplicates = 0;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        const dedupeKey = e.replay === undefined ? e.idempotencyKey : replayDedupeKey(e.idempotencyKey, e.replay);
        if (!ledger.claim(e.tenant, dedupeKey)) {
          outcomes[i] = { status: 'duplicate' };
          duplicates++;
          continue;
        }
        const offset = (heads.get(e.partition) ?? 0) + 1;
        heads.set(e.partition, offset);
        touched.add(e.partition);
        if (e.trace !== traceText) {
          traceText = e.trace;
          traceBlob = packTraceparent(e.trace);
        }
        // A moving mean of the record size (its variable part), sampled: backlog in bytes.
        if ((offset & 63) === 0 || this.recordBytes === 0) {
          const size = e.properties.length + e.context.length + e.type.length + e.key.length + e.idempotencyKey.length + 48;
          this.recordBytes = this.recordBytes === 0 ? size : this.recordBytes + 0.05 * (size - this.recordBytes);
        }
        insert.run(recordId(e.partition, offset), e.tenant, e.type, e.key, e.idempotencyKey, e.ts, e.receivedAt, e.origin, e.properties, e.context, traceBlob,
          e.fault ? JSON.stringify(e.fault) : null, e.replay ?? null);
        outcomes[i] = { status: 'appended', partition: e.partition, offset };
      }
      if (receipt) {
        const minute = receipt.receivedAt - (receipt.receivedAt % 60_000);
        this.stmts.tally.run(receipt.tenant, minute, receipt.received, receipt.rejected, duplicates);
      }
      out.push(outcomes);
    }
    for (const p of touched) this.stmts.setHead.run(heads.get(p)!, p);
    return out;
  }

  async seen(tenant: string, idempotencyKey: string): Promise<boolean> {
    return this.ledger.seen(tenant, idempotencyKey, this.opts.clock.now());
  }

  // ---- leases (see leases.ts) ----------------------------------------------------------

  /**
   * Expires every live lease and membership (tokens are kept, so fencing still holds).
   * Only for a process that knows it is the log's sole user, as `sluice up` does under its
   * data-dir lock. Returns how many leases it freed.
   */
  expireLeases(): number {
    return this.leases.expireAll();
  }

  acquire(group: string, partition: number, owner: string, ttlMs: number): Promise<Lease | null> {
    return this.leases.acquire(group, partition, owner, ttlMs);
  }

  join(group: string, owner: string, ttlMs: number): Promise<number> {
    return this.leases.join(group, owner, ttlMs);
  }

  /** Must not throw. */
  leave(group: string, owner: string): Promise<void> {
    return this.leases.leave(group, owner);
  }

  renew(lease: Lease, ttlMs: number): Promise<boolean> {
    return this.leases.renew(lease, ttlMs);
  }

  /** Must not throw. */
  release(lease: Lease): Promise<void> {
    return this.leases.release(lease);
  }

  // ---- read and ack ---------------------------------------------------------------------

  async read(lease: Lease, max: number): Promise<LogRecord[]> {
    // The write transaction only decides the window and persists the delivery marker; the
    // records are read after it, so that appends never wait for a large read. They cannot
    // change meanwhile: records are immutable, and retention deletes only acknowledged ones.
    //
    // The lease and the head are read from the log's file, the offset and the marker written
    // in the positions file (see positions.ts): a read never takes the write lock that appends
    // need. A lease lost between the check and the marker is the same case as a lease lost
    // just after a read: the new owner sees the marker and treats the range as suspect.
    if (!this.leases.holds(lease)) throw new FencedError(`lease on partition ${lease.partition} was lost (token ${lease.token})`);
    const head = (this.stmts.head.get(lease.partition) as number | undefined) ?? 0;
    const window = immediate(this.pos, () => {
      const { group, partition } = lease;
      let committed = (this.stmts.committed.get(group, partition) as { committed: number } | undefined)?.committed ?? 0;
      // A position older than the oldest record retention left (a new group, or positions
      // that came back older after a power loss: see positions.ts) moves up to it: offsets
      // are contiguous from there, and a window inside the pruned range would read nothing.
      const first = this.stmts.first.get(recordId(partition, committed + 1), recordId(partition, OFFSET_SPAN - 1)) as number | null | undefined;
      if (first != null) committed = Math.max(committed, (first % OFFSET_SPAN) - 1);
      const start = committed + 1;
      if (head < start) return null;
      const marker = this.stmts.delivery.get(group, partition) as { from_o: number; to_o: number; win: number; attempts: number } | undefined;
      const w = deliveryWindow(marker && { from: marker.from_o, to: marker.to_o, win: marker.win, attempts: marker.attempts }, start, max);
      // Offsets are contiguous: a window's record count is its offset span.
      const to = w.to ?? start + Math.min(w.win, head - start + 1) - 1;
      const win = Math.min(w.win, to - start + 1);
      const { attempts, suspect } = w;
      const end = Math.min(head, start + win - 1);
      this.stmts.setDelivery.run(group, partition, start, to, win, attempts);
      return { start, end, attempts, suspect };
    });
    if (!window) return [];
    const rows = this.stmts.range.all(recordId(lease.partition, window.start), recordId(lease.partition, window.end)) as RecordRow[];
    const out = new Array<LogRecord>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = toRecord(rows[i]!, window.attempts, window.suspect);
    return out;
  }

  async readAt(partition: number, offsets: readonly number[]): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    for (const o of [...offsets].sort((a, b) => a - b)) {
      const row = this.stmts.range.get(recordId(partition, o), recordId(partition, o)) as RecordRow | undefined;
      if (row) out.push(toRecord(row, 0, false));
    }
    return out;
  }

  async offsetForTime(partition: number, time: number): Promise<number | null> {
    const end = recordId(partition, OFFSET_SPAN - 1);
    const from = (o: number) => this.stmts.firstFrom.get(recordId(partition, o), end) as { o: number; at: number } | undefined;
    return searchOffsetForTime(from(0)?.o ?? null, (this.stmts.head.get(partition) as number | undefined) ?? 0, time, async (o) => from(o) ?? null);
  }

  /** Must not throw. */
  async ack(lease: Lease, offset: number): Promise<boolean> {
    try {
      // A lease lost between the check and the write: the records up to `offset` were
      // committed to the store under this lease's token (acks follow commits), so moving the
      // offset (never backwards: max) tells the new owner nothing false.
      if (!this.leases.holds(lease)) return false;
      return immediate(this.pos, () => {
        this.stmts.setCommitted.run(lease.group, lease.partition, offset);
        this.stmts.clearDelivery.run(lease.group, lease.partition, offset);
        return true;
      });
    } catch {
      return false;
    }
  }

  async tallies(from: number, to: number): Promise<Tally[]> {
    return this.stmts.tallies.all(from, to) as Tally[];
  }

  // ---- positions, watermark, health -------------------------------------------------------

  async positions(group: string): Promise<PartitionPosition[]> {
    const committed = new Map<number, number>();
    for (const r of this.stmts.offsets.all(group) as { p: number; committed: number }[]) committed.set(r.p, r.committed);
    const owners = this.leases.owners(group);
    const out: PartitionPosition[] = [];
    for (const { p, head } of this.stmts.heads.all() as { p: number; head: number }[]) {
      const c = committed.get(p) ?? 0;
      const oldest = head > c ? ((this.stmts.receivedAt.pluck().get(recordId(p, c + 1)) as number | undefined) ?? null) : null;
      out.push({ partition: p, head, committed: c, oldestUnackedAt: oldest, owner: owners.get(p) ?? null });
    }
    return out;
  }

  async backlogByTenant(group: string): Promise<Map<string, number>> {
    const committed = new Map<number, number>();
    for (const r of this.stmts.offsets.all(group) as { p: number; committed: number }[]) committed.set(r.p, r.committed);
    const count = this.db.prepare('SELECT tenant, count(*) AS n FROM records WHERE id > ? AND id <= ? GROUP BY tenant');
    const out = new Map<string, number>();
    for (const { p, head } of this.stmts.heads.all() as { p: number; head: number }[]) {
      const c = committed.get(p) ?? 0;
      if (head <= c) continue;
      for (const { tenant, n } of count.all(recordId(p, c), recordId(p, head)) as { tenant: string; n: number }[]) out.set(tenant, (out.get(tenant) ?? 0) + n);
    }
    return out;
  }

  async oldestUnapplied(applied: ReadonlyMap<number, number>): Promise<number | null> {
    let oldest: number | null = null;
    for (const p of this.groups.pending) {
      for (const e of p.entries) if (oldest === null || e.receivedAt < oldest) oldest = e.receivedAt;
    }
    for (const { p, head } of this.stmts.heads.all() as { p: number; head: number }[]) {
      const a = applied.get(p) ?? 0;
      if (head <= a) continue;
      const at = this.stmts.receivedAt.pluck().get(recordId(p, a + 1)) as number | undefined;
      if (at !== undefined && (oldest === null || at < oldest)) oldest = at;
    }
    return oldest;
  }

  async health(): Promise<LogHealth> {
    if (this.closed) return { ok: false, detail: 'closed' };
    try {
      this.db.prepare('SELECT 1').get();
      let bytes = 0;
      for (const f of [this.opts.file, `${this.opts.file}-wal`]) bytes += await fs.promises.stat(f).then((s) => s.size, () => 0);
      const ledger = this.ledger.stats();
      const sizes = { bytes, ledgerKeys: ledger.tailKeys + ledger.runKeys, ledgerFilterBytes: ledger.filterBytes };
      let failing = this.groups.failure;
      // Appends failed: asked of the disk whether they could succeed now (log-condition.ts).
      if (failing && (await canWriteAgain(this.db, this.opts.file, failing.message, this.opts.clock.now()))) failing = this.groups.failure = null;
      if (failing) return { ok: false, detail: `appends fail since ${new Date(failing.at).toISOString()}: ${failing.message}`, ...sizes };
      return { ok: true, ...sizes, ...(this.recordBytes > 0 ? { recordBytes: Math.round(this.recordBytes) } : {}) };
    } catch (e: unknown) {
      return { ok: false, detail: coerceError(e).message };
    }
  }

  async markUnusable(reason: string): Promise<void> {
    markUnusable(this.db, reason, this.opts.clock.now());
  }

  /**
   * Deletes acked records older than the retention, at most `limit` per partition per call,
   * so that one call never holds the write lock for long. Says how many it deleted and
   * whether a partition had more to delete than the limit (the log is behind its retention:
   * see `startRetention`).
   */
  prune(limit = 1_000): { deleted: number; behind: boolean } {
    const cutoff = this.opts.clock.now() - this.opts.retentionMs;
    // Tallies are kept as long as keys are: the conservation check looks back less far.
    this.stmts.pruneTallies.run(this.opts.clock.now() - this.opts.dedupeHorizonMs);
    let deleted = 0;
    let behind = false;
    for (let p = 0; p < this.opts.partitions; p++) {
      const row = this.stmts.minCommitted.get(p) as { c: number | null; n: number };
      if (!row.n || row.c === null || row.c <= 0) continue;
      const n = this.stmts.prune.run(recordId(p, 1), recordId(p, row.c), limit, cutoff).changes;
      deleted += n;
      behind ||= n === limit;
    }
    return { deleted, behind };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.groups.close();
    this.closed = true;
    try {
      this.pos.close();
      this.db.close();
    } catch {
      // Closing twice or after a fatal I/O error: nothing left to release.
    }
  }
}
