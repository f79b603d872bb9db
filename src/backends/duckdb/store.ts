import { DuckDBConnection, DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';
import fs from 'node:fs';
import path from 'node:path';
import { coerceError, FencedError, NonRetryableError, RetryAfterError } from '../../core/errors.js';
import type { CountQuery, CountRow, LogRecord, MinuteCount } from '../../core/types.js';
import type { Views } from '../../ports/views.js';
import type { CommitBatch, CommitResult, EventPosition, EventSearch, QueryAnswer, SeriesScan, SeriesScanAnswer, Store, StoreCapabilities, StoreHealth, StoredEvent, VersionOf } from '../../ports/store.js';
import { chooseView, residualFilters } from '../../core/plan.js';
import type { QuerySpec } from '../../core/query.js';
import { BACKFILL_SCHEMA, COUNTS_1M, DuckdbBackfills, type BackfillTarget } from './backfill.js';
import { rawQuerySql, viewQuerySql } from './query-sql.js';
import { minuteCounts, SCHEMA } from './sql.js';
import { DuckdbViews, VIEWS_SCHEMA } from './views.js';
import { redactValues } from '../../core/redact.js';
import { DuckdbTypedColumns, TYPED_SCHEMA, TypedFillError } from './typed-columns.js';
import { typedQuerySql } from './typed-sql.js';
import { ReadPool } from './read-pool.js';
import { timedRead } from './timed-read.js';
import { producedBy, withdrawEvents } from './withdraw.js';
import { CommitRows, STAGING_DDL } from './commit-rows.js';
import { classifyCommitError, damaged, OUT_OF_MEMORY } from './errors.js';
import { plain, StoredRows } from './stored-rows.js';
import { ViewFolds } from './view-folds.js';

export { classifyCommitError };

export interface DuckdbStoreOptions {
  file: string;
  /** Rows per appended data chunk; the event loop is yielded between chunks. */
  chunkRows?: number;
  queryTimeoutMs?: number;
  /**
   * DuckDB's memory limit (MiB). Without one DuckDB may hold 80% of the machine's memory,
   * and it keeps the table blocks it wrote cached: the process grows with the data.
   */
  memoryMb?: number;
  /**
   * Reader connections shared by queries (query.readers, default 4): each query holds one of
   * its own, so a timeout interrupts that query only. See query/read-pool.ts.
   */
  readers?: number;
  /** Readers one tenant may hold at once (query.readersPerTenant, default 2). */
  readersPerTenant?: number;
  /**
   * DuckDB's threads (store.threads, default 1). DuckDB runs a query's tasks on the thread that
   * asked for it and on threads - 1 background threads shared by every connection: with 2, a
   * tenant's heavy group-bys took the background thread from a neighbour's small queries.
   * Measured with test/tenants/queries.*'s data, quiet and attacked rounds alternating (2 cores,
   * load average 5 to 10 from other work): the small queries' p95 under attack was 3.6x to 6.4x
   * of quiet with 2 threads, 1.5x to 4.7x with 1. With 1, each query runs on its reader's
   * thread only, so the read pool's per-tenant share is a share of the cores. Neither the heavy
   * query alone (0.7-1.1 s against 0.9-2.3 s) nor commits of 20,000 events (322 ms against
   * 369 ms) were faster with 2.
   */
  threads?: number;
  /** The write-ahead log's size (MiB) at which DuckDB checkpoints; CHECKPOINT_MB by default. */
  checkpointMb?: number;
  /** Fold views between commits by itself (default true); false: only `foldViews()` folds (tests, tools). */
  autoFold?: boolean;
}

/**
 * DuckDB checkpoints (moves the write-ahead log into the table blocks) when its log passes
 * this size; its default is 16 MiB. A checkpoint rewrites the partly filled row groups
 * (122,880 rows) of each table written since the last one, and a vacuum merges small ones: at
 * 16 MiB the log held less than a row group of each table once two tables were written by
 * every commit (events and a type's typed columns), and commits spent most of their time
 * rewriting row groups, more as the tables grew. Measured (20,000 events per commit, 2 cores):
 * commits filling typed columns ran at 0.45x of those without at 16 MiB, 0.62x at 64 MiB.
 * A larger log costs its replay at start after a crash, and memory until the checkpoint.
 */
export const CHECKPOINT_MB = 64;

/**
 * The embedded store on DuckDB: one process writes (DuckDB's rule), through one connection;
 * queries use a second connection and see committed data only.
 *
 * A commit is one transaction holding the raw rows (appended in data chunks, which the
 * appender writes inside the connection's open transaction), the per-minute counts (an
 * upsert of a few pre-aggregated rows) and the applied offset and fencing token of each
 * partition. Redelivered records are skipped by position (offset <= applied), which is
 * what makes a replayed batch, a crash between commit and ack, or a stale consumer's late
 * commit change nothing.
 */
export class DuckdbStore implements Store {
  readonly name = 'duckdb';
  readonly capabilities: StoreCapabilities = { exactlyOnce: 'transactional-offsets', transactions: true, concurrentWriters: false };
  private instance: DuckDBInstance | null = null;
  private writer: DuckDBConnection | null = null;
  private reader: DuckDBConnection | null = null;
  /** The readers of queries, shared fairly by tenants; null until connected. */
  private pool: ReadPool<DuckDBConnection> | null = null;
  private poolConns: DuckDBConnection[] = [];
  /** Mirror of the `applied` table; valid because this object is the only writer. */
  private readonly applied = new Map<number, { offset: number; token: number }>();
  /** The last commit's transient failure (out of memory, I/O), until one succeeds: readiness reports it. */
  private commitFailure: { at: number; message: string } | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private sideConn: DuckDBConnection | null = null;
  private readonly viewTables: DuckdbViews = new DuckdbViews(
    (fn) => this.serialized(() => fn(this.conn())),
    () => this.folds.current,
  );
  /** Views folded between commits, not in them (view-folds.ts). */
  private readonly folds: ViewFolds = new ViewFolds(
    this.viewTables,
    (fn) => this.serialized(() => fn(this.conn())),
    () => this.commitsWaiting > 0,
  );
  /** Reads of raw events, on the read pool. */
  private readonly raw = new StoredRows((tenant, fn, signal, timeoutMs) => this.withTimeout(tenant, fn, signal, timeoutMs));
  /** Commits queued on the writer and not started: fold steps give them their turn (view-folds.ts). */
  private commitsWaiting = 0;
  /** Columns for the properties schemas declare (see ports/typed-columns.ts). */
  readonly typedColumns = new DuckdbTypedColumns((fn) => this.serialized(() => fn(this.conn())));
  /** Rebuilding derived tables from raw events (see ports/backfill.ts). */
  readonly backfills = new DuckdbBackfills(
    (fn) => this.serialized(() => fn(this.conn())),
    async () => {
      if (!this.instance) throw new RetryAfterError('the store is not connected', 1000);
      this.sideConn ??= await this.instance.connect();
      return this.sideConn;
    },
    (tenant, name) => this.backfillTarget(tenant, name),
    {
      swapping: async (c, tenant, view, id, adopting) => {
        // The swap puts what raw holds in place of the view's rows: no pending row it counts
        // may be folded again after it (view-folds.ts).
        const v = this.viewTables.get(tenant, view);
        if (v && v.build === id) await (adopting ? this.folds.adopted(c, v) : this.folds.foldAll(c, v));
      },
      started: async (c, tenant, view, id) => {
        await c.run(`UPDATE views SET build = $1 WHERE tenant = $2 AND name = $3`, [id, tenant, view]);
        await this.typedColumns.started(c, tenant, view, id);
      },
      finished: (c, id) => this.typedColumns.finished(c, id),
      changed: async (c) => {
        await this.viewTables.load(c);
        await this.folds.load(c);
        await this.typedColumns.load(c);
      },
    },
  );
  /** See ports/views.ts. */
  readonly views: Views = {
    put: (tenant, def, source, maxApi) => this.viewTables.put(tenant, def, source, maxApi),
    remove: (tenant, name) => this.viewTables.remove(tenant, name),
    list: async (tenant) => this.viewTables.list(tenant),
  };
  /** Writes a commit's rows (see commit-rows.ts). */
  private readonly rows: CommitRows;
  private readonly queryTimeoutMs: number;

  constructor(private readonly options: DuckdbStoreOptions) {
    this.rows = new CommitRows(this.viewTables, this.folds, this.typedColumns, options.chunkRows ?? 2048);
    this.queryTimeoutMs = options.queryTimeoutMs ?? 10_000;
  }

  async connect(): Promise<void> {
    if (this.instance) return;
    try {
      await this.open();
    } catch (e: unknown) {
      await this.close();
      // A file DuckDB cannot read is damage, not a passing failure (a lock held elsewhere is not).
      if (/Could not read|corrupt|checksum|not a valid DuckDB/i.test(coerceError(e).message)) throw damaged(this.options.file, e);
      throw e;
    }
  }

  private async open(): Promise<void> {
    fs.mkdirSync(path.dirname(this.options.file), { recursive: true, mode: 0o700 });
    this.instance = await DuckDBInstance.create(this.options.file, {
      checkpoint_threshold: `${this.options.checkpointMb ?? CHECKPOINT_MB}MiB`,
      ...(this.options.memoryMb ? { memory_limit: `${this.options.memoryMb}MiB` } : {}),
      threads: String(this.options.threads ?? 1),
    });
    // Private to the server's user; the WAL follows the process umask (077 under `sluice up`).
    try {
      fs.chmodSync(this.options.file, 0o600);
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e; // another user's file keeps its mode
    }
    this.writer = await this.instance.connect();
    await this.writer.run(SCHEMA);
    await this.writer.run(BACKFILL_SCHEMA);
    await this.writer.run(VIEWS_SCHEMA);
    await this.writer.run(TYPED_SCHEMA);
    await this.writer.run(STAGING_DDL);
    await ViewFolds.migrate(this.writer);
    await this.viewTables.load(this.writer);
    await this.viewTables.dropKeys(this.writer);
    await this.folds.load(this.writer);
    await this.typedColumns.load(this.writer);
    // Read every block of one column: a truncated or damaged file fails here, at start, with a
    // clear message, instead of on the first query.
    await this.writer.run('SELECT sum(hash(stored_at)) FROM events');
    this.reader = await this.instance.connect();
    for (let i = 0; i < (this.options.readers ?? 4); i++) this.poolConns.push(await this.instance.connect());
    this.pool = new ReadPool(this.poolConns, { perTenant: this.options.readersPerTenant ?? 2, maxWaitMs: this.queryTimeoutMs });
    const rows = (await this.writer.runAndReadAll('SELECT p, o, token FROM applied')).getRows();
    for (const [p, o, token] of rows) this.applied.set(Number(p), { offset: Number(o), token: Number(token) });
    // Rows left pending at the last stop are folded now, not only once a commit comes.
    if (this.options.autoFold !== false) this.folds.schedule();
  }

  private backfillTarget(tenant: string, name: string): BackfillTarget | null {
    if (name === 'counts_1m') return COUNTS_1M;
    return this.typedColumns.target(tenant, name) ?? this.viewTables.target(tenant, name);
  }

  private conn(): DuckDBConnection {
    if (!this.writer) throw new RetryAfterError('the store is not connected', 1000);
    return this.writer;
  }

  producedBy(tenant: string, version: number, of?: VersionOf): Promise<EventPosition[]> {
    return this.serialized(() => producedBy(this.conn(), tenant, version, of));
  }

  withdraw(tenant: string, version: number, positions: readonly EventPosition[], of?: VersionOf): Promise<number> {
    // With no build's chunk running: the tenant's builds start over without the withdrawn events.
    return this.backfills.exclusive(() => this.serialized(async () => {
      const c = this.conn();
      await c.run('BEGIN TRANSACTION');
      try {
        const n = await withdrawEvents(c, tenant, version, positions, of);
        await c.run('COMMIT');
        return n;
      } catch (e: unknown) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw classifyCommitError(e);
      }
    }));
  }

  commit(batch: CommitBatch): Promise<CommitResult> {
    this.commitsWaiting++;
    this.folds.commitQueued();
    return this.serialized(() => {
      this.commitsWaiting--;
      return this.commitNow(batch);
    });
  }

  /** Runs fold steps until every view has folded what is committed (view-folds.ts); answers how many steps ran. */
  foldViews(maxSteps = Number.POSITIVE_INFINITY): Promise<number> {
    return this.folds.run(maxSteps);
  }

  /** Rows committed for views and not yet folded into all of them. */
  get pendingViewRows(): number {
    return this.folds.rows;
  }

  /** Fold steps run, turns given up to commits and steps interrupted by one, since open (view-folds.ts). */
  get foldStats(): { readonly steps: number; readonly yields: number; readonly interrupts: number } {
    return this.folds.stats;
  }

  /** DuckDB allows one open transaction per connection: writes on the writer run one after another. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async commitNow(batch: CommitBatch): Promise<CommitResult> {
    const declared = new Map<number, number>();
    for (const { partition, token } of batch.partitions) {
      const current = this.applied.get(partition);
      if (current && token < current.token) {
        throw new FencedError(`partition ${partition}: token ${token} is older than ${current.token}; a newer consumer owns it`);
      }
      declared.set(partition, token);
    }
    const fresh: LogRecord[] = [];
    for (const r of batch.records) {
      if (!declared.has(r.partition)) throw new NonRetryableError(`record at ${r.partition}:${r.offset} has no partition entry in the batch`);
      if (r.offset > (this.applied.get(r.partition)?.offset ?? 0)) fresh.push(r);
    }
    const c = this.conn();
    const seq = this.folds.next();
    const next = new Map<number, { offset: number; token: number }>();
    for (const { partition, token, upTo } of batch.partitions) {
      next.set(partition, { offset: Math.max(upTo, this.applied.get(partition)?.offset ?? 0), token });
    }
    try {
      await c.run('BEGIN TRANSACTION');
      if (fresh.length > 0) {
        await this.rows.write(c, fresh, seq);
        const counts = minuteCounts(fresh);
        await c.run(counts.sql, counts.params);
      }
      const values: DuckDBValue[] = [];
      for (const [p, a] of next) values.push(p, a.offset, a.token);
      await c.run(
        `INSERT INTO applied (p, o, token) VALUES ${[...next.keys()].map(() => '(?, ?, ?)').join(', ')}
         ON CONFLICT (p) DO UPDATE SET o = excluded.o, token = excluded.token`,
        values,
      );
      // From here until committed() below, a query may see this commit's pending rows before
      // the folds know of them: it reads the pending rows beside every view meanwhile.
      this.folds.committing = true;
      await c.run('COMMIT');
    } catch (e: unknown) {
      this.folds.committing = false;
      await c.run('ROLLBACK').catch(() => undefined);
      // Typed columns that cannot be filled are dropped (queries read the JSON), not waited for:
      // the batch is committed again without them. Out of memory stays a passing failure.
      if (e instanceof TypedFillError && !OUT_OF_MEMORY.test(e.message)) {
        await this.typedColumns.drop(c, e.table);
        throw new RetryAfterError(`${redactValues(e.message)}; those columns are dropped and the batch is committed again without them`, 0, { cause: e });
      }
      const err = classifyCommitError(e);
      if (err instanceof RetryAfterError) this.commitFailure ??= { at: Date.now(), message: err.message };
      throw err;
    }
    this.commitFailure = null;
    for (const [p, a] of next) this.applied.set(p, a);
    const storedByTenant = new Map<string, number>();
    for (const r of fresh) storedByTenant.set(r.tenant, (storedByTenant.get(r.tenant) ?? 0) + 1);
    // With the applied offsets: a query that sees them reads these rows beside the views.
    this.folds.committed(seq, storedByTenant);
    this.folds.committing = false;
    if (this.options.autoFold !== false) this.folds.schedule();
    return { stored: fresh.length, skipped: batch.records.length - fresh.length, storedByTenant };
  }

  async appliedOffsets(): Promise<Map<number, number>> {
    // Wait for the commit in progress, so the answer is not older than what queries see.
    await this.queue;
    return new Map([...this.applied].map(([p, a]) => [p, a.offset]));
  }

  counts(q: CountQuery, signal?: AbortSignal): Promise<CountRow[]> {
    return this.raw.counts(q, signal);
  }

  /**
   * See Store.query. Raw events are read from a type's typed columns when they are built and
   * hold every field the query reads (typed-sql.ts), else from the JSON; `typedColumns: false`
   * reads the JSON always (to compare the two).
   */
  async query(q: QuerySpec, cap: number, signal?: AbortSignal, opts: { typedColumns?: boolean } = {}): Promise<QueryAnswer> {
    const attempt = { noted: false };
    try {
      return await this.queryOnce(q, cap, signal, opts, attempt);
    } catch (e: unknown) {
      // A view or typed table the query was planned against was dropped before it ran (the
      // view changed or was removed, typed columns were rebuilt): planned again once the
      // writer is past that change, the query reads what replaced it (or raw).
      if (!/^Catalog Error: Table with name (view_|typed_|backfill_)\w+ does not exist/.test(coerceError(e).message)) throw e;
      await this.queue;
      return this.queryOnce(q, cap, signal, opts, attempt);
    }
  }

  private async queryOnce(q: QuerySpec, cap: number, signal: AbortSignal | undefined, opts: { typedColumns?: boolean }, attempt: { noted: boolean }): Promise<QueryAnswer> {
    let source = 'raw';
    let typed = false;
    // Planned when a reader is granted, not when asked: a query that waited for one reads the
    // pending rows committed meanwhile beside the view, as its snapshot holds them in raw.
    const r = await this.withTimeout(
      q.tenant,
      (c) => {
        const view = q.source === 'raw' || q.received ? null : chooseView(this.viewTables.ready(q.tenant), q);
        // A receipt-time range (alert series) reads received_at, which the typed tables do not hold.
        const set = view || q.received || opts.typedColumns === false ? null : this.typedColumns.ready(q.tenant, q.event);
        const typedSql = set ? typedQuerySql(q, set, cap) : null;
        // Raw reads of properties without columns count towards their promotion (ports/typed-columns.ts PROMOTION), once per query.
        if (!view && !q.received && opts.typedColumns !== false && !attempt.noted) {
          attempt.noted = true;
          this.typedColumns.noteQuery(q, Date.now());
        }
        const delta = view && this.folds.unfolded(view) ? this.folds.delta(view) : undefined;
        const { sql, params } = view ? viewQuerySql(q, view.table, view.def, residualFilters(view.def, q), cap, delta) : (typedSql ?? rawQuerySql(q, cap));
        source = view ? `view:${view.name}` : 'raw';
        typed = typedSql !== null;
        return c.runAndReadAll(sql, params);
      },
      signal,
    );
    return { rows: r.getRows().map((row) => row.map(plain)), source, ...(typed ? { typed: true } : {}) };
  }

  seriesScan(scan: SeriesScan, signal?: AbortSignal): Promise<SeriesScanAnswer> {
    return this.raw.seriesScan(scan, signal);
  }

  searchEvents(s: EventSearch, signal?: AbortSignal): Promise<StoredEvent[]> {
    return this.raw.searchEvents(s, signal);
  }

  findEvent(tenant: string, idempotencyKey: string): Promise<StoredEvent | null> {
    return this.raw.findEvent(tenant, idempotencyKey);
  }

  storedByMinute(from: number, to: number): Promise<MinuteCount[]> {
    return this.raw.storedByMinute(from, to);
  }

  rawStats(tenant: string): Promise<{ events: number; distinctKeys: number }> {
    return this.raw.rawStats(tenant);
  }

  recent(tenant: string, type: string, limit: number): Promise<string[]> {
    return this.raw.recent(tenant, type, limit);
  }

  /**
   * Runs a read of `tenant` on a reader of its own from the fair pool, with the query timeout
   * counted from when it starts running (waiting in line is bounded apart): an expired query
   * is interrupted, and only it.
   */
  private withTimeout<T>(tenant: string, fn: (c: DuckDBConnection) => Promise<T>, signal?: AbortSignal, timeoutMs = this.queryTimeoutMs): Promise<T> {
    const pool = this.pool;
    if (!pool) return Promise.reject(new RetryAfterError('the store is not connected', 1000));
    return pool.run(tenant, (c) => timedRead(c, fn, signal, timeoutMs), signal);
  }

  /** Read pool state, for metrics: queries waiting for a reader and readers in use. */
  readers(): { waiting: number; busy: number } {
    return { waiting: this.pool?.waiting ?? 0, busy: this.pool?.busy ?? 0 };
  }

  async health(): Promise<StoreHealth> {
    if (!this.reader) return { ok: false, detail: 'not connected' };
    try {
      // DuckDB's own accounting by what the memory holds (its duckdb_memory() tags, lower-cased).
      const r = await this.reader.runAndReadAll('SELECT lower(tag), memory_usage_bytes::BIGINT FROM duckdb_memory()');
      const memoryByTag: Record<string, number> = {};
      let memoryBytes = 0;
      for (const [tag, bytes] of r.getRows()) {
        memoryByTag[String(tag)] = Number(bytes);
        memoryBytes += Number(bytes);
      }
      const failing = this.commitFailure;
      if (failing) return { ok: false, detail: `commits fail since ${new Date(failing.at).toISOString()}: ${failing.message}`, memoryBytes, memoryByTag };
      return { ok: true, memoryBytes, memoryByTag };
    } catch (e: unknown) {
      return { ok: false, detail: coerceError(e).message };
    }
  }

  /** Must not throw. */
  async close(): Promise<void> {
    this.folds.stop();
    await this.queue.catch(() => undefined);
    this.pool?.close(new RetryAfterError('the store is closing', 1000));
    this.pool = null;
    for (const c of [this.reader, this.writer, this.sideConn, ...this.poolConns.splice(0)]) {
      try {
        c?.closeSync();
      } catch {
        // Already closed.
      }
    }
    try {
      this.instance?.closeSync();
    } catch {
      // Already closed.
    }
    this.reader = this.writer = this.sideConn = null;
    this.instance = null;
  }
}
