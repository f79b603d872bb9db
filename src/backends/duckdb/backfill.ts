import { randomBytes } from 'node:crypto';
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import { SluiceError } from '../../core/errors.js';
import { ChunkSpans, noSuchView, shadow, superseded, wholeBuckets, type BackfillTarget as Target } from '../backfill-plan.js';
import type { BackfillSpec, BackfillState, Backfills } from '../../ports/backfill.js';
import { Params } from './query-sql.js';

/** A table a backfill rebuilds on DuckDB (see backfill-plan.ts). */
export type BackfillTarget = Target<Params, DuckDBConnection>;

/** Rows of one DuckDB row group (its default row_group_size), the unit its zone maps skip. */
const ROW_GROUP_ROWS = 122_880;
/** Rows a piece of a sorted copy writes, about (sortPiece): a commit of some 20-30 ms here. */
const SORT_PIECE_ROWS = 25_000;

/** The table a build's sorted copy is written into before it takes the build table's place (sortPiece). */
const sortedCopy = (id: string): string => `${shadow(id)}_sorted`;

/** SQL: the row's `keys` come after `values` in their order (a lexicographic comparison, written out). */
function keysAfter(keys: string[], values: DuckDBValue[], p: Params): string {
  const terms = keys.map((k, i) => [...keys.slice(0, i).map((e, j) => `${e} = ${p.add(values[j]!)}`), `${k} > ${p.add(values[i]!)}`].join(' AND '));
  return `(${terms.map((t) => `(${t})`).join(' OR ')})`;
}

export const COUNTS_1M: BackfillTarget = {
  table: 'counts_1m',
  ddl: (name) => `CREATE TABLE ${name} (tenant VARCHAR NOT NULL, type VARCHAR NOT NULL, minute BIGINT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (tenant, type, minute))`,
  bucketColumn: 'minute',
  grainMs: 60_000,
  events: 'sum(n)',
  order: 'minute, type',
  aggregate: (into, source) =>
    `INSERT INTO ${into} SELECT tenant, type, (epoch_ms(ts) // 60000) * 60000 AS minute, count(*) AS n FROM ${source} GROUP BY ALL ON CONFLICT DO UPDATE SET n = n + excluded.n`,
};

/** Finds what a backfill of `view` for `tenant` rebuilds; null when there is no such view. */
export type TargetResolver = (tenant: string, view: string) => BackfillTarget | null;

export const BACKFILL_SCHEMA = `
  CREATE TABLE IF NOT EXISTS backfills (
    id VARCHAR PRIMARY KEY, view VARCHAR NOT NULL, tenant VARCHAR NOT NULL,
    range_from BIGINT NOT NULL, range_to BIGINT NOT NULL, rate BIGINT NOT NULL, status VARCHAR NOT NULL,
    cursor BIGINT NOT NULL, done BIGINT NOT NULL, total BIGINT NOT NULL,
    started_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, finished_at BIGINT, error VARCHAR
  );
  CREATE TABLE IF NOT EXISTS backfill_snapshots (id VARCHAR NOT NULL, p INTEGER NOT NULL, o BIGINT NOT NULL, PRIMARY KEY (id, p));
  -- A build of the tenant's whole history (no from/to asked): its table can replace the live one.
  ALTER TABLE backfills ADD COLUMN IF NOT EXISTS whole BOOLEAN DEFAULT false;
`;

const COLUMNS = 'id, view, tenant, range_from, range_to, rate, status, cursor, done, total, started_at, updated_at, finished_at, error';

function toState(row: DuckDBValue[]): BackfillState & { cursor: number } {
  const [id, view, tenant, from, to, rate, status, cursor, done, total, startedAt, updatedAt, finishedAt, error] = row;
  return {
    id: String(id),
    view: String(view),
    tenant: String(tenant),
    from: Number(from),
    to: Number(to),
    rate: Number(rate),
    status: String(status) as BackfillState['status'],
    cursor: Number(cursor),
    done: Number(done),
    total: Number(total),
    startedAt: Number(startedAt),
    updatedAt: Number(updatedAt),
    finishedAt: finishedAt === null ? null : Number(finishedAt),
    error: error === null ? null : String(error),
  };
}


/**
 * Backfills on DuckDB. `locked` runs a function on the writer connection with live commits
 * held back (the store's commit queue); chunks run on a connection of their own, so live
 * commits go on meanwhile (DuckDB's MVCC: they write other tables).
 */
export class DuckdbBackfills implements Backfills {
  constructor(
    private readonly locked: <T>(fn: (c: DuckDBConnection) => Promise<T>) => Promise<T>,
    private readonly side: () => Promise<DuckDBConnection>,
    private readonly resolve: TargetResolver,
    /** Called inside a transaction that starts or finishes a build, and (`changed`) after one that changes a build commits. */
    private readonly hooks: {
      /**
       * Inside the transaction that finishes build `id`, before the swap: `adopting`, the built
       * table (holding every committed event) replaces the live one; else it replaces the
       * range's rows in the live one.
       */
      swapping(c: DuckDBConnection, tenant: string, view: string, id: string, adopting: boolean): Promise<void>;
      started(c: DuckDBConnection, tenant: string, view: string, id: string): Promise<void>;
      finished(c: DuckDBConnection, id: string): Promise<void>;
      changed(c: DuckDBConnection): Promise<void>;
    },
  ) {}

  views(): string[] {
    return ['counts_1m'];
  }

  private target(tenant: string, name: string, id?: string): BackfillTarget {
    const t = this.resolve(tenant, name);
    if (!t) throw noSuchView(name);
    if (id !== undefined && t.build !== undefined && t.build !== id) throw superseded(name, t.build);
    return t;
  }

  async start(asked: BackfillSpec): Promise<BackfillState> {
    const v = this.target(asked.tenant, asked.view);
    // A view not built yet is built whole (see BackfillTarget.ready): a rebuild of part of its
    // range (a pipeline repair's) would make it ready with the rest of its history missing.
    const spec = v.ready === false ? { ...asked, from: null, to: null } : asked;
    const id = randomBytes(6).toString('hex');
    const now = Date.now();
    // With live commits held back: the snapshot, the range, the build's table and its row.
    // Its total (what the table reads: a view's type and filters, which read JSON) is counted
    // after, on the side connection: a count over a tenant's 10M events takes seconds, and
    // every tenant's commits would wait for it.
    await this.locked(async (c) => {
      await c.run('BEGIN TRANSACTION');
      try {
        await c.run(`INSERT INTO backfill_snapshots SELECT ?, p, o FROM applied`, [id]);
        const [[minTs, maxTs]] = (
          await c.runAndReadAll(`SELECT min(epoch_ms(ts)), max(epoch_ms(ts)) FROM events WHERE tenant = ?`, [spec.tenant])
        ).getRows() as [bigint | null, bigint | null][];
        const { from, to } = wholeBuckets(spec, minTs === null ? null : Number(minTs), maxTs === null ? null : Number(maxTs), now, v.grainMs);
        await c.run(v.ddl(shadow(id)));
        await this.hooks.started(c, spec.tenant, spec.view, id);
        await c.run(`INSERT INTO backfills (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, 0, 0, ?, ?, NULL, NULL)`, [
          id, spec.view, spec.tenant, BigInt(from), BigInt(to), BigInt(spec.rate), BigInt(from), BigInt(now), BigInt(now),
        ]);
        if (spec.from === null && spec.to === null) await c.run('UPDATE backfills SET whole = true WHERE id = ?', [id]);
        await c.run('COMMIT');
      } catch (e) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
      await this.hooks.changed(c);
    });
    return this.exclusive(async () => {
      const c = await this.side();
      const s = await this.get(c, id);
      // Gone meanwhile (its view removed): say so, as a step would.
      if (!s) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no backfill ${id}`, { field: 'id' });
      const p = new Params();
      const source = `SELECT e.* FROM events e JOIN backfill_snapshots s ON s.id = ${p.add(id)} AND e.partition = s.p AND e."offset" <= s.o
           WHERE e.tenant = ${p.add(s.tenant)} AND e.ts >= epoch_ms(${p.add(BigInt(s.from))}::BIGINT) AND e.ts < epoch_ms(${p.add(BigInt(s.to))}::BIGINT)`;
      try {
        const [[total]] = (await c.runAndReadAll(`SELECT count(*) FROM (${source}) AS src WHERE ${v.where?.(p) ?? 'true'}`, p.values)).getRows() as [bigint][];
        // Only a build still running takes it: one failed meanwhile (on the writer) keeps its row.
        await c.run(`UPDATE backfills SET total = ? WHERE id = ? AND status = 'running'`, [total!, id]);
      } catch {
        // The total is for progress only: a count that fails (out of memory, or a conflict with
        // a failure written meanwhile) leaves it 0 and the build runs all the same.
      }
      return (await this.get(c, id))!;
    });
  }

  private async get(c: DuckDBConnection, id: string): Promise<(BackfillState & { cursor: number }) | null> {
    const rows = (await c.runAndReadAll(`SELECT ${COLUMNS} FROM backfills WHERE id = ?`, [id])).getRows();
    return rows[0] ? toState(rows[0]) : null;
  }

  /**
   * Runs `fn` while no step of a build runs, and holds the next back until it is done: a chunk
   * runs on a connection of its own, in a transaction that would not see what `fn` changes in
   * the build (a withdraw restarts it, withdraw.ts) and would write its cursor over it.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.gate.then(fn);
    this.gate = run.catch(() => undefined);
    return run;
  }

  private gate: Promise<unknown> = Promise.resolve();

  step(id: string, events: number): Promise<BackfillState> {
    return this.exclusive(() => this.stepNow(id, events));
  }

  private async stepNow(id: string, events: number): Promise<BackfillState> {
    const c = await this.side();
    const s = await this.get(c, id);
    if (!s) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no backfill ${id}`, { field: 'id' });
    if (s.status !== 'running') return s;
    const v = this.target(s.tenant, s.view, s.id);
    if (s.cursor >= s.to) {
      // Past the range: a table the view adopts is sorted first, a piece per step (sortPiece).
      const adopting = await this.adopting(c, s.id, v);
      if (adopting && !(await this.sortPiece(c, s, v))) return s;
      return this.finish(await this.catchUp(c, s, v, adopting), adopting);
    }
    const end = await this.spans.end(s, events, (before) => this.nth(c, s, v, events, before));
    await c.run('BEGIN TRANSACTION');
    try {
      const p = new Params();
      const source = `(SELECT e.* FROM events e JOIN backfill_snapshots s ON s.id = ${p.add(id)} AND e.partition = s.p AND e."offset" <= s.o
         WHERE e.tenant = ${p.add(s.tenant)} AND e.ts >= epoch_ms(${p.add(BigInt(s.cursor))}::BIGINT) AND e.ts < epoch_ms(${p.add(BigInt(end))}::BIGINT))`;
      await c.run(v.aggregate(shadow(id), source, p), p.values);
      await c.run(
        `UPDATE backfills SET cursor = ?, done = (SELECT coalesce(${v.events}, 0) FROM ${shadow(id)}), updated_at = ? WHERE id = ?`,
        [BigInt(end), BigInt(Date.now()), id],
      );
      await c.run('COMMIT');
    } catch (e) {
      await c.run('ROLLBACK').catch(() => undefined);
      throw e;
    }
    const next = (await this.get(c, id))!;
    this.spans.read(id, s.cursor, end, next.done - s.done);
    // Past the range, the next steps sort, catch up and swap (above).
    return next;
  }

  /** Builds whose sorted copy is under way (sortPiece): the cut points of its pieces and the next piece. Lost at a restart, when the copy begins again. */
  private readonly sorting = new Map<string, { cuts: DuckDBValue[][]; next: number }>();

  /**
   * One piece of the sorted copy of a table the view will adopt (its rows in `order`, as the
   * swap of a range writes them), in a transaction of its own on the side connection; answers
   * whether the copy is complete (the copy has then replaced the built table). In pieces of
   * SORT_PIECE_ROWS because DuckDB writes a transaction's rows out at its COMMIT while every
   * other connection's commit waits: the copy of a whole view table in one transaction (400,000
   * rows of sketches) held every tenant's commits for 330-380 ms. A table within one row group
   * is not copied: DuckDB's zone maps skip whole row groups, so order inside one buys nothing.
   * Pieces end between keys of `order`, so no key's rows are split. The built table does not
   * change meanwhile: the catch-up comes after, and a build's steps run one at a time.
   */
  private async sortPiece(c: DuckDBConnection, s: BackfillState, v: BackfillTarget): Promise<boolean> {
    const sorted = sortedCopy(s.id);
    const keys = v.order.split(',').map((k) => k.trim());
    let job = this.sorting.get(s.id);
    if (!job) {
      const counts = (await c.runAndReadAll(`SELECT ${v.order}, count(*) FROM ${shadow(s.id)} GROUP BY ALL ORDER BY ${v.order}`)).getRows();
      if (counts.reduce((n, r) => n + Number(r[keys.length]), 0) <= ROW_GROUP_ROWS) return true;
      // Cut points: the last key of each piece.
      const cuts: DuckDBValue[][] = [];
      let rows = 0;
      for (const r of counts) {
        rows += Number(r[keys.length]);
        if (rows >= SORT_PIECE_ROWS) {
          cuts.push(r.slice(0, keys.length));
          rows = 0;
        }
      }
      if (rows > 0) cuts.push(counts[counts.length - 1]!.slice(0, keys.length));
      // A copy a stopped process began is begun again.
      await c.run(`DROP TABLE IF EXISTS ${sorted}`);
      await c.run(v.ddl(sorted));
      job = { cuts, next: 0 };
      this.sorting.set(s.id, job);
    }
    const p = new Params();
    const after = job.next === 0 ? 'true' : keysAfter(keys, job.cuts[job.next - 1]!, p);
    const upTo = `NOT ${keysAfter(keys, job.cuts[job.next]!, p)}`;
    const last = job.next === job.cuts.length - 1;
    await c.run('BEGIN TRANSACTION');
    try {
      await c.run(`INSERT INTO ${sorted} SELECT * FROM ${shadow(s.id)} WHERE ${after} AND ${upTo} ORDER BY ${v.order}`, p.values);
      if (last) {
        await c.run(`DROP TABLE ${shadow(s.id)}`);
        await c.run(`ALTER TABLE ${sorted} RENAME TO ${shadow(s.id)}`);
      }
      await c.run('COMMIT');
    } catch (e) {
      await c.run('ROLLBACK').catch(() => undefined);
      this.sorting.delete(s.id);
      throw e;
    }
    job.next++;
    if (last) this.sorting.delete(s.id);
    return last;
  }

  private readonly spans = new ChunkSpans();

  /** The time (epoch ms) of the `n`-th event its table reads from the build's cursor and before `before`; null: fewer are there. */
  private async nth(c: DuckDBConnection, s: BackfillState & { cursor: number }, v: BackfillTarget, n: number, before: number): Promise<number | null> {
    const p = new Params();
    const source = `SELECT * FROM events WHERE tenant = ${p.add(s.tenant)} AND ts >= epoch_ms(${p.add(BigInt(s.cursor))}::BIGINT) AND ts < epoch_ms(${p.add(BigInt(before))}::BIGINT)`;
    const rows = (await c.runAndReadAll(`SELECT epoch_ms(ts) FROM (${source}) AS src WHERE ${v.where?.(p) ?? 'true'} ORDER BY ts LIMIT 1 OFFSET ${p.add(BigInt(n))}`, p.values)).getRows();
    return rows[0] ? Number(rows[0][0]) : null;
  }

  /**
   * On the side connection, with live commits going on: the rows of the range committed since
   * the build's snapshot are added to its table, and the snapshot moves up to what is applied
   * now (read in the same transaction, so it agrees with the rows it sees). The swap, which
   * holds commits back, then adds only what arrived during this step; without it, a build
   * that ran for minutes under live load added minutes of rows with every commit waiting (a
   * neighbour's freshness p99 went from 40 ms to 1.2 s when one of twenty costly views finished).
   */
  private async catchUp(c: DuckDBConnection, s: BackfillState & { cursor: number }, v: BackfillTarget, adopting: boolean): Promise<BackfillState & { cursor: number }> {
    await c.run('BEGIN TRANSACTION');
    try {
      const p = new Params();
      const source = `(SELECT e.* FROM events e JOIN applied a ON a.p = e.partition LEFT JOIN backfill_snapshots s ON s.id = ${p.add(s.id)} AND e.partition = s.p
         WHERE ${this.rows(s, adopting, p)} AND (s.o IS NULL OR e."offset" > s.o) AND e."offset" <= a.o)`;
      await c.run(v.aggregate(shadow(s.id), source, p), p.values);
      await c.run('DELETE FROM backfill_snapshots WHERE id = ?', [s.id]);
      await c.run('INSERT INTO backfill_snapshots SELECT ?, p, o FROM applied', [s.id]);
      await c.run('COMMIT');
    } catch (e) {
      await c.run('ROLLBACK').catch(() => undefined);
      throw e;
    }
    return s;
  }

  /**
   * Whether the build's table will replace the live one: a build of the whole history (no
   * from/to asked) of a target that can adopt it (a view). Other builds, a whole one of
   * counts_1m or of typed columns included, replace their range's rows only.
   */
  private async adopting(c: DuckDBConnection, id: string, v: BackfillTarget): Promise<boolean> {
    if (v.adopt === undefined) return false;
    const rows = (await c.runAndReadAll('SELECT whole FROM backfills WHERE id = ?', [id])).getRows();
    return rows[0]?.[0] === true;
  }

  /**
   * The events a build reads past its snapshot: the tenant's in the range; for a build whose
   * table the view adopts, all of the tenant's (an event with a time past the range belongs in
   * the adopted table). A build that replaces its range's rows reads the range only: the live
   * table keeps the rows past it, and a copy of them would count their events twice.
   */
  private rows(s: BackfillState, adopting: boolean, p: Params): string {
    const tenant = `e.tenant = ${p.add(s.tenant)}`;
    return adopting ? tenant : `${tenant} AND e.ts >= epoch_ms(${p.add(BigInt(s.from))}::BIGINT) AND e.ts < epoch_ms(${p.add(BigInt(s.to))}::BIGINT)`;
  }

  /**
   * The catch-up and the swap, with live commits held back. A view built over the tenant's
   * whole history adopts the built table, which holds every committed event once this catch-up
   * is in; other builds replace their range's rows in the live table. `adopting` as the
   * build's steps found it (`whole` does not change after the build's start).
   */
  private finish(s: BackfillState & { cursor: number }, adopting: boolean): Promise<BackfillState> {
    return this.locked(async (c) => {
      const v = this.target(s.tenant, s.view, s.id);
      await c.run('BEGIN TRANSACTION');
      try {
        const p = new Params();
        const source = `(SELECT e.* FROM events e LEFT JOIN backfill_snapshots s ON s.id = ${p.add(s.id)} AND e.partition = s.p
           WHERE ${this.rows(s, adopting, p)} AND (s.o IS NULL OR e."offset" > s.o))`;
        await c.run(v.aggregate(shadow(s.id), source, p), p.values);
        await this.hooks.swapping(c, s.tenant, s.view, s.id, adopting);
        if (adopting) {
          await v.adopt!(c, shadow(s.id));
        } else {
          const range = [s.tenant, BigInt(s.from), BigInt(s.to)];
          await c.run(`DELETE FROM ${v.table} WHERE tenant = $1 AND ${v.bucketColumn} >= $2 AND ${v.bucketColumn} < $3`, range);
          await c.run(`INSERT INTO ${v.table} SELECT * FROM ${shadow(s.id)} ORDER BY ${v.order}`);
          await c.run(`DROP TABLE ${shadow(s.id)}`);
        }
        await c.run(`UPDATE backfills SET status = 'done', updated_at = $1, finished_at = $1 WHERE id = $2`, [BigInt(Date.now()), s.id]);
        await c.run(`UPDATE views SET status = 'ready', error = NULL, updated_at = $1 WHERE build = $2`, [BigInt(Date.now()), s.id]);
        await this.hooks.finished(c, s.id);
        await c.run(`DELETE FROM backfill_snapshots WHERE id = $1`, [s.id]);
        await c.run('COMMIT');
      } catch (e) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
      await this.hooks.changed(c);
      return (await this.get(c, s.id))!;
    });
  }

  async list(tenant?: string): Promise<BackfillState[]> {
    const c = await this.side();
    const rows =
      tenant === undefined
        ? (await c.runAndReadAll(`SELECT ${COLUMNS} FROM backfills ORDER BY started_at DESC`)).getRows()
        : (await c.runAndReadAll(`SELECT ${COLUMNS} FROM backfills WHERE tenant = ? ORDER BY started_at DESC LIMIT 100`, [tenant])).getRows();
    return rows.map((r) => {
      const { cursor: _cursor, ...state } = toState(r);
      return state;
    });
  }

  async fail(id: string, error: string): Promise<void> {
    this.spans.forget(id);
    this.sorting.delete(id);
    await this.locked(async (c) => {
      await c.run(`UPDATE backfills SET status = 'failed', error = ?, updated_at = ? WHERE id = ? AND status = 'running'`, [error.slice(0, 1000), BigInt(Date.now()), id]);
      await c.run(`UPDATE views SET status = 'failed', error = ?, updated_at = ? WHERE build = ?`, [error.slice(0, 1000), BigInt(Date.now()), id]);
      await c.run(`DROP TABLE IF EXISTS ${shadow(id)}`);
      await c.run(`DROP TABLE IF EXISTS ${sortedCopy(id)}`);
      await c.run(`DELETE FROM backfill_snapshots WHERE id = ?`, [id]);
      await this.hooks.changed(c);
    });
  }
}
