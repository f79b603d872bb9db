import { SluiceError } from '../../core/errors.js';
import type { PublishInput, SchemaStore, SchemaVersion } from '../../ports/schemas.js';
import { bumpEpoch, immediate, type SqliteDatabase } from './database.js';

interface Row {
  tenant: string;
  type: string;
  version: number;
  owner: string;
  body: string;
  created_at: number;
  created_by: string;
  forced_reason: string | null;
}

function toVersion(r: Row): SchemaVersion {
  return {
    tenant: r.tenant,
    type: r.type,
    version: r.version,
    owner: r.owner,
    schema: JSON.parse(r.body) as Record<string, unknown>,
    createdAt: r.created_at,
    createdBy: r.created_by,
    forcedReason: r.forced_reason,
  };
}

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
      const version = current?.version ?? 0;
      if (version !== input.expectedVersion) {
        throw new SluiceError(
          'SLUICE_ERR_CONFLICT',
          `schema "${type}" is at version ${version}, not ${input.expectedVersion}: someone published meanwhile; check again and retry`,
          { field: 'expected_version' },
        );
      }
      const row: Row = {
        tenant,
        type,
        version: version + 1,
        owner: input.owner,
        body: JSON.stringify(input.schema),
        created_at: now,
        created_by: input.actor,
        forced_reason: input.forcedReason ?? null,
      };
      this.stmts.insert.run(row.tenant, row.type, row.version, row.owner, row.body, row.created_at, row.created_by, row.forced_reason);
      this.stmts.audit.run(
        tenant,
        now,
        input.actor,
        'schema.publish',
        type,
        JSON.stringify({ version: row.version, owner: row.owner, forced_reason: row.forced_reason, diff: input.diff }),
      );
      bumpEpoch(this.db);
      return toVersion(row);
    });
  }
}
