import type { PipelinePut, PipelineStore, PipelineVersion } from '../../ports/pipelines.js';
import { checkExpectedVersion, newSalt, toPipelineVersion, type PipelineRow } from '../pipeline-versions.js';
import { bumpEpoch, insertAudit } from './changes.js';
import type { Executor } from './database.js';

/** Pipeline versions in the PostgreSQL catalog. */
export class PostgresPipelines implements PipelineStore {
  constructor(private readonly exec: Executor) {}

  async current(tenant: string): Promise<PipelineVersion | null> {
    const rows = await this.exec.query<PipelineRow>('SELECT * FROM pipelines WHERE tenant = $1 ORDER BY version DESC LIMIT 1', [tenant]);
    return rows[0] ? toPipelineVersion(rows[0]) : null;
  }

  async get(tenant: string, version: number): Promise<PipelineVersion | null> {
    const rows = await this.exec.query<PipelineRow>('SELECT * FROM pipelines WHERE tenant = $1 AND version = $2', [tenant, version]);
    return rows[0] ? toPipelineVersion(rows[0]) : null;
  }

  async list(tenant: string, limit: number): Promise<PipelineVersion[]> {
    const n = Math.max(1, Math.min(limit, 1000));
    return (await this.exec.query<PipelineRow>('SELECT * FROM pipelines WHERE tenant = $1 ORDER BY version DESC LIMIT $2', [tenant, n])).map(toPipelineVersion);
  }

  async put(tenant: string, input: PipelinePut): Promise<PipelineVersion> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      // Writers of one tenant's pipeline queue here, so the version check sees the last write.
      await sql('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`sluice:pipeline:${tenant}`]);
      const last = (await sql<PipelineRow>('SELECT * FROM pipelines WHERE tenant = $1 ORDER BY version DESC LIMIT 1', [tenant]))[0];
      const current = last ? Number(last.version) : 0;
      checkExpectedVersion(tenant, current, input.expectedVersion);
      const row: PipelineRow = { tenant, version: current + 1, steps: JSON.stringify(input.steps), created_at: now, created_by: input.actor };
      await sql('INSERT INTO pipelines (tenant, version, steps, created_at, created_by) VALUES ($1, $2, $3, $4, $5)', [row.tenant, row.version, row.steps, row.created_at, row.created_by]);
      const detail = input.audit(last ? toPipelineVersion(last).steps : null);
      await insertAudit(sql, { tenant, actor: input.actor, action: 'pipeline.put', subject: `pipeline:${row.version}`, detail: JSON.stringify(detail ?? null) }, now);
      await bumpEpoch(sql);
      return toPipelineVersion(row);
    });
  }

  async salt(tenant: string): Promise<string> {
    await this.exec.query('INSERT INTO pipeline_salts (tenant, salt) VALUES ($1, $2) ON CONFLICT (tenant) DO NOTHING', [tenant, newSalt()]);
    const rows = await this.exec.query<{ salt: string }>('SELECT salt FROM pipeline_salts WHERE tenant = $1', [tenant]);
    return rows[0]!.salt;
  }
}
