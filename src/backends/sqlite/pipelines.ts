import type { PipelinePut, PipelineStore, PipelineVersion } from '../../ports/pipelines.js';
import { checkExpectedVersion, newSalt, noSuchVersion, toPipelineVersion, type PipelineRow } from '../pipeline-versions.js';
import { bumpEpoch, immediate, type SqliteDatabase } from './database.js';

const LIVE = 'SELECT p.* FROM pipeline_live l JOIN pipelines p ON p.tenant = l.tenant AND p.version = l.version WHERE l.tenant = ?';

/** Pipeline versions in the embedded catalog; `pipeline_live` names each tenant's live one. */
export class SqlitePipelines implements PipelineStore {
  constructor(private readonly db: SqliteDatabase) {}

  async current(tenant: string): Promise<PipelineVersion | null> {
    const row = this.db.prepare(LIVE).get(tenant) as PipelineRow | undefined;
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
      const live = this.db.prepare(LIVE).get(tenant) as PipelineRow | undefined;
      checkExpectedVersion(tenant, live ? Number(live.version) : 0, input.expectedVersion);
      const newest = Number(this.db.prepare('SELECT COALESCE(MAX(version), 0) FROM pipelines WHERE tenant = ?').pluck().get(tenant));
      const activate = input.activate !== false;
      const row: PipelineRow = { tenant, version: newest + 1, steps: JSON.stringify(input.steps), created_at: now, created_by: input.actor };
      this.db.prepare('INSERT INTO pipelines (tenant, version, steps, created_at, created_by) VALUES (?, ?, ?, ?, ?)').run(row.tenant, row.version, row.steps, row.created_at, row.created_by);
      if (activate) this.db.prepare('INSERT INTO pipeline_live (tenant, version) VALUES (?, ?) ON CONFLICT (tenant) DO UPDATE SET version = excluded.version').run(tenant, row.version);
      const detail = input.audit(live ? toPipelineVersion(live).steps : null);
      this.db
        .prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)')
        .run(tenant, now, input.actor, activate ? 'pipeline.put' : 'pipeline.store', `pipeline:${row.version}`, JSON.stringify(detail ?? null));
      if (activate) bumpEpoch(this.db);
      return toPipelineVersion(row);
    });
  }

  async activate(tenant: string, version: number, actor: string, detail: unknown): Promise<PipelineVersion> {
    return immediate(this.db, () => activateIn(this.db, tenant, version, actor, detail, Date.now()));
  }

  async salt(tenant: string): Promise<string> {
    this.db.prepare('INSERT OR IGNORE INTO pipeline_salts (tenant, salt) VALUES (?, ?)').run(tenant, newSalt());
    return this.db.prepare('SELECT salt FROM pipeline_salts WHERE tenant = ?').pluck().get(tenant) as string;
  }
}

/**
 * Makes a stored version live inside the caller's transaction, audited `pipeline.activate`
 * with `{before, ...detail}`; nothing when it is live already. SLUICE_ERR_NOT_FOUND when the
 * tenant has no such version.
 */
export function activateIn(db: SqliteDatabase, tenant: string, version: number, actor: string, detail: unknown, now: number): PipelineVersion {
  const row = db.prepare('SELECT * FROM pipelines WHERE tenant = ? AND version = ?').get(tenant, version) as PipelineRow | undefined;
  if (!row) throw noSuchVersion(version);
  const live = db.prepare('SELECT version FROM pipeline_live WHERE tenant = ?').pluck().get(tenant) as number | undefined;
  if (live === version) return toPipelineVersion(row);
  db.prepare('INSERT INTO pipeline_live (tenant, version) VALUES (?, ?) ON CONFLICT (tenant) DO UPDATE SET version = excluded.version').run(tenant, version);
  db.prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)').run(
    tenant,
    now,
    actor,
    'pipeline.activate',
    `pipeline:${version}`,
    JSON.stringify({ before: live ?? 0, ...(detail as object) }),
  );
  bumpEpoch(db);
  return toPipelineVersion(row);
}
