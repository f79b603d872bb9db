import type { PipelinePut, PipelineStore, PipelineVersion } from '../../ports/pipelines.js';
import { checkExpectedVersion, newSalt, toPipelineVersion, type PipelineRow } from '../pipeline-versions.js';
import { bumpEpoch, immediate, type SqliteDatabase } from './database.js';

/** Pipeline versions in the embedded catalog. */
export class SqlitePipelines implements PipelineStore {
  constructor(private readonly db: SqliteDatabase) {}

  async current(tenant: string): Promise<PipelineVersion | null> {
    const row = this.db.prepare('SELECT * FROM pipelines WHERE tenant = ? ORDER BY version DESC LIMIT 1').get(tenant) as PipelineRow | undefined;
    return row ? toPipelineVersion(row) : null;
  }

  async get(tenant: string, version: number): Promise<PipelineVersion | null> {
    const row = this.db.prepare('SELECT * FROM pipelines WHERE tenant = ? AND version = ?').get(tenant, version) as PipelineRow | undefined;
    return row ? toPipelineVersion(row) : null;
  }

  async list(tenant: string, limit: number): Promise<PipelineVersion[]> {
    const n = Math.max(1, Math.min(limit, 1000));
    return (this.db.prepare('SELECT * FROM pipelines WHERE tenant = ? ORDER BY version DESC LIMIT ?').all(tenant, n) as PipelineRow[]).map(toPipelineVersion);
  }

  async put(tenant: string, input: PipelinePut): Promise<PipelineVersion> {
    const now = Date.now();
    return immediate(this.db, () => {
      const last = this.db.prepare('SELECT * FROM pipelines WHERE tenant = ? ORDER BY version DESC LIMIT 1').get(tenant) as PipelineRow | undefined;
      const current = last ? Number(last.version) : 0;
      checkExpectedVersion(tenant, current, input.expectedVersion);
      const row: PipelineRow = { tenant, version: current + 1, steps: JSON.stringify(input.steps), created_at: now, created_by: input.actor };
      this.db.prepare('INSERT INTO pipelines (tenant, version, steps, created_at, created_by) VALUES (?, ?, ?, ?, ?)').run(row.tenant, row.version, row.steps, row.created_at, row.created_by);
      const detail = input.audit(last ? toPipelineVersion(last).steps : null);
      this.db
        .prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)')
        .run(tenant, now, input.actor, 'pipeline.put', `pipeline:${row.version}`, JSON.stringify(detail ?? null));
      bumpEpoch(this.db);
      return toPipelineVersion(row);
    });
  }

  async salt(tenant: string): Promise<string> {
    this.db.prepare('INSERT OR IGNORE INTO pipeline_salts (tenant, salt) VALUES (?, ?)').run(tenant, newSalt());
    return this.db.prepare('SELECT salt FROM pipeline_salts WHERE tenant = ?').pluck().get(tenant) as string;
  }
}
