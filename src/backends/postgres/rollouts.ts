import { mergeDiff, ZERO_DIFF, ZERO_TALLY, type NewRolloutRecord, type RolloutDiff, type RolloutRecord, type RolloutSide, type RolloutStore, type RolloutTally, type MakeLive } from '../../ports/rollouts.js';
import { activeRolloutExists, toRolloutRecord, type RolloutRow } from '../rollout-rows.js';
import { bumpEpoch, insertAudit } from './changes.js';
import type { Executor } from './database.js';
import { activateIn } from './pipelines.js';

/** Rollouts in the PostgreSQL catalog (see RolloutStore). */
export class PostgresRollouts implements RolloutStore {
  constructor(private readonly exec: Executor) {}

  async create(r: NewRolloutRecord, actor: string, detail: unknown): Promise<RolloutRecord> {
    try {
      await this.exec.transaction(async (sql) => {
        await sql('INSERT INTO rollouts (id, tenant, kind, state, active, rev, created_at, updated_at, doc) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8)', [
          r.id,
          r.tenant,
          r.kind,
          r.state,
          r.active,
          r.createdAt,
          r.updatedAt,
          JSON.stringify(r.doc),
        ]);
        await insertAudit(sql, { tenant: r.tenant, actor, action: 'rollout.create', subject: r.id, detail: JSON.stringify(detail ?? null) }, r.createdAt);
        // Schema caches must learn that a version is held back from ingest.
        await bumpEpoch(sql);
      });
    } catch (e: unknown) {
      // The partial unique index: another active rollout of this kind (perhaps created by another process just now).
      if ((e as { code?: string }).code === '23505' && (e as { constraint?: string }).constraint === 'rollouts_one_active') {
        const [active] = await this.exec.query<{ id: string }>('SELECT id FROM rollouts WHERE tenant = $1 AND kind = $2 AND active', [r.tenant, r.kind]).catch(() => []);
        throw activeRolloutExists(r.tenant, r.kind, active?.id);
      }
      throw e;
    }
    return { ...r, rev: 1 };
  }

  async get(tenant: string, id: string): Promise<RolloutRecord | null> {
    const rows = await this.exec.query<RolloutRow>('SELECT * FROM rollouts WHERE tenant = $1 AND id = $2', [tenant, id]);
    return rows[0] ? toRolloutRecord(rows[0]) : null;
  }

  async list(tenant: string, limit = 100): Promise<RolloutRecord[]> {
    return (await this.exec.query<RolloutRow>('SELECT * FROM rollouts WHERE tenant = $1 ORDER BY created_at DESC, id DESC LIMIT $2', [tenant, limit])).map(toRolloutRecord);
  }

  async active(): Promise<RolloutRecord[]> {
    return (await this.exec.query<RolloutRow>('SELECT * FROM rollouts WHERE active ORDER BY created_at, id')).map(toRolloutRecord);
  }

  async save(r: RolloutRecord, actor: string, action: string | null, detail: unknown, makeLive?: MakeLive): Promise<RolloutRecord | null> {
    return this.exec.transaction(async (sql) => {
      const rows = await sql('UPDATE rollouts SET state = $1, active = $2, rev = rev + 1, updated_at = $3, doc = $4 WHERE tenant = $5 AND id = $6 AND rev = $7 RETURNING id', [
        r.state,
        r.active,
        r.updatedAt,
        JSON.stringify(r.doc),
        r.tenant,
        r.id,
        r.rev,
      ]);
      if (rows.length !== 1) return null;
      if (!r.active) await bumpEpoch(sql);
      if (action !== null) await insertAudit(sql, { tenant: r.tenant, actor, action, subject: r.id, detail: JSON.stringify(detail ?? null) }, r.updatedAt);
      if (makeLive) await activateIn(sql, makeLive.scope, makeLive.version, actor, { rollout: r.id }, r.updatedAt);
      return { ...r, rev: r.rev + 1 };
    });
  }

  async addTallies(id: string, rows: readonly { minute: number; side: RolloutSide; tally: RolloutTally }[]): Promise<void> {
    if (rows.length === 0) return;
    await this.exec.transaction(async (sql) => {
      for (const { minute, side, tally: t } of rows)
        await sql(
          `INSERT INTO rollout_tallies (id, minute, side, events, dead, dropped, compared, diffs, cost_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (id, minute, side) DO UPDATE SET events = rollout_tallies.events + excluded.events, dead = rollout_tallies.dead + excluded.dead,
             dropped = rollout_tallies.dropped + excluded.dropped, compared = rollout_tallies.compared + excluded.compared,
             diffs = rollout_tallies.diffs + excluded.diffs, cost_ms = rollout_tallies.cost_ms + excluded.cost_ms`,
          [id, minute, side, t.events, t.dead, t.dropped, t.compared, t.diffs, t.costMs],
        );
    });
  }

  async tallies(id: string, from: number, to: number): Promise<Record<RolloutSide, RolloutTally>> {
    const rows = await this.exec.query<{ side: RolloutSide; events: string; dead: string; dropped: string; compared: string; diffs: string; cost_ms: number }>(
      `SELECT side, SUM(events) AS events, SUM(dead) AS dead, SUM(dropped) AS dropped, SUM(compared) AS compared, SUM(diffs) AS diffs, SUM(cost_ms) AS cost_ms
       FROM rollout_tallies WHERE id = $1 AND minute >= $2 AND minute < $3 GROUP BY side`,
      [id, from, to],
    );
    const out: Record<RolloutSide, RolloutTally> = { cohort: { ...ZERO_TALLY }, baseline: { ...ZERO_TALLY } };
    for (const t of rows) out[t.side] = { events: Number(t.events), dead: Number(t.dead), dropped: Number(t.dropped), compared: Number(t.compared), diffs: Number(t.diffs), costMs: Number(t.cost_ms) };
    return out;
  }

  async addDiff(id: string, diff: RolloutDiff, limitPerKind: number): Promise<RolloutDiff> {
    return this.exec.transaction(async (sql) => {
      await sql(`INSERT INTO rollout_diffs (id, body) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [id, JSON.stringify(ZERO_DIFF)]);
      const [row] = await sql<{ body: string }>('SELECT body FROM rollout_diffs WHERE id = $1 FOR UPDATE', [id]);
      const merged = mergeDiff(JSON.parse(row!.body) as RolloutDiff, diff, limitPerKind);
      await sql('UPDATE rollout_diffs SET body = $2 WHERE id = $1', [id, JSON.stringify(merged)]);
      return merged;
    });
  }

  async diff(id: string): Promise<RolloutDiff> {
    const rows = await this.exec.query<{ body: string }>('SELECT body FROM rollout_diffs WHERE id = $1', [id]);
    return rows[0] ? (JSON.parse(rows[0].body) as RolloutDiff) : { ...ZERO_DIFF, samples: [] };
  }
}
