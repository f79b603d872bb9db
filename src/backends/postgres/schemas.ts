import type { PublishInput, SchemaStore, SchemaVersion } from '../../ports/schemas.js';
import { nextVersion, publishAudit, toVersion, type SchemaRow } from '../schema-versions.js';
import { bumpEpoch, insertAudit } from './changes.js';
import type { Executor } from './database.js';

/** Schemas in the PostgreSQL catalog. */
export class PostgresSchemas implements SchemaStore {
  constructor(private readonly exec: Executor) {}

  async latest(tenant: string, type: string): Promise<SchemaVersion | null> {
    const rows = await this.exec.query<SchemaRow>('SELECT * FROM schemas WHERE tenant = $1 AND type = $2 ORDER BY version DESC LIMIT 1', [tenant, type]);
    return rows[0] ? toVersion(rows[0]) : null;
  }

  async versions(tenant: string, type: string): Promise<SchemaVersion[]> {
    return (await this.exec.query<SchemaRow>('SELECT * FROM schemas WHERE tenant = $1 AND type = $2 ORDER BY version', [tenant, type])).map(toVersion);
  }

  async list(tenant: string): Promise<SchemaVersion[]> {
    const rows = await this.exec.query<SchemaRow>('SELECT DISTINCT ON (type) * FROM schemas WHERE tenant = $1 ORDER BY type, version DESC', [tenant]);
    return rows.map(toVersion);
  }

  async publish(tenant: string, type: string, input: PublishInput): Promise<SchemaVersion> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      // Publishers of one type queue here, so the version check below sees the last publish.
      await sql('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`sluice:schema:${tenant}:${type}`]);
      const current = await sql<{ v: number | null }>('SELECT max(version) AS v FROM schemas WHERE tenant = $1 AND type = $2', [tenant, type]);
      const row = nextVersion(tenant, type, Number(current[0]?.v ?? 0), input, now);
      await sql(
        'INSERT INTO schemas (tenant, type, version, owner, body, created_at, created_by, forced_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
        [row.tenant, row.type, row.version, row.owner, row.body, row.created_at, row.created_by, row.forced_reason],
      );
      await insertAudit(sql, publishAudit(row, input), now);
      await bumpEpoch(sql);
      return toVersion(row);
    });
  }
}
