import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { parseView, viewJson, type ViewDef } from '../../core/query.js';
import { tooManyViews, type ViewSource, type ViewState } from '../../ports/views.js';
import { Params } from '../sql/compile.js';
import { viewMaintainSql, viewTableDdl } from '../sql/views.js';
import { POSTGRES } from './dialect.js';

/**
 * View definitions and their tables on PostgreSQL, shared by every worker and query process.
 * A definition and its table change in one transaction (each version of a view has a table
 * of its own, `view_<random>`), so they never disagree.
 *
 * States of a view: building (its table is maintained live while a backfill fills in the
 * past) → ready (queries may use it); building → failed (the build failed; live upkeep goes
 * on and a new backfill can finish it).
 *
 * There is no process-wide mirror, as the DuckDB store keeps: other processes change views.
 * A commit reads the views of its tenants inside its transaction, after it took its
 * partitions' rows of `applied`; a backfill's start and finish lock `applied` against every
 * commit. So each event is either in a backfill's input (committed before its snapshot), or
 * in its catch-up, or maintained live by a commit that saw the view.
 */

export interface LiveView extends ViewState {
  table: string;
}

const COLUMNS = 'tenant, name, version, definition, tbl, status, build, source, created_at, updated_at, error';

interface Row {
  tenant: string;
  name: string;
  version: number;
  definition: string;
  tbl: string;
  status: LiveView['status'];
  build: string | null;
  source: ViewSource;
  created_at: number;
  updated_at: number;
  error: string | null;
}

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<R[]>;

export class PostgresViews {
  /** Parsed definitions by table: a table holds one version of one view, forever. */
  private readonly defs = new Map<string, ViewDef>();

  private toView(r: Row): LiveView {
    let def = this.defs.get(r.tbl);
    if (!def) {
      def = parseView(r.name, JSON.parse(r.definition));
      if (this.defs.size > 10_000) this.defs.clear();
      this.defs.set(r.tbl, def);
    }
    return {
      tenant: r.tenant,
      name: r.name,
      version: Number(r.version),
      def,
      table: r.tbl,
      status: r.status,
      build: r.build,
      source: r.source,
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
      error: r.error,
    };
  }

  async list(query: Query, tenant: string): Promise<LiveView[]> {
    return (await query<Row>(`SELECT ${COLUMNS} FROM views WHERE tenant = $1 ORDER BY name`, [tenant])).map((r) => this.toView(r));
  }

  async get(query: Query, tenant: string, name: string): Promise<LiveView | null> {
    const rows = await query<Row>(`SELECT ${COLUMNS} FROM views WHERE tenant = $1 AND name = $2`, [tenant, name]);
    return rows[0] ? this.toView(rows[0]) : null;
  }

  /** The views of `tenants`, read inside a commit's transaction (see the note above). */
  async ofTenants(query: Query, tenants: string[]): Promise<LiveView[]> {
    return (await query<Row>(`SELECT ${COLUMNS} FROM views WHERE tenant = ANY($1::text[])`, [tenants])).map((r) => this.toView(r));
  }

  /**
   * Creates or changes a view, in the caller's transaction. The same definition again changes
   * nothing (`changed: false`); a new one replaces the table with an empty one, in state
   * building.
   */
  async put(query: Query, tenant: string, def: ViewDef, source: ViewSource, maxApi?: number): Promise<{ view: LiveView; changed: boolean }> {
    // Two processes declaring the same view at once (the configuration's views) queue here.
    await query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`sluice:view:${tenant}:${def.name}`]);
    const text = JSON.stringify(viewJson(def));
    const current = await this.get(query, tenant, def.name);
    if (current && JSON.stringify(viewJson(current.def)) === text) return { view: current, changed: false };
    if (!current && source === 'api' && maxApi !== undefined) {
      // New views of a tenant from any process, one at a time: the count holds until this transaction ends.
      await query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`sluice:views:${tenant}`]);
      const [row] = await query<{ n: string }>(`SELECT count(*) AS n FROM views WHERE tenant = $1 AND source = 'api'`, [tenant]);
      const declared = Number(row?.n ?? 0);
      if (declared >= maxApi) throw tooManyViews(declared, maxApi);
    }
    const table = `view_${randomBytes(8).toString('hex')}`;
    const now = Date.now();
    await query(viewTableDdl(table, def));
    if (current) {
      await query(`DROP TABLE IF EXISTS ${current.table}`);
      await query(
        `UPDATE views SET version = version + 1, definition = $1, tbl = $2, status = 'building', build = NULL, source = $3, updated_at = $4, error = NULL WHERE tenant = $5 AND name = $6`,
        [text, table, source, now, tenant, def.name],
      );
    } else {
      await query(`INSERT INTO views (${COLUMNS}) VALUES ($1, $2, 1, $3, $4, 'building', NULL, $5, $6, $6, NULL)`, [tenant, def.name, text, table, source, now]);
    }
    return { view: (await this.get(query, tenant, def.name))!, changed: true };
  }

  /** Drops a view and its rows, in the caller's transaction; false when there was none. */
  async remove(query: Query, tenant: string, name: string): Promise<boolean> {
    await query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`sluice:view:${tenant}:${name}`]);
    const current = await this.get(query, tenant, name);
    if (!current) return false;
    await query(`DROP TABLE IF EXISTS ${current.table}`);
    await query(`DELETE FROM views WHERE tenant = $1 AND name = $2`, [tenant, name]);
    return true;
  }

  /** Inside a commit's transaction: adds the rows of `staging` to the views of their tenants. */
  async maintain(query: Query, staging: string, views: readonly LiveView[]): Promise<void> {
    for (const v of views) {
      const p = new Params();
      const source = `(SELECT * FROM ${staging} WHERE tenant = ${p.add(v.tenant)})`;
      await query(viewMaintainSql(POSTGRES, v.table, v.def, source, p), p.values);
    }
  }
}
