import { tooManySavedQueries, type SavedQuery, type SavedQueryInput, type SavedQueryStore } from '../../ports/saved-queries.js';
import { newSavedQueryId, toSavedQuery, type SavedQueryRow } from '../saved-query-rows.js';
import { immediate, type SqliteDatabase } from './database.js';

/** Saved queries in the embedded catalog's SQLite file. */
export class SqliteSavedQueries implements SavedQueryStore {
  private readonly stmts;

  constructor(private readonly db: SqliteDatabase) {
    this.stmts = {
      list: db.prepare('SELECT * FROM saved_queries WHERE tenant = ? ORDER BY name, id'),
      count: db.prepare('SELECT count(*) FROM saved_queries WHERE tenant = ?').pluck(),
      get: db.prepare('SELECT * FROM saved_queries WHERE tenant = ? AND id = ?'),
      insert: db.prepare('INSERT INTO saved_queries (tenant, id, name, query, created_at, updated_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      update: db.prepare('UPDATE saved_queries SET name = ?, query = ?, updated_at = ? WHERE tenant = ? AND id = ?'),
      remove: db.prepare('DELETE FROM saved_queries WHERE tenant = ? AND id = ?'),
      audit: db.prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)'),
    };
  }

  async list(tenant: string): Promise<SavedQuery[]> {
    return (this.stmts.list.all(tenant) as SavedQueryRow[]).map(toSavedQuery);
  }

  async get(tenant: string, id: string): Promise<SavedQuery | null> {
    const row = this.stmts.get.get(tenant, id) as SavedQueryRow | undefined;
    return row ? toSavedQuery(row) : null;
  }

  async create(tenant: string, input: SavedQueryInput, actor: string, max: number): Promise<SavedQuery> {
    const now = Date.now();
    const id = newSavedQueryId();
    immediate(this.db, () => {
      if ((this.stmts.count.get(tenant) as number) >= max) throw tooManySavedQueries(max);
      this.stmts.insert.run(tenant, id, input.name, JSON.stringify(input.query), now, now, actor);
      this.stmts.audit.run(tenant, now, actor, 'saved_query.create', id, JSON.stringify({ name: input.name }));
    });
    return { id, tenant, name: input.name, query: input.query, createdAt: now, updatedAt: now, createdBy: actor };
  }

  async update(tenant: string, id: string, input: SavedQueryInput, actor: string): Promise<SavedQuery | null> {
    const now = Date.now();
    const changed = immediate(this.db, () => {
      const n = this.stmts.update.run(input.name, JSON.stringify(input.query), now, tenant, id).changes;
      if (n === 1) this.stmts.audit.run(tenant, now, actor, 'saved_query.update', id, JSON.stringify({ name: input.name }));
      return n === 1;
    });
    return changed ? this.get(tenant, id) : null;
  }

  async remove(tenant: string, id: string, actor: string): Promise<boolean> {
    const now = Date.now();
    return immediate(this.db, () => {
      const n = this.stmts.remove.run(tenant, id).changes;
      if (n === 1) this.stmts.audit.run(tenant, now, actor, 'saved_query.delete', id, 'null');
      return n === 1;
    });
  }
}
