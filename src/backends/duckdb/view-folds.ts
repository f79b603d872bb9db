import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import type { Params as BaseParams } from '../sql/compile.js';
import { Params, viewCellsSql, viewMaintainSql } from './query-sql.js';
import type { DuckdbViews, LiveView } from './views.js';

/**
 * Views kept outside the raw commit. A commit writes a tenant's raw events and, when the
 * tenant has views, the same rows to `view_pending` under the commit's sequence number, in
 * one transaction; it maintains no view. Each view remembers the last sequence folded into
 * its table (`views.folded`); a fold step adds one view's pending rows to its table and moves
 * its mark in one transaction, and the rows every view of the tenant has folded are deleted.
 * Queries read a view's table together with its pending rows (viewCellsSql over
 * `deltaSource`), with the mark read in the query's own snapshot, so an answer counts every
 * committed event exactly once whether or not it is folded yet.
 *
 * Why: maintaining a tenant's views inside every commit made every tenant's commits wait for
 * them. Twenty costly views of one tenant put another tenant's freshness p99 at 1.1-1.5 s
 * against 30-70 ms without them (`test/tenants/views.a-tenants-costly-views-…`); without the
 * upkeep in the commit it was 1.05-3.4x. Fold steps now run between commits on the writer, each
 * bounded to about FOLD_STEP_MS of one view's work (and commits come first, below); a tenant
 * whose views cost more than the machine has falls behind in its own views (its queries read
 * more pending rows), not in everyone's commits. This is the incremental view maintenance of
 * a deferred kind (Gupta and Mumick, "Maintenance of Materialized Views", 1995: deferred
 * refresh from a log of changes).
 *
 * Commits come first. A fold step that would start while a commit waits on the writer gives
 * its turn to the commit, and a commit that arrives during a step interrupts it (DuckDB's
 * interrupt; the step's transaction is rolled back and nothing of it is kept), so a commit waits
 * for the interrupt, not for a step. An interrupted view's next step is half as large (down to
 * one commit's rows), and each step that completes doubles it again, up to its usual size. So
 * that the views cannot be starved by a writer that always has a commit waiting, after
 * YIELDS_IN_A_ROW turns given up in a row the next step runs whatever waits: commits then wait
 * for at most one step in YIELDS_IN_A_ROW + 1. An interrupted step's work is lost; that is the
 * price, paid by the tenant whose views fall behind, not by the commits.
 */
export const VIEW_PENDING_DDL = 'CREATE TABLE IF NOT EXISTS view_pending AS SELECT *, CAST(0 AS BIGINT) AS seq FROM events LIMIT 0';

/**
 * A fold step aims at this long (ms): about what a commit of a few hundred events takes here,
 * so a commit waits for at most about as long again. The rows of a step follow from the
 * view's measured cost per row (20 µs for five group-by dimensions with sketches, 2 cores):
 * FOLD_STEP_MS / cost, between one commit's rows and FOLD_ROWS.
 */
export const FOLD_STEP_MS = 50;
/** Pending rows folded into one view per step, at most (a whole commit's rows, when one commit has more). */
export const FOLD_ROWS = 20_000;
/** A view's first step, before its cost is known. */
const FIRST_FOLD_ROWS = 2_000;
/** Turns a fold step gives up to commits in a row before one runs regardless (see above). */
export const YIELDS_IN_A_ROW = 4;

export class ViewFolds {
  /** The last commit sequence given out. */
  private seq = 0;
  /** Per tenant with pending rows: [sequence, rows] in ascending order. */
  private pending = new Map<string, [number, number][]>();
  /** Round-robin position among tenants. */
  private turn = 0;
  /** Measured ms per folded row, by view table (an exponentially weighted mean). */
  private readonly cost = new Map<string, number>();
  /** By view table: the share (1, 1/2, 1/4, …) of its usual step its next step takes: halved by an interrupt, doubled by a step that completes. */
  private readonly shrink = new Map<string, number>();
  /** Turns given up to commits since the last step that ran to its end. */
  private yields = 0;
  /**
   * Since open: steps that folded (or pruned) and committed; turns given up to a waiting commit
   * before a step began; steps interrupted by a commit (and rolled back).
   */
  readonly stats = { steps: 0, yields: 0, interrupts: 0 };
  /** The fold statement running now, which a commit may interrupt; `yielding` once it was asked to. */
  private interruptible: { c: DuckDBConnection; yielding: boolean } | null = null;

  private scheduled = false;
  private stopped = false;
  /** A commit is being made (its COMMIT sent, `committed` not yet called): its rows may be pending unseen. */
  committing = false;

  constructor(
    private readonly views: DuckdbViews,
    /** Runs `fn` on the writer, after the commits already queued (the store's one writer queue). */
    private readonly locked: <T>(fn: (c: DuckDBConnection) => Promise<T>) => Promise<T>,
    /** Whether a commit is waiting for the writer (a step about to start gives it its turn). */
    private readonly commitWaiting: () => boolean = () => false,
  ) {}

  /**
   * A commit has been queued on the writer: the fold statement running now, if any, is
   * interrupted unless this step is the one that runs regardless (see the class comment).
   */
  commitQueued(): void {
    const running = this.interruptible;
    if (!running || running.yielding) return;
    running.yielding = true;
    running.c.interrupt();
  }

  /**
   * Queues one fold step behind the commits already waiting, then another while any view is
   * behind; each gives way to commits (see the class comment). A failed step (out of memory, say) is
   * tried again after a second; its rows stay pending and queries read them meanwhile.
   */
  schedule(): void {
    if (this.scheduled || this.stopped || !this.behind) return;
    this.scheduled = true;
    this.locked((c) => this.step(c, true)).then(
      () => {
        this.scheduled = false;
        this.schedule();
      },
      () => {
        setTimeout(() => {
          this.scheduled = false;
          this.schedule();
        }, 1000).unref();
      },
    );
  }

  /** No more steps are scheduled (the store is closing); pending rows wait for the next start. */
  stop(): void {
    this.stopped = true;
  }

  /** Runs up to `maxSteps` steps now, while any view is behind; answers how many ran. */
  async run(maxSteps: number): Promise<number> {
    let steps = 0;
    for (; steps < maxSteps && this.behind; steps++) await this.locked((c) => this.step(c));
    return steps;
  }

  /**
   * At open: creates `view_pending` like `events`, and gives it any column `events` gained since
   * (a migration adds columns to events; pending rows are written BY NAME).
   */
  static async migrate(c: DuckDBConnection): Promise<void> {
    await c.run(VIEW_PENDING_DDL);
    const missing = (
      await c.runAndReadAll(
        `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events' AND table_schema = 'main'
         AND column_name NOT IN (SELECT column_name FROM information_schema.columns WHERE table_name = 'view_pending' AND table_schema = 'main') ORDER BY ordinal_position`,
      )
    ).getRows();
    for (const [name, type] of missing) await c.run(`ALTER TABLE view_pending ADD COLUMN "${String(name)}" ${String(type)}`);
  }

  /** Reads the pending rows' sequences and the views' marks (at open, and after changes made in SQL). */
  async load(c: DuckDBConnection): Promise<void> {
    const rows = (await c.runAndReadAll('SELECT tenant, seq, count(*) FROM view_pending GROUP BY ALL ORDER BY tenant, seq')).getRows();
    const next = new Map<string, [number, number][]>();
    let top = 0;
    for (const [tenant, seq, n] of rows) {
      const list = next.get(String(tenant)) ?? [];
      list.push([Number(seq), Number(n)]);
      next.set(String(tenant), list);
      top = Math.max(top, Number(seq));
    }
    const [[marks]] = (await c.runAndReadAll('SELECT coalesce(max(folded), 0) FROM views')).getRows() as [[bigint | number]];
    this.seq = Math.max(this.seq, top, Number(marks));
    this.pending = next;
  }

  /** The sequence a view created now starts from: every row committed before it is in raw, for its build. */
  get current(): number {
    return this.seq;
  }

  /** The next commit's sequence (a failed commit leaves a gap, which is harmless). */
  next(): number {
    return ++this.seq;
  }

  /** Inside a commit's transaction: `staging`'s rows of `tenants` are kept for their views under `seq`. */
  async stage(c: DuckDBConnection, staging: string, tenants: ReadonlySet<string>, seq: number): Promise<void> {
    if (tenants.size === 0) return;
    const list = [...tenants];
    const only = `tenant IN (${list.map(() => '?').join(', ')})`;
    // The views read the maps as JSON: a row they could not fold is refused here, where the
    // consumer isolates and dead-letters it, not found later by a fold that would fail on it for good.
    const bad = (await c.runAndReadAll(`SELECT partition, "offset" FROM ${staging} WHERE ${only} AND NOT (json_valid(properties) AND json_valid(context)) LIMIT 1`, list)).getRows();
    if (bad.length > 0) throw new Error(`Conversion Error: the record at ${String(bad[0]![0])}:${String(bad[0]![1])} holds properties or context that are not JSON, which its tenant's views cannot read`);
    await c.run(`INSERT INTO view_pending BY NAME SELECT *, ?::BIGINT AS seq FROM ${staging} WHERE ${only}`, [BigInt(seq), ...list]);
  }

  /** After the commit of `seq`: its rows per tenant (those with views only). */
  committed(seq: number, rowsByTenant: ReadonlyMap<string, number>): void {
    for (const [tenant, n] of rowsByTenant) {
      if (n === 0 || !this.views.has(tenant)) continue;
      const list = this.pending.get(tenant) ?? [];
      list.push([seq, n]);
      this.pending.set(tenant, list);
    }
  }

  /** Whether any view has rows to fold. */
  get behind(): boolean {
    return this.pending.size > 0;
  }

  /** Pending rows, all tenants (a gauge). */
  get rows(): number {
    let n = 0;
    for (const list of this.pending.values()) for (const [, k] of list) n += k;
    return n;
  }

  /** Whether `view` has rows not folded into its table (queries then read `deltaSource` beside it). */
  unfolded(view: LiveView): boolean {
    if (this.committing) return true;
    const list = this.pending.get(view.tenant);
    return list !== undefined && list[list.length - 1]![0] > view.folded;
  }

  /**
   * The pending rows of `view` not yet in its table, as a relation with the events' columns;
   * the mark is read in the query's snapshot, where it agrees with the table.
   */
  deltaSource(view: LiveView, p: BaseParams<DuckDBValue>): string {
    const t = p.add(view.tenant);
    return `(SELECT * FROM view_pending WHERE tenant = ${t} AND seq > (SELECT folded FROM views WHERE tenant = ${t} AND name = ${p.add(view.name)}))`;
  }

  /** `viewCellsSql` over `deltaSource`: the rows a query reads beside the view's table. */
  delta(view: LiveView): (p: BaseParams<DuckDBValue>) => string {
    return (p) => viewCellsSql(view.def, this.deltaSource(view, p), p);
  }

  /**
   * One fold step on the writer, in a transaction of its own: the next view in turn (tenants
   * taken in turn, so one tenant's many views do not starve another's) gains its pending rows
   * up to FOLD_ROWS. `yieldable`: the step gives its turn to a waiting commit, or is
   * interrupted by one that comes (the scheduled steps; `run` takes none). Answers whether
   * more remains to fold.
   */
  async step(c: DuckDBConnection, yieldable = false): Promise<boolean> {
    const mayYield = yieldable && this.yields < YIELDS_IN_A_ROW;
    if (mayYield && this.commitWaiting()) {
      this.yields++;
      this.stats.yields++;
      return this.behind;
    }
    const tenants = [...this.pending.keys()];
    if (tenants.length === 0) return false;
    const tenant = tenants[this.turn++ % tenants.length]!;
    const list = this.pending.get(tenant)!;
    const views = this.views.list(tenant);
    if (views.length === 0) {
      await this.prune(c, tenant);
      this.pending.delete(tenant);
      return this.behind;
    }
    // The view furthest behind.
    const view = views.reduce((a, b) => (b.folded < a.folded ? b : a));
    const perRow = this.cost.get(view.table);
    const usual = perRow === undefined ? FIRST_FOLD_ROWS : Math.min(FOLD_ROWS, Math.floor(FOLD_STEP_MS / perRow));
    const limit = Math.max(1, Math.floor(usual * (this.shrink.get(view.table) ?? 1)));
    let upTo = view.folded;
    let rows = 0;
    for (const [seq, n] of list) {
      if (seq <= view.folded) continue;
      if (rows > 0 && rows + n > limit) break;
      upTo = seq;
      rows += n;
    }
    const started = performance.now();
    await c.run('BEGIN TRANSACTION');
    let interrupted = false;
    try {
      if (rows > 0) await this.foldInto(c, view, upTo, mayYield);
      // Interrupted just as the statement ended: undone all the same.
      if (this.interruptible?.yielding) throw new Error('the fold step gave its turn to a commit');
      this.interruptible = null;
      await this.prune(c, tenant);
      await c.run('COMMIT');
    } catch (e) {
      interrupted = this.interruptible?.yielding === true;
      this.interruptible = null;
      // DuckDB clears an interrupt that found no statement running when the next one starts,
      // so this ROLLBACK runs whenever the commit's interrupt came.
      await c.run('ROLLBACK').catch(() => undefined);
      if (!interrupted) throw e;
    }
    if (interrupted) {
      this.shrink.set(view.table, (this.shrink.get(view.table) ?? 1) / 2);
      this.yields++;
      this.stats.interrupts++;
      return this.behind;
    }
    this.yields = 0;
    this.stats.steps++;
    const share = Math.min(1, (this.shrink.get(view.table) ?? 1) * 2);
    if (share >= 1) this.shrink.delete(view.table);
    else this.shrink.set(view.table, share);
    if (rows > 0) {
      const ms = (performance.now() - started) / rows;
      this.cost.set(view.table, perRow === undefined ? ms : 0.7 * perRow + 0.3 * ms);
    }
    view.folded = upTo;
    this.forget(tenant, Math.min(...views.map((v) => v.folded)));
    return this.behind;
  }

  /**
   * Inside the caller's transaction: folds every pending row of `view` into its table (a
   * build's swap does this first, so that the rows it replaces are not folded again after).
   * The caller reloads the views and the folds after it commits.
   */
  async foldAll(c: DuckDBConnection, view: LiveView): Promise<void> {
    if (this.seq > view.folded) await this.foldInto(c, view, this.seq);
    await this.prune(c, view.tenant);
  }

  /**
   * Inside the caller's transaction: `view` takes a table built from raw that holds every
   * committed event (a build of its whole history, its swap with commits held back), so
   * nothing pending is left for it to fold. The caller reloads after it commits.
   */
  async adopted(c: DuckDBConnection, view: LiveView): Promise<void> {
    await c.run('UPDATE views SET folded = ? WHERE tenant = ? AND name = ?', [BigInt(this.seq), view.tenant, view.name]);
    await this.prune(c, view.tenant);
  }

  /**
   * Inside the caller's transaction: deletes the pending rows every view of `tenant` has folded
   * (all of them when it has no view), by the marks as the transaction sees them.
   */
  async prune(c: DuckDBConnection, tenant: string): Promise<void> {
    await c.run('DELETE FROM view_pending WHERE tenant = $1 AND seq <= coalesce((SELECT min(folded) FROM views WHERE tenant = $1), 9223372036854775807)', [tenant]);
  }

  /** `interruptible`: a commit queued meanwhile interrupts the view's statement (`commitQueued`). */
  private async foldInto(c: DuckDBConnection, view: LiveView, upTo: number, interruptible = false): Promise<void> {
    const p = new Params();
    const source = `(SELECT * FROM view_pending WHERE tenant = ${p.add(view.tenant)} AND seq > ${p.add(BigInt(view.folded))} AND seq <= ${p.add(BigInt(upTo))})`;
    if (interruptible) {
      // A commit queued while the step began (its BEGIN) found nothing to interrupt: it is let through now.
      this.interruptible = { c, yielding: this.commitWaiting() };
      if (this.interruptible.yielding) return;
    }
    await c.run(viewMaintainSql(view.table, view.def, source, p), p.values);
    if (this.interruptible?.yielding) return;
    this.interruptible = null;
    await c.run('UPDATE views SET folded = ? WHERE tenant = ? AND name = ?', [BigInt(upTo), view.tenant, view.name]);
  }

  private forget(tenant: string, upTo: number): void {
    const list = this.pending.get(tenant);
    if (!list) return;
    const rest = list.filter(([seq]) => seq > upTo);
    if (rest.length === 0) this.pending.delete(tenant);
    else this.pending.set(tenant, rest);
  }
}
