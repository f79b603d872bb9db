import type { PublishInput, SchemaStore, SchemaVersion } from '../../ports/schemas.js';
import { nextVersion, publishAudit, toVersion, type SchemaRow as Row } from '../schema-versions.js';
import { bumpEpoch, immediate, type SqliteDatabase } from './database.js';

/** Schemas in the embedded catalog's SQLite file. */
export class SqliteSchemas implements SchemaStore {
  private readonly stmts;

  constructor(private readonly db: SqliteDatabase) {
    this.stmts = {
      latest: db.prepare('SELECT * FROM schemas WHERE tenant = ? AND type = ? ORDER BY version DESC LIMIT 1'),
      versions: db.prepare('SELECT * FROM schemas WHERE tenant = ? AND type = ? ORDER BY version'),
      list: db.prepare(
        `SELECT s.* FROM schemas s JOIN (SELECT type, max(version) AS v FROM schemas WHERE tenant = ? GROUP BY type) m
           ON s.type = m.type AND s.version = m.v WHERE s.tenant = ? ORDER BY s.type`,
      ),
      insert: db.prepare(
        'INSERT INTO schemas (tenant, type, version, owner, body, created_at, created_by, forced_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      audit: db.prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)'),
    };
  }

  async latest(tenant: string, type: string): Promise<SchemaVersion | null> {
    const row = this.stmts.latest.get(tenant, type) as Row | undefined;
    return row ? toVersion(row) : null;
  }

  async versions(tenant: string, type: string): Promise<SchemaVersion[]> {
    return (this.stmts.versions.all(tenant, type) as Row[]).map(toVersion);
  }

  async list(tenant: string): Promise<SchemaVersion[]> {
    return (this.stmts.list.all(tenant, tenant) as Row[]).map(toVersion);
  }

  async publish(tenant: string, type: string, input: PublishInput): Promise<SchemaVersion> {
    const now = Date.now();
    return immediate(this.db, () => {
      const current = this.stmts.latest.get(tenant, type) as Row | undefined;
      const row = nextVersion(tenant, type, current?.version ?? 0, input, now);
      this.stmts.insert.run(row.tenant, row.type, row.version, row.owner, row.body, row.created_at, row.created_by, row.forced_reason);
      const a = publishAudit(row, input);
      this.stmts.audit.run(a.tenant, now, a.actor, a.action, a.subject, a.detail);
      bumpEpoch(this.db);
      return toVersion(row);
    });
  }
}
