import { tooManySavedQueries, type SavedQuery, type SavedQueryInput, type SavedQueryStore } from '../../ports/saved-queries.js';
import { newSavedQueryId, toSavedQuery, type SavedQueryRow } from '../saved-query-rows.js';
import { insertAudit } from './changes.js';
import type { Executor } from './database.js';

/** Saved queries in the PostgreSQL catalog. */
export class PostgresSavedQueries implements SavedQueryStore {
  constructor(private readonly exec: Executor) {}

  async list(tenant: string): Promise<SavedQuery[]> {
    return (await this.exec.query<SavedQueryRow>('SELECT * FROM saved_queries WHERE tenant = $1 ORDER BY name, id', [tenant])).map(toSavedQuery);
  }

  async get(tenant: string, id: string): Promise<SavedQuery | null> {
    const rows = await this.exec.query<SavedQueryRow>('SELECT * FROM saved_queries WHERE tenant = $1 AND id = $2', [tenant, id]);
    return rows[0] ? toSavedQuery(rows[0]) : null;
  }

  async create(tenant: string, input: SavedQueryInput, actor: string, max: number): Promise<SavedQuery> {
    const now = Date.now();
    const id = newSavedQueryId();
    await this.exec.transaction(async (sql) => {
      // One save at a time per tenant (a transaction-scoped lock), so the count holds until the insert commits.
      await sql("SELECT pg_advisory_xact_lock(hashtext('sluice.saved_queries:' || $1))", [tenant]);
      const [row] = await sql<{ n: string }>('SELECT count(*) AS n FROM saved_queries WHERE tenant = $1', [tenant]);
      if (Number(row?.n ?? 0) >= max) throw tooManySavedQueries(max);
      await sql('INSERT INTO saved_queries (tenant, id, name, query, created_at, updated_at, created_by) VALUES ($1, $2, $3, $4, $5, $5, $6)', [
        tenant,
        id,
        input.name,
        JSON.stringify(input.query),
        now,
        actor,
      ]);
      await insertAudit(sql, { tenant, actor, action: 'saved_query.create', subject: id, detail: JSON.stringify({ name: input.name }) }, now);
    });
    return { id, tenant, name: input.name, query: input.query, createdAt: now, updatedAt: now, createdBy: actor };
  }

  async update(tenant: string, id: string, input: SavedQueryInput, actor: string): Promise<SavedQuery | null> {
    const now = Date.now();
    const rows = await this.exec.transaction(async (sql) => {
      const r = await sql<SavedQueryRow>('UPDATE saved_queries SET name = $1, query = $2, updated_at = $3 WHERE tenant = $4 AND id = $5 RETURNING *', [
        input.name,
        JSON.stringify(input.query),
        now,
        tenant,
        id,
      ]);
      if (r.length === 1) await insertAudit(sql, { tenant, actor, action: 'saved_query.update', subject: id, detail: JSON.stringify({ name: input.name }) }, now);
      return r;
    });
    return rows[0] ? toSavedQuery(rows[0]) : null;
  }

  async remove(tenant: string, id: string, actor: string): Promise<boolean> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      const r = await sql('DELETE FROM saved_queries WHERE tenant = $1 AND id = $2 RETURNING id', [tenant, id]);
      if (r.length === 1) await insertAudit(sql, { tenant, actor, action: 'saved_query.delete', subject: id, detail: 'null' }, now);
      return r.length === 1;
    });
  }
}
