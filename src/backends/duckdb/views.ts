import { randomBytes } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import { parseView, viewJson, type ViewDef } from '../../core/query.js';
import { tooManyViews, type ViewSource, type ViewState } from '../../ports/views.js';
import { INTERVAL_MS } from '../../core/time.js';
import { VIEW_ROW_ORDER } from '../sql/views.js';
import type { BackfillTarget } from './backfill.js';
import { viewMaintainSql, viewTableDdl, viewWhereSql, type Params } from './query-sql.js';

/**
 * View definitions and their tables, in the store itself: a definition and the table that
 * holds its rows change in one transaction, so they never disagree. Each version of a
 * view has a table of its own (`view_<random>`); a changed definition gets a new, empty
 * table, built by backfill, and queries read raw events until the build is done.
 *
 * States of a view: building (its table gains live events, by folds (view-folds.ts), while a
 * backfill fills in the past) → ready (queries may use it) ; building → failed (the build
 * failed; live upkeep goes on and a new backfill can finish it).
 *
 * The in-memory mirror is reloaded after every transaction that changes the table; it is
 * valid because the store is the only writer.
 */
export const VIEWS_SCHEMA = `
  CREATE TABLE IF NOT EXISTS views (
    tenant VARCHAR NOT NULL, name VARCHAR NOT NULL, version INTEGER NOT NULL, definition VARCHAR NOT NULL,
    tbl VARCHAR NOT NULL, status VARCHAR NOT NULL, build VARCHAR, source VARCHAR NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, error VARCHAR,
    PRIMARY KEY (tenant, name)
  );
  -- The last commit sequence folded into the view's table (view-folds.ts); 0 in data
  -- directories made before views were folded outside commits, which have no pending rows.
  ALTER TABLE views ADD COLUMN IF NOT EXISTS folded BIGINT DEFAULT 0;
`;

export interface LiveView extends ViewState {
  table: string;
  /** The last commit sequence folded into `table` (view-folds.ts). */
  folded: number;
}

const COLUMNS = 'tenant, name, version, definition, tbl, status, build, source, created_at, updated_at, error, folded';

export class DuckdbViews {
  private byTenant = new Map<string, LiveView[]>();

  constructor(
    private readonly locked: <T>(fn: (c: DuckDBConnection) => Promise<T>) => Promise<T>,
    /** The last commit sequence (view-folds.ts): a new table folds what is committed after it; its build reads the rest from raw. */
    private readonly sequence: () => number = () => 0,
  ) {}

  async load(c: DuckDBConnection): Promise<void> {
    const rows = (await c.runAndReadAll(`SELECT ${COLUMNS} FROM views ORDER BY tenant, name`)).getRows();
    const next = new Map<string, LiveView[]>();
    for (const [tenant, name, version, definition, tbl, status, build, source, createdAt, updatedAt, error, folded] of rows) {
      const v: LiveView = {
        tenant: String(tenant),
        name: String(name),
        version: Number(version),
        def: parseView(String(name), JSON.parse(String(definition))),
        table: String(tbl),
        status: String(status) as LiveView['status'],
        build: build === null ? null : String(build),
        source: String(source) as ViewSource,
        createdAt: Number(createdAt),
        updatedAt: Number(updatedAt),
        error: error === null ? null : String(error),
        folded: Number(folded ?? 0),
      };
      const list = next.get(v.tenant) ?? [];
      list.push(v);
      next.set(v.tenant, list);
    }
    this.byTenant = next;
  }

  /**
   * At open, after `load`: view tables made with a PRIMARY KEY (before views were maintained by
   * MERGE, query-sql.ts viewTableDdl) are rewritten without it, once each, rows unchanged, in
   * the order a build writes them (VIEW_ROW_ORDER). Their key index is what held the store's
   * memory.
   */
  async dropKeys(c: DuckDBConnection): Promise<void> {
    const keyed = new Set(
      (await c.runAndReadAll(`SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' AND schema_name = 'main' AND starts_with(table_name, 'view_')`)).getRows().map(([t]) => String(t)),
    );
    for (const v of [...this.byTenant.values()].flat()) {
      if (!keyed.has(v.table)) continue;
      const next = `${v.table}_unkeyed`;
      await c.run('BEGIN TRANSACTION');
      try {
        await c.run(viewTableDdl(next, v.def));
        await c.run(`INSERT INTO ${next} SELECT * FROM ${v.table} ORDER BY ${VIEW_ROW_ORDER}`);
        await c.run(`DROP TABLE ${v.table}`);
        await c.run(`ALTER TABLE ${next} RENAME TO ${v.table}`);
        await c.run('COMMIT');
      } catch (e) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
    }
  }

  list(tenant: string): LiveView[] {
    return this.byTenant.get(tenant) ?? [];
  }

  get(tenant: string, name: string): LiveView | null {
    return this.list(tenant).find((v) => v.name === name) ?? null;
  }

  /**
   * What a backfill of the view `name` writes and how (see backfill-plan.ts), or null when
   * the tenant has no such view. The built table takes the live one's name when it is adopted,
   * so queries planned before the swap read it.
   */
  target(tenant: string, name: string): BackfillTarget | null {
    const v = this.get(tenant, name);
    if (!v) return null;
    return {
      table: v.table,
      ddl: (t) => viewTableDdl(t, v.def),
      bucketColumn: 'bucket',
      grainMs: INTERVAL_MS[v.def.grain],
      events: 'sum(n) FILTER (WHERE m = 0)',
      order: VIEW_ROW_ORDER,
      aggregate: (into: string, source: string, p: Params) => viewMaintainSql(into, v.def, source, p),
      where: (p: Params) => viewWhereSql(v.def, p),
      build: v.build,
      ready: v.status === 'ready',
      adopt: async (c, built) => {
        await c.run(`DROP TABLE ${v.table}`);
        await c.run(`ALTER TABLE ${built} RENAME TO ${v.table}`);
      },
    };
  }

  /** Views that answer queries. */
  ready(tenant: string): LiveView[] {
    return this.list(tenant).filter((v) => v.status === 'ready');
  }

  /** Tenants with at least one view: their commits go through the staging table. */
  has(tenant: string): boolean {
    return this.byTenant.has(tenant);
  }

  /**
   * Creates or changes a view. The same definition again changes nothing (`changed: false`);
   * a new one replaces the table with an empty one, in state building.
   */
  put(tenant: string, def: ViewDef, source: ViewSource, maxApi?: number): Promise<{ view: LiveView; changed: boolean }> {
    const text = JSON.stringify(viewJson(def));
    return this.locked(async (c) => {
      const current = this.get(tenant, def.name);
      if (current && JSON.stringify(viewJson(current.def)) === text) return { view: current, changed: false };
      // One writer (this store's lock): the count and the insert cannot interleave with another put.
      if (!current && source === 'api' && maxApi !== undefined) {
        const declared = this.list(tenant).filter((v) => v.source === 'api').length;
        if (declared >= maxApi) throw tooManyViews(declared, maxApi);
      }
      const table = `view_${randomBytes(8).toString('hex')}`;
      const now = BigInt(Date.now());
      await c.run('BEGIN TRANSACTION');
      try {
        await c.run(viewTableDdl(table, def));
        if (current) {
          await c.run(`DROP TABLE IF EXISTS ${current.table}`);
          await c.run(`UPDATE views SET version = version + 1, definition = $1, tbl = $2, status = 'building', build = NULL, source = $3, updated_at = $4, error = NULL, folded = $7 WHERE tenant = $5 AND name = $6`, [
            text, table, source, now, tenant, def.name, BigInt(this.sequence()),
          ]);
        } else {
          await c.run(`INSERT INTO views (${COLUMNS}) VALUES ($1, $2, 1, $3, $4, 'building', NULL, $5, $6, $6, NULL, $7)`, [tenant, def.name, text, table, source, now, BigInt(this.sequence())]);
        }
        await c.run('COMMIT');
      } catch (e) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
      await this.load(c);
      return { view: this.get(tenant, def.name)!, changed: true };
    });
  }

  remove(tenant: string, name: string): Promise<boolean> {
    return this.locked(async (c) => {
      const current = this.get(tenant, name);
      if (!current) return false;
      await c.run('BEGIN TRANSACTION');
      try {
        await c.run(`DROP TABLE IF EXISTS ${current.table}`);
        await c.run(`DELETE FROM views WHERE tenant = $1 AND name = $2`, [tenant, name]);
        await c.run('COMMIT');
      } catch (e) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
      await this.load(c);
      return true;
    });
  }
}
