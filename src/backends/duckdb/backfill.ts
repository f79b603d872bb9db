import { randomBytes } from 'node:crypto';
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import { SluiceError } from '../../core/errors.js';
import type { BackfillSpec, BackfillState, Backfills } from '../../ports/backfill.js';

/** The tables a backfill can rebuild, with the SQL that aggregates raw events into them. */
const VIEWS: Record<string, { columns: string; key: string; aggregate: string; select: string }> = {
  counts_1m: {
    columns: 'tenant VARCHAR NOT NULL, type VARCHAR NOT NULL, minute BIGINT NOT NULL, n BIGINT NOT NULL',
    key: 'tenant, type, minute',
    aggregate: 'n = n + excluded.n',
    select: `SELECT e.tenant, e.type, (epoch_ms(e.ts) // 60000) * 60000 AS minute, count(*) AS n`,
  },
};

export const BACKFILL_SCHEMA = `
  CREATE TABLE IF NOT EXISTS backfills (
    id VARCHAR PRIMARY KEY, view VARCHAR NOT NULL, tenant VARCHAR NOT NULL,
    range_from BIGINT NOT NULL, range_to BIGINT NOT NULL, rate BIGINT NOT NULL, status VARCHAR NOT NULL,
    cursor BIGINT NOT NULL, done BIGINT NOT NULL, total BIGINT NOT NULL,
    started_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, finished_at BIGINT, error VARCHAR
  );
  CREATE TABLE IF NOT EXISTS backfill_snapshots (id VARCHAR NOT NULL, p INTEGER NOT NULL, o BIGINT NOT NULL, PRIMARY KEY (id, p));
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

const shadow = (id: string) => `backfill_${id}`;
const MINUTE = 60_000;

/**
 * Backfills on DuckDB. `locked` runs a function on the writer connection with live commits
 * held back (the store's commit queue); chunks run on a connection of their own, so live
 * commits go on meanwhile (DuckDB's MVCC: they write other tables).
 */
export class DuckdbBackfills implements Backfills {
  constructor(
    private readonly locked: <T>(fn: (c: DuckDBConnection) => Promise<T>) => Promise<T>,
    private readonly side: () => Promise<DuckDBConnection>,
  ) {}

  views(): string[] {
    return Object.keys(VIEWS);
  }

  private view(name: string) {
    const v = VIEWS[name];
    if (!v) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no view "${name}"; views: ${Object.keys(VIEWS).join(', ')}`, { field: 'view' });
    return v;
  }

  async start(spec: BackfillSpec): Promise<BackfillState> {
    const v = this.view(spec.view);
    const id = randomBytes(6).toString('hex');
    const now = Date.now();
    return this.locked(async (c) => {
      await c.run('BEGIN TRANSACTION');
      try {
        await c.run(`INSERT INTO backfill_snapshots SELECT ?, p, o FROM applied`, [id]);
        const [[minTs, maxTs]] = (
          await c.runAndReadAll(`SELECT min(epoch_ms(ts)), max(epoch_ms(ts)) FROM events WHERE tenant = ?`, [spec.tenant])
        ).getRows() as [bigint | null, bigint | null][];
        const from = Math.floor((spec.from ?? Number(minTs ?? now)) / MINUTE) * MINUTE;
        const to = Math.ceil((spec.to ?? Number(maxTs ?? now) + 1) / MINUTE) * MINUTE;
        if (to <= from) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"to" must be after "from"', { field: 'to' });
        const [[total]] = (
          await c.runAndReadAll(
            `SELECT count(*) FROM events e JOIN backfill_snapshots s ON s.id = ? AND e.partition = s.p AND e."offset" <= s.o
             WHERE e.tenant = ? AND e.ts >= epoch_ms(?::BIGINT) AND e.ts < epoch_ms(?::BIGINT)`,
            [id, spec.tenant, BigInt(from), BigInt(to)],
          )
        ).getRows() as [bigint][];
        await c.run(`CREATE TABLE ${shadow(id)} (${v.columns}, PRIMARY KEY (${v.key}))`);
        await c.run(`INSERT INTO backfills (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, 0, ?, ?, ?, NULL, NULL)`, [
          id, spec.view, spec.tenant, BigInt(from), BigInt(to), BigInt(spec.rate), BigInt(from), total!, BigInt(now), BigInt(now),
        ]);
        await c.run('COMMIT');
      } catch (e) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
      return (await this.get(c, id))!;
    });
  }

  private async get(c: DuckDBConnection, id: string): Promise<(BackfillState & { cursor: number }) | null> {
    const rows = (await c.runAndReadAll(`SELECT ${COLUMNS} FROM backfills WHERE id = ?`, [id])).getRows();
    return rows[0] ? toState(rows[0]) : null;
  }

  async step(id: string, events: number): Promise<BackfillState> {
    const c = await this.side();
    const s = await this.get(c, id);
    if (!s) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no backfill ${id}`, { field: 'id' });
    if (s.status !== 'running') return s;
    const v = this.view(s.view);
    if (s.cursor >= s.to) return this.finish(s);
    // A chunk spans the time that should hold about `events` input events (from the mean
    // density so far), whole minutes, so that a minute's rows are built by one chunk.
    const density = s.total / Math.max(MINUTE, s.to - s.from);
    const span = Math.max(MINUTE, Math.floor(events / Math.max(density, 1e-9) / MINUTE) * MINUTE);
    const end = Math.min(s.to, s.cursor + span);
    await c.run('BEGIN TRANSACTION');
    try {
      await c.run(
        `INSERT INTO ${shadow(id)} ${v.select}
         FROM events e JOIN backfill_snapshots s ON s.id = ? AND e.partition = s.p AND e."offset" <= s.o
         WHERE e.tenant = ? AND e.ts >= epoch_ms(?::BIGINT) AND e.ts < epoch_ms(?::BIGINT)
         GROUP BY ALL ON CONFLICT DO UPDATE SET ${v.aggregate}`,
        [id, s.tenant, BigInt(s.cursor), BigInt(end)],
      );
      await c.run(
        `UPDATE backfills SET cursor = ?, done = (SELECT coalesce(sum(n), 0) FROM ${shadow(id)}), updated_at = ? WHERE id = ?`,
        [BigInt(end), BigInt(Date.now()), id],
      );
      await c.run('COMMIT');
    } catch (e) {
      await c.run('ROLLBACK').catch(() => undefined);
      throw e;
    }
    const next = (await this.get(c, id))!;
    return next.cursor >= next.to ? this.finish(next) : next;
  }

  /** The catch-up and the swap, with live commits held back. */
  private finish(s: BackfillState & { cursor: number }): Promise<BackfillState> {
    const v = this.view(s.view);
    return this.locked(async (c) => {
      await c.run('BEGIN TRANSACTION');
      try {
        await c.run(
          `INSERT INTO ${shadow(s.id)} ${v.select}
           FROM events e LEFT JOIN backfill_snapshots s ON s.id = ? AND e.partition = s.p
           WHERE e.tenant = ? AND e.ts >= epoch_ms(?::BIGINT) AND e.ts < epoch_ms(?::BIGINT) AND (s.o IS NULL OR e."offset" > s.o)
           GROUP BY ALL ON CONFLICT DO UPDATE SET ${v.aggregate}`,
          [s.id, s.tenant, BigInt(s.from), BigInt(s.to)],
        );
        await c.run(`DELETE FROM ${s.view} WHERE tenant = ? AND minute >= ? AND minute < ?`, [s.tenant, BigInt(s.from), BigInt(s.to)]);
        await c.run(`INSERT INTO ${s.view} SELECT * FROM ${shadow(s.id)}`);
        await c.run(`UPDATE backfills SET status = 'done', updated_at = ?, finished_at = ? WHERE id = ?`, [BigInt(Date.now()), BigInt(Date.now()), s.id]);
        await c.run(`DROP TABLE ${shadow(s.id)}`);
        await c.run(`DELETE FROM backfill_snapshots WHERE id = ?`, [s.id]);
        await c.run('COMMIT');
      } catch (e) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
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
    const c = await this.side();
    await c.run(`UPDATE backfills SET status = 'failed', error = ?, updated_at = ? WHERE id = ? AND status = 'running'`, [error.slice(0, 1000), BigInt(Date.now()), id]);
    await c.run(`DROP TABLE IF EXISTS ${shadow(id)}`);
    await c.run(`DELETE FROM backfill_snapshots WHERE id = ?`, [id]);
  }
}
