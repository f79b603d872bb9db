import { coerceError, SluiceError } from '../../core/errors.js';
import type { AppendOutcome, LogEntry, Receipt } from '../../core/types.js';
import { APPEND_BUSY_MS, BUSY_WAIT_MS, busyBackoff, isBusy, withBusyTimeout } from './busy.js';
import { immediate, type SqliteDatabase } from './database.js';

/** An append waiting for its group commit. */
export interface Pending {
  entries: readonly LogEntry[];
  receipt: Receipt | undefined;
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (e: Error) => void;
}

export interface GroupCommitOptions {
  /** Most entries in one group commit (one transaction, one fsync). */
  maxGroupCommit: number;
  /** Inside the write transaction: writes a group, answering each append's outcomes. */
  write: (group: Pending[]) => AppendOutcome[][];
  /** After a committed group (the ledger keeps what it claimed). */
  committed: () => void;
  /** After a group that did not commit (the ledger forgets what it claimed). */
  rolledBack: () => void;
  /** After each group commit that resolved its appends. Must not throw. */
  onFlush: () => void;
  /** After each flush, with nothing left pending (the ledger's background work). */
  idle: () => void;
  /** The time of a failure as readiness reports it (epoch ms). */
  now: () => number;
}

/**
 * Group commit for the embedded log: every append that arrives while the event loop is busy
 * is written by one transaction (one fsync) on the next turn, and each caller's promise
 * resolves after that commit. A group that finds the write lock taken waits for it off the
 * event loop (see busy.ts); a group that fails is refused with SLUICE_ERR_LOG_UNAVAILABLE
 * (retry after 1 s, 5 s when the disk is full), and nothing of it is written.
 */
export class GroupCommit {
  /** Appends not yet committed, oldest first. */
  readonly pending: Pending[] = [];
  /** The last group commit's failure, until one succeeds (readiness reports it). */
  failure: { at: number; message: string } | null = null;
  private scheduled = false;
  private closed = false;
  /** A group waiting for the write lock: since when (performance.now() ms), attempts, the next one's timer. */
  private busy: { since: number; attempts: number; timer: NodeJS.Timeout | null } | null = null;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly opts: GroupCommitOptions,
  ) {}

  push(entries: readonly LogEntry[], receipt: Receipt | undefined): Promise<AppendOutcome[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ entries, receipt, resolve, reject });
      // While a group waits for the lock, its timer flushes what came meanwhile.
      if (!this.scheduled && !this.busy) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Writes what is pending and stops: at close the wait for the lock is inside the call, up to the busy timeout. */
  close(): void {
    this.stopWaiting();
    this.flush(true);
    this.closed = true;
  }

  private flush(final = false): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const group: Pending[] = [];
      let n = 0;
      while (this.pending.length > 0 && (n === 0 || n + this.pending[0]!.entries.length <= this.opts.maxGroupCommit)) {
        const p = this.pending.shift()!;
        group.push(p);
        n += p.entries.length;
      }
      let results: AppendOutcome[][];
      try {
        const commit = (): AppendOutcome[][] => immediate(this.db, () => this.opts.write(group));
        results = final ? commit() : withBusyTimeout(this.db, APPEND_BUSY_MS, commit);
        this.opts.committed();
      } catch (e: unknown) {
        this.opts.rolledBack();
        if (!final && isBusy(e) && this.awaitLock()) {
          this.pending.unshift(...group);
          return;
        }
        // Whatever else failed, the wait for the lock is over: the next append flushes again,
        // and a later wait starts its own 5 s.
        this.stopWaiting();
        const err = coerceError(e);
        const full = /SQLITE_FULL|disk is full|database or disk is full/i.test(err.message);
        const failure = new SluiceError(
          'SLUICE_ERR_LOG_UNAVAILABLE',
          full ? 'the log is out of disk space; nothing of this request was written' : `the log cannot write: ${err.message}`,
          { retryAfter: full ? 5 : 1, cause: err },
        );
        this.failure ??= { at: this.opts.now(), message: failure.message };
        for (const p of group) p.reject(failure);
        continue;
      }
      this.failure = null;
      this.busy = null;
      for (let i = 0; i < group.length; i++) group[i]!.resolve(results[i]!);
      this.opts.onFlush();
    }
    this.opts.idle();
  }

  private stopWaiting(): void {
    if (this.busy?.timer) clearTimeout(this.busy.timer);
    this.busy = null;
  }

  /**
   * The lock was taken: schedules the next attempt and answers true, or answers false once the
   * first attempt is `BUSY_WAIT_MS` old (the group then fails as a busy timeout did).
   */
  private awaitLock(): boolean {
    const now = performance.now();
    this.busy ??= { since: now, attempts: 0, timer: null };
    if (now - this.busy.since >= BUSY_WAIT_MS) {
      this.busy = null;
      return false;
    }
    const busy = this.busy;
    busy.timer = setTimeout(() => {
      busy.timer = null;
      if (!this.closed) this.flush();
    }, busyBackoff(++busy.attempts));
    return true;
  }
}
