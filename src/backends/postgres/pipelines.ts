import type { PipelinePut, PipelineStore, PipelineVersion } from '../../ports/pipelines.js';
import { checkExpectedVersion, newSalt, noSuchVersion, toPipelineVersion, type PipelineRow } from '../pipeline-versions.js';
import { bumpEpoch, insertAudit } from './changes.js';
import type { Executor, Sql } from './database.js';

const LIVE = 'SELECT p.* FROM pipeline_live l JOIN pipelines p ON p.tenant = l.tenant AND p.version = l.version WHERE l.tenant = $1';
const SET_LIVE = 'INSERT INTO pipeline_live (tenant, version) VALUES ($1, $2) ON CONFLICT (tenant) DO UPDATE SET version = excluded.version';

/** Pipeline versions in the PostgreSQL catalog; `pipeline_live` names each tenant's live one. */
export class PostgresPipelines implements PipelineStore {
  constructor(private readonly exec: Executor) {}

  async current(tenant: string): Promise<PipelineVersion | null> {
    const rows = await this.exec.query<PipelineRow>(LIVE, [tenant]);
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
      const live = (await sql<PipelineRow>(LIVE, [tenant]))[0];
      checkExpectedVersion(tenant, live ? Number(live.version) : 0, input.expectedVersion);
      const newest = Number((await sql<{ v: number }>('SELECT COALESCE(MAX(version), 0) AS v FROM pipelines WHERE tenant = $1', [tenant]))[0]!.v);
      const activate = input.activate !== false;
      const row: PipelineRow = { tenant, version: newest + 1, steps: JSON.stringify(input.steps), created_at: now, created_by: input.actor };
      await sql('INSERT INTO pipelines (tenant, version, steps, created_at, created_by) VALUES ($1, $2, $3, $4, $5)', [row.tenant, row.version, row.steps, row.created_at, row.created_by]);
      if (activate) await sql(SET_LIVE, [tenant, row.version]);
      const detail = input.audit(live ? toPipelineVersion(live).steps : null);
      await insertAudit(sql, { tenant, actor: input.actor, action: activate ? 'pipeline.put' : 'pipeline.store', subject: `pipeline:${row.version}`, detail: JSON.stringify(detail ?? null) }, now);
      if (activate) await bumpEpoch(sql);
      return toPipelineVersion(row);
    });
  }

  async activate(tenant: string, version: number, actor: string, detail: unknown): Promise<PipelineVersion> {
    return this.exec.transaction((sql) => activateIn(sql, tenant, version, actor, detail, Date.now()));
  }

  async salt(tenant: string): Promise<string> {
    await this.exec.query('INSERT INTO pipeline_salts (tenant, salt) VALUES ($1, $2) ON CONFLICT (tenant) DO NOTHING', [tenant, newSalt()]);
    const rows = await this.exec.query<{ salt: string }>('SELECT salt FROM pipeline_salts WHERE tenant = $1', [tenant]);
    return rows[0]!.salt;
  }
}

/**
 * Makes a stored version live inside the caller's transaction (after the tenant's pipeline
 * lock, as `put` takes it), audited `pipeline.activate` with `{before, ...detail}`; nothing when
 * it is live already. SLUICE_ERR_NOT_FOUND when the tenant has no such version.
 */
export async function activateIn(sql: Sql, tenant: string, version: number, actor: string, detail: unknown, now: number): Promise<PipelineVersion> {
  await sql('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`sluice:pipeline:${tenant}`]);
  const row = (await sql<PipelineRow>('SELECT * FROM pipelines WHERE tenant = $1 AND version = $2', [tenant, version]))[0];
  if (!row) throw noSuchVersion(version);
  const live = (await sql<{ version: number }>('SELECT version FROM pipeline_live WHERE tenant = $1', [tenant]))[0];
  if (live && Number(live.version) === version) return toPipelineVersion(row);
  await sql(SET_LIVE, [tenant, version]);
  const audit = { tenant, actor, action: 'pipeline.activate', subject: `pipeline:${version}`, detail: JSON.stringify({ before: live ? Number(live.version) : 0, ...(detail as object) }) };
  await insertAudit(sql, audit, now);
  await bumpEpoch(sql);
  return toPipelineVersion(row);
}
