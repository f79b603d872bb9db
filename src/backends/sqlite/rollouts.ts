import { mergeDiff, ZERO_DIFF, ZERO_TALLY, type NewRolloutRecord, type RolloutDiff, type RolloutRecord, type RolloutSide, type RolloutStore, type RolloutTally, type MakeLive } from '../../ports/rollouts.js';
import { activeRolloutExists, toRolloutRecord, type RolloutRow } from '../rollout-rows.js';
import { bumpEpoch, immediate, type SqliteDatabase } from './database.js';
import { activateIn } from './pipelines.js';

/** Rollouts in the embedded catalog's SQLite file (see RolloutStore). */
export class SqliteRollouts implements RolloutStore {
  constructor(private readonly db: SqliteDatabase) {}

  private audit(tenant: string, at: number, actor: string, action: string, subject: string, detail: unknown): void {
    this.db.prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)').run(tenant, at, actor, action, subject, JSON.stringify(detail ?? null));
  }

  async create(r: NewRolloutRecord, actor: string, detail: unknown): Promise<RolloutRecord> {
    return immediate(this.db, () => {
      const active = r.active ? (this.db.prepare('SELECT id FROM rollouts WHERE tenant = ? AND kind = ? AND active = 1').get(r.tenant, r.kind) as { id: string } | undefined) : undefined;
      if (active) throw activeRolloutExists(r.tenant, r.kind, active.id);
      this.db
        .prepare('INSERT INTO rollouts (id, tenant, kind, state, active, rev, created_at, updated_at, doc) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)')
        .run(r.id, r.tenant, r.kind, r.state, r.active ? 1 : 0, r.createdAt, r.updatedAt, JSON.stringify(r.doc));
      this.audit(r.tenant, r.createdAt, actor, 'rollout.create', r.id, detail);
      // Schema caches must learn that a version is held back from ingest.
      bumpEpoch(this.db);
      return { ...r, rev: 1 };
    });
  }

  async get(tenant: string, id: string): Promise<RolloutRecord | null> {
    const row = this.db.prepare('SELECT * FROM rollouts WHERE tenant = ? AND id = ?').get(tenant, id) as RolloutRow | undefined;
    return row ? toRolloutRecord(row) : null;
  }

  async list(tenant: string, limit = 100): Promise<RolloutRecord[]> {
    return (this.db.prepare('SELECT * FROM rollouts WHERE tenant = ? ORDER BY created_at DESC, id DESC LIMIT ?').all(tenant, limit) as RolloutRow[]).map(toRolloutRecord);
  }

  async active(): Promise<RolloutRecord[]> {
    return (this.db.prepare('SELECT * FROM rollouts WHERE active = 1 ORDER BY created_at, id').all() as RolloutRow[]).map(toRolloutRecord);
  }

  async save(r: RolloutRecord, actor: string, action: string | null, detail: unknown, makeLive?: MakeLive): Promise<RolloutRecord | null> {
    return immediate(this.db, () => {
      const n = this.db
        .prepare('UPDATE rollouts SET state = ?, active = ?, rev = rev + 1, updated_at = ?, doc = ? WHERE tenant = ? AND id = ? AND rev = ?')
        .run(r.state, r.active ? 1 : 0, r.updatedAt, JSON.stringify(r.doc), r.tenant, r.id, r.rev).changes;
      if (n !== 1) return null;
      if (!r.active) bumpEpoch(this.db);
      if (action !== null) this.audit(r.tenant, r.updatedAt, actor, action, r.id, detail);
      if (makeLive) activateIn(this.db, makeLive.scope, makeLive.version, actor, { rollout: r.id }, r.updatedAt);
      return { ...r, rev: r.rev + 1 };
    });
  }

  async addTallies(id: string, rows: readonly { minute: number; side: RolloutSide; tally: RolloutTally }[]): Promise<void> {
    const up = this.db.prepare(
      `INSERT INTO rollout_tallies (id, minute, side, events, dead, dropped, compared, diffs, cost_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id, minute, side) DO UPDATE SET events = events + excluded.events, dead = dead + excluded.dead, dropped = dropped + excluded.dropped,
         compared = compared + excluded.compared, diffs = diffs + excluded.diffs, cost_ms = cost_ms + excluded.cost_ms`,
    );
    immediate(this.db, () => {
      for (const { minute, side, tally: t } of rows) up.run(id, minute, side, t.events, t.dead, t.dropped, t.compared, t.diffs, t.costMs);
    });
  }

  async tallies(id: string, from: number, to: number): Promise<Record<RolloutSide, RolloutTally>> {
    const rows = this.db
      .prepare(
        `SELECT side, SUM(events) AS events, SUM(dead) AS dead, SUM(dropped) AS dropped, SUM(compared) AS compared, SUM(diffs) AS diffs, SUM(cost_ms) AS costMs
         FROM rollout_tallies WHERE id = ? AND minute >= ? AND minute < ? GROUP BY side`,
      )
      .all(id, from, to) as (RolloutTally & { side: RolloutSide })[];
    const out: Record<RolloutSide, RolloutTally> = { cohort: { ...ZERO_TALLY }, baseline: { ...ZERO_TALLY } };
    for (const { side, ...t } of rows) out[side] = { events: Number(t.events), dead: Number(t.dead), dropped: Number(t.dropped), compared: Number(t.compared), diffs: Number(t.diffs), costMs: Number(t.costMs) };
    return out;
  }

  async addDiff(id: string, diff: RolloutDiff, limitPerKind: number): Promise<RolloutDiff> {
    return immediate(this.db, () => {
      const row = this.db.prepare('SELECT body FROM rollout_diffs WHERE id = ?').pluck().get(id) as string | undefined;
      const merged = mergeDiff(row ? (JSON.parse(row) as RolloutDiff) : ZERO_DIFF, diff, limitPerKind);
      this.db.prepare('INSERT INTO rollout_diffs (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body').run(id, JSON.stringify(merged));
      return merged;
    });
  }

  async diff(id: string): Promise<RolloutDiff> {
    const row = this.db.prepare('SELECT body FROM rollout_diffs WHERE id = ?').pluck().get(id) as string | undefined;
    return row ? (JSON.parse(row) as RolloutDiff) : { ...ZERO_DIFF, samples: [] };
  }
}
