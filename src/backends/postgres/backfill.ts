import { randomBytes } from 'node:crypto';
import { SluiceError } from '../../core/errors.js';
import type { BackfillSpec, BackfillState, Backfills } from '../../ports/backfill.js';
import { ChunkSpans, noSuchView, shadow, superseded, wholeBuckets, type BackfillTarget as Target } from '../backfill-plan.js';
import { Params } from '../sql/compile.js';
import type { Sql } from './database.js';

/** A table a backfill rebuilds on PostgreSQL (see backfill-plan.ts). */
export type BackfillTarget = Target<Params>;

export const COUNTS_1M: BackfillTarget = {
  table: 'counts_1m',
  ddl: (name) => `CREATE TABLE ${name} (tenant text NOT NULL, type text NOT NULL, minute bigint NOT NULL, n bigint NOT NULL, PRIMARY KEY (tenant, type, minute))`,
  bucketColumn: 'minute',
  grainMs: 60_000,
  events: 'sum(n)',
  order: 'minute, type',
  aggregate: (into, source) =>
    `INSERT INTO ${into} AS t SELECT tenant, type, ts - ((ts % 60000) + 60000) % 60000 AS minute, count(*) AS n FROM ${source} AS src GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
     ON CONFLICT (tenant, type, minute) DO UPDATE SET n = t.n + excluded.n`,
};

export const BACKFILL_TABLES = `
  CREATE TABLE backfills (
    id text PRIMARY KEY, view text NOT NULL, tenant text NOT NULL,
    range_from bigint NOT NULL, range_to bigint NOT NULL, rate bigint NOT NULL, status text NOT NULL,
    cursor bigint NOT NULL, done bigint NOT NULL, total bigint NOT NULL,
    started_at bigint NOT NULL, updated_at bigint NOT NULL, finished_at bigint, error text
  );
  CREATE INDEX backfills_by_tenant ON backfills (tenant, started_at);
  CREATE TABLE backfill_snapshots (id text NOT NULL, p integer NOT NULL, o bigint NOT NULL, PRIMARY KEY (id, p));
`;

interface Row {
  id: string;
  view: string;
  tenant: string;
  range_from: number;
  range_to: number;
  rate: number;
  status: BackfillState['status'];
  cursor: number;
  done: number;
  total: number;
  started_at: number;
  updated_at: number;
  finished_at: number | null;
  error: string | null;
}

function toState(r: Row): BackfillState & { cursor: number } {
  return {
    id: r.id,
    view: r.view,
    tenant: r.tenant,
    from: Number(r.range_from),
    to: Number(r.range_to),
    rate: Number(r.rate),
    status: r.status,
    cursor: Number(r.cursor),
    done: Number(r.done),
    total: Number(r.total),
    startedAt: Number(r.started_at),
    updatedAt: Number(r.updated_at),
    finishedAt: r.finished_at === null ? null : Number(r.finished_at),
    error: r.error,
  };
}


/** Holds every commit back until the transaction ends (commits take ROW EXCLUSIVE on `applied` first). */
const LOCK_COMMITS = 'LOCK TABLE applied IN SHARE ROW EXCLUSIVE MODE';

/**
 * Backfills on PostgreSQL. Any process that hosts the store may run a step: the step locks
 * its backfill's row, so two processes resuming the same backfill take turns and never
 * aggregate a chunk twice. The start (snapshot) and the finish (catch-up and swap) lock
 * `applied` against every commit, which is what the DuckDB store's commit queue does.
 */
/** A running build as a withdrawal holds it (PostgresBackfills.hold): its range's start and its cursor, epoch ms. */
interface HeldBuild {
  id: string;
  view: string;
  from: number;
  cursor: number;
}

export class PostgresBackfills implements Backfills {
  private readonly spans = new ChunkSpans();

  constructor(
    private readonly tx: <T>(fn: (sql: Sql) => Promise<T>) => Promise<T>,
    private readonly read: Sql,
    private readonly resolve: (sql: Sql, tenant: string, view: string) => Promise<BackfillTarget | null>,
  ) {}

  views(): string[] {
    return ['counts_1m'];
  }

  private async target(sql: Sql, tenant: string, name: string, id?: string): Promise<BackfillTarget> {
    const t = await this.resolve(sql, tenant, name);
    if (!t) throw noSuchView(name);
    if (id !== undefined && t.build !== undefined && t.build !== id) throw superseded(name, t.build);
    return t;
  }

  async start(asked: BackfillSpec): Promise<BackfillState> {
    const id = randomBytes(6).toString('hex');
    const now = Date.now();
    // With every commit held back: the snapshot, the range, the build's table and its row. Its
    // total (what the table reads: a view's type and filters, as `done` counts it) is counted
    // after, in a transaction that holds no commit back: over a tenant's 10M events that count
    // takes seconds, and every worker's commits would wait for it.
    const v = await this.tx(async (sql) => {
      await sql(LOCK_COMMITS);
      const v = await this.target(sql, asked.tenant, asked.view);
      // A view not built yet is built whole (see BackfillTarget.ready): a rebuild of part of its
      // range (a pipeline repair's) would make it ready with the rest of its history missing.
      const spec = v.ready === false ? { ...asked, from: null, to: null } : asked;
      await sql(`INSERT INTO backfill_snapshots (id, p, o) SELECT $1, p, o FROM applied`, [id]);
      const [range] = await sql<{ lo: number | null; hi: number | null }>('SELECT min(ts) AS lo, max(ts) AS hi FROM events WHERE tenant = $1', [spec.tenant]);
      const { from, to } = wholeBuckets(spec, range?.lo ?? null, range?.hi ?? null, now, v.grainMs);
      await sql(v.ddl(shadow(id)));
      if (spec.view !== 'counts_1m') await sql(`UPDATE views SET build = $1 WHERE tenant = $2 AND name = $3`, [id, spec.tenant, spec.view]);
      await sql(
        `INSERT INTO backfills (id, view, tenant, range_from, range_to, rate, status, cursor, done, total, started_at, updated_at, finished_at, error)
         VALUES ($1, $2, $3, $4, $5, $6, 'running', $4, 0, 0, $7, $7, NULL, NULL)`,
        [id, spec.view, spec.tenant, from, to, spec.rate, now],
      );
      return v;
    });
    const counted = this.tx(async (sql) => {
      const s = await this.get(sql, id);
      if (!s) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no backfill ${id}`, { field: 'id' });
      const p = new Params();
      const source = `SELECT e.* FROM events e JOIN backfill_snapshots s ON s.id = ${p.add(id)} AND e.partition = s.p AND e."offset" <= s.o
         WHERE e.tenant = ${p.add(s.tenant)} AND e.ts >= ${p.add(s.from)}::bigint AND e.ts < ${p.add(s.to)}::bigint`;
      const [count] = await sql<{ n: number }>(`SELECT count(*) AS n FROM (${source}) AS src WHERE ${v.where?.(p) ?? 'true'}`, p.values);
      // Only a build still running takes it (a step of another process may have finished it meanwhile: its row stays).
      await sql(`UPDATE backfills SET total = $1 WHERE id = $2 AND status = 'running'`, [Number(count?.n ?? 0), id]);
      return (await this.get(sql, id))!;
    });
    // The total is for progress only: a count that fails leaves it 0 and the build runs all the same.
    return counted.catch(async (e: unknown) => {
      const s = await this.get(this.read, id);
      if (!s) throw e;
      return s;
    });
  }

  private async get(sql: Sql, id: string, forUpdate = false): Promise<(BackfillState & { cursor: number }) | null> {
    const rows = await sql<Row>(`SELECT * FROM backfills WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return rows[0] ? toState(rows[0]) : null;
  }

  async step(id: string, events: number): Promise<BackfillState> {
    const next = await this.tx(async (sql) => {
      const s = await this.get(sql, id, true);
      if (!s) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no backfill ${id}`, { field: 'id' });
      if (s.status !== 'running' || s.cursor >= s.to) return s;
      const v = await this.target(sql, s.tenant, s.view, s.id);
      const end = await this.spans.end(s, events, async (before) => {
        const q = new Params();
        const source = `SELECT * FROM events WHERE tenant = ${q.add(s.tenant)} AND ts >= ${q.add(s.cursor)}::bigint AND ts < ${q.add(before)}::bigint`;
        const [row] = await sql<{ ts: string }>(`SELECT ts FROM (${source}) AS src WHERE ${v.where?.(q) ?? 'true'} ORDER BY ts OFFSET ${q.add(events)} LIMIT 1`, q.values);
        return row ? Number(row.ts) : null;
      });
      const p = new Params();
      const source = `(SELECT e.* FROM events e JOIN backfill_snapshots s ON s.id = ${p.add(id)} AND e.partition = s.p AND e."offset" <= s.o
         WHERE e.tenant = ${p.add(s.tenant)} AND e.ts >= ${p.add(s.cursor)}::bigint AND e.ts < ${p.add(end)}::bigint)`;
      await sql(v.aggregate(shadow(id), source, p), p.values);
      await sql(`UPDATE backfills SET cursor = $1, done = (SELECT coalesce(${v.events}, 0) FROM ${shadow(id)}), updated_at = $2 WHERE id = $3`, [end, Date.now(), id]);
      const after = (await this.get(sql, id))!;
      this.spans.read(id, s.cursor, end, after.done - s.done);
      return after;
    });
    return next.status === 'running' && next.cursor >= next.to ? this.finish(id) : next;
  }

  /** The catch-up and the swap, with commits held back. */
  private finish(id: string): Promise<BackfillState> {
    return this.tx(async (sql) => {
      await sql(LOCK_COMMITS);
      const s = (await this.get(sql, id, true))!;
      // A withdraw between the last chunk and here rewound the build (see rewind): it goes on.
      if (s.status !== 'running' || s.cursor < s.to) return s;
      const v = await this.target(sql, s.tenant, s.view, s.id);
      const p = new Params();
      const source = `(SELECT e.* FROM events e LEFT JOIN backfill_snapshots s ON s.id = ${p.add(s.id)} AND e.partition = s.p
         WHERE e.tenant = ${p.add(s.tenant)} AND e.ts >= ${p.add(s.from)}::bigint AND e.ts < ${p.add(s.to)}::bigint AND (s.o IS NULL OR e."offset" > s.o))`;
      await sql(v.aggregate(shadow(s.id), source, p), p.values);
      await sql(`DELETE FROM ${v.table} WHERE tenant = $1 AND ${v.bucketColumn} >= $2 AND ${v.bucketColumn} < $3`, [s.tenant, s.from, s.to]);
      await sql(`INSERT INTO ${v.table} SELECT * FROM ${shadow(s.id)} ORDER BY ${v.order}`);
      const now = Date.now();
      await sql(`UPDATE backfills SET status = 'done', updated_at = $1, finished_at = $1 WHERE id = $2`, [now, s.id]);
      await sql(`UPDATE views SET status = 'ready', error = NULL, updated_at = $1 WHERE build = $2`, [now, s.id]);
      await sql(`DROP TABLE ${shadow(s.id)}`);
      await sql(`DELETE FROM backfill_snapshots WHERE id = $1`, [s.id]);
      return (await this.get(sql, s.id))!;
    });
  }

  /**
   * Locks the tenant's running builds for the caller's transaction (a withdraw's), before it
   * takes anything else: a step or a swap running now ends first, the next waits for the
   * transaction to end and reads the events without what it deleted. Answers them for rewind.
   */
  async hold(sql: Sql, tenant: string): Promise<HeldBuild[]> {
    const rows = await sql<Row>(`SELECT * FROM backfills WHERE tenant = $1 AND status = 'running' ORDER BY id FOR UPDATE`, [tenant]);
    return rows.map((r) => ({ id: r.id, view: r.view, from: Number(r.range_from), cursor: Number(r.cursor) }));
  }

  /**
   * Takes back what the held builds read of events the caller's transaction deleted (times
   * `ts`): each goes back to the bucket of the earliest of them it had read, dropping its built
   * rows from there on, and reads on from its snapshot, which no longer holds them. Its swap would
   * otherwise put them back into the table (counts_1m is not rebuilt after a withdraw).
   */
  async rewind(sql: Sql, tenant: string, held: readonly HeldBuild[], ts: readonly number[]): Promise<void> {
    for (const b of held) {
      let first = Infinity;
      for (const t of ts) if (t >= b.from && t < b.cursor && t < first) first = t;
      if (first === Infinity) continue;
      // A view removed since is left to its step, which fails the build.
      const v = await this.resolve(sql, tenant, b.view);
      if (!v) continue;
      const back = Math.max(b.from, Math.floor(first / v.grainMs) * v.grainMs);
      await sql(`DELETE FROM ${shadow(b.id)} WHERE ${v.bucketColumn} >= $1`, [back]);
      await sql(`UPDATE backfills SET cursor = $1, done = (SELECT coalesce(${v.events}, 0) FROM ${shadow(b.id)}), updated_at = $2 WHERE id = $3`, [back, Date.now(), b.id]);
    }
  }

  async list(tenant?: string): Promise<BackfillState[]> {
    const rows =
      tenant === undefined
        ? await this.read<Row>('SELECT * FROM backfills ORDER BY started_at DESC')
        : await this.read<Row>('SELECT * FROM backfills WHERE tenant = $1 ORDER BY started_at DESC LIMIT 100', [tenant]);
    return rows.map((r) => {
      const { cursor: _cursor, ...state } = toState(r);
      return state;
    });
  }

  async fail(id: string, error: string): Promise<void> {
    this.spans.forget(id);
    await this.tx(async (sql) => {
      const now = Date.now();
      await sql(`UPDATE backfills SET status = 'failed', error = $1, updated_at = $2 WHERE id = $3 AND status = 'running'`, [error.slice(0, 1000), now, id]);
      await sql(`UPDATE views SET status = 'failed', error = $1, updated_at = $2 WHERE build = $3`, [error.slice(0, 1000), now, id]);
      await sql(`DROP TABLE IF EXISTS ${shadow(id)}`);
      await sql(`DELETE FROM backfill_snapshots WHERE id = $1`, [id]);
    });
  }
}
