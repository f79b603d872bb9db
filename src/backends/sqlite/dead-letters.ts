import { errorSignature } from '../../core/signature.js';
import type { DeadLetter, Fault, MinuteCount } from '../../core/types.js';
import type {
  DeadLetterFilter,
  DeadLetterGroup,
  DeadLetterPage,
  DeadLetterRow,
  DeadLetterStatus,
  DeadLetterStore,
} from '../../ports/dead-letters.js';
import { ACTIVE, afterCursor, clampLimit, groupOf, LIST_ORDER, pageOf, payloadOf, toRow, whereOf } from '../dead-letter-rows.js';
import { applyGroupChange, type GroupState, type GroupStatus } from '../../core/dlq-lifecycle.js';
import { REOPEN_NOTE, toGroupState, untouchedGroup, type GroupRow } from '../dead-letter-groups.js';
import { immediate, type SqliteDatabase } from './database.js';

/** A filter's WHERE clause with `?` placeholders, and its values. */
function where(tenant: string, f: DeadLetterFilter): { sql: string; args: unknown[] } {
  const args: unknown[] = [];
  const sql = whereOf(tenant, f, (v) => (args.push(v), '?'));
  return { sql, args };
}

/** Dead letters in the embedded catalog's SQLite file. */
export class SqliteDeadLetters implements DeadLetterStore {
  private readonly upsert;
  private readonly reopen;

  constructor(private readonly db: SqliteDatabase) {
    // A failure of an older replay generation than the entry's is a stale redelivery: ignored.
    this.upsert = db.prepare(
      `INSERT INTO dead_letters (tenant, idem, type, reason, message, attempts, p, o, first_seen, last_seen, origin, payload,
         received_at, status, replays, signature, path, schema_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, idem) DO UPDATE SET
         reason = excluded.reason, message = excluded.message, attempts = max(attempts, excluded.attempts),
         p = excluded.p, o = excluded.o, last_seen = excluded.last_seen, status = excluded.status,
         signature = excluded.signature, path = excluded.path, schema_version = excluded.schema_version,
         origin = excluded.origin
       WHERE excluded.replays >= dead_letters.replays AND dead_letters.status <> 'discarded'`,
    );
    this.reopen = db.prepare(
      `UPDATE dlq_groups SET status = 'open', updated_at = ?,
         history = json_insert(history, '$[#]', json_object('at', ?, 'actor', 'sluice', 'status', 'open', 'owner', owner, 'note', '${REOPEN_NOTE}'))
       WHERE tenant = ? AND signature = ? AND status = 'resolved'`,
    );
  }

  async record(entries: readonly DeadLetter[], status: 'open' | 'held' | 'discarded' = 'open'): Promise<void> {
    if (entries.length === 0) return;
    const now = Date.now();
    immediate(this.db, () => {
      const opened = new Map<string, [string, string]>();
      for (const d of entries) {
        const r = d.record;
        const path = d.path ?? '';
        const signature = errorSignature(d.reason, path, d.message);
        const { changes } = this.upsert.run(
          r.tenant, r.idempotencyKey, r.type, d.reason, d.message, r.attempt, r.partition, r.offset, now, now, r.origin,
          payloadOf(d), r.receivedAt, status, r.replay ?? 0, signature, path, d.schemaVersion ?? null,
        );
        if (changes > 0 && status === 'open') opened.set(JSON.stringify([r.tenant, signature]), [r.tenant, signature]);
      }
      // New open entries in a resolved group reopen it: the fix did not hold.
      for (const [tenant, signature] of opened.values()) this.reopen.run(now, now, tenant, signature);
    });
  }

  async list(tenant: string, filter: DeadLetterFilter, limit: number, cursor?: string | null): Promise<DeadLetterPage> {
    const w = where(tenant, filter);
    const after = cursor ? ` AND ${afterCursor(cursor, (v) => (w.args.push(v), '?'))}` : '';
    const n = clampLimit(limit, 10_000);
    const rows = this.db.prepare(`SELECT * FROM dead_letters WHERE ${w.sql}${after} ${LIST_ORDER} LIMIT ?`).all(...w.args, n + 1) as Record<string, unknown>[];
    return pageOf(rows.map(toRow), n);
  }

  async get(tenant: string, idempotencyKey: string): Promise<DeadLetterRow | null> {
    const row = this.db.prepare('SELECT * FROM dead_letters WHERE tenant = ? AND idem = ?').get(tenant, idempotencyKey) as Record<string, unknown> | undefined;
    return row ? toRow(row) : null;
  }

  async groups(tenant: string, filter: DeadLetterFilter, limit: number): Promise<DeadLetterGroup[]> {
    const w = where(tenant, filter);
    const groups = this.db
      .prepare(
        `SELECT signature, reason, path, count(*) AS n, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
           json_group_array(DISTINCT type) AS types
         FROM dead_letters WHERE ${w.sql} GROUP BY signature ORDER BY n DESC, signature LIMIT ?`,
      )
      .all(...w.args, clampLimit(limit, 500)) as { signature: string; reason: string; path: string; n: number; first_seen: number; last_seen: number; types: string }[];
    const samples = this.db.prepare(`SELECT * FROM dead_letters WHERE ${w.sql} AND signature = ? ORDER BY last_seen DESC LIMIT 3`);
    return groups.map((g) => groupOf({ ...g, types: JSON.parse(g.types) as string[] }, (samples.all(...w.args, g.signature) as Record<string, unknown>[]).map(toRow)));
  }

  async counts(tenant: string): Promise<Record<string, number>> {
    const rows = this.db
      .prepare(`SELECT reason, count(*) AS n FROM dead_letters WHERE tenant = ? AND status IN ('open', 'held') GROUP BY reason`)
      .all(tenant) as { reason: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.reason, r.n]));
  }

  async byMinute(from: number, to: number): Promise<MinuteCount[]> {
    return this.db
      .prepare(
        `SELECT tenant, received_at - (received_at % 60000) AS minute, count(*) AS n FROM dead_letters
         WHERE received_at >= ? AND received_at < ? AND status <> 'replayed' GROUP BY 1, 2`,
      )
      .all(from, to) as MinuteCount[];
  }

  async markReplayed(tenant: string, entries: readonly { idempotencyKey: string; generation: number }[]): Promise<boolean[]> {
    const mark = this.db.prepare(
      // last_seen stays: it is the entry's place in the order that replay pages through.
      `UPDATE dead_letters SET status = 'replayed', replays = ?
       WHERE tenant = ? AND idem = ? AND replays = ? AND status IN ('open', 'held')`,
    );
    return immediate(this.db, () => entries.map((e) => mark.run(e.generation, tenant, e.idempotencyKey, e.generation - 1).changes === 1));
  }

  async refail(tenant: string, entries: readonly { idempotencyKey: string; fault: Fault }[]): Promise<void> {
    if (entries.length === 0) return;
    const update = this.db.prepare(
      `UPDATE dead_letters SET reason = ?, message = ?, path = ?, schema_version = ?, signature = ?, last_seen = ?, status = 'open'
       WHERE tenant = ? AND idem = ? AND status IN ('open', 'held')`,
    );
    const now = Date.now();
    immediate(this.db, () => {
      for (const { idempotencyKey, fault: f } of entries) {
        update.run(f.reason, f.message, f.path, f.schemaVersion ?? null, errorSignature(f.reason, f.path, f.message), now, tenant, idempotencyKey);
      }
    });
  }

  async discard(tenant: string, filter: DeadLetterFilter, limit: number): Promise<number> {
    const w = where(tenant, { ...filter, status: ACTIVE });
    // last_seen stays, as a replay leaves it: a discard is not a failure seen again (the audit log says when and why).
    return this.db
      .prepare(`UPDATE dead_letters SET status = 'discarded' WHERE (tenant, idem) IN (SELECT tenant, idem FROM dead_letters WHERE ${w.sql} LIMIT ?)`)
      .run(...w.args, Math.max(1, limit)).changes;
  }

  async groupStates(tenant: string, signatures: readonly string[]): Promise<Map<string, GroupState>> {
    const out = new Map<string, GroupState>();
    if (signatures.length === 0) return out;
    const rows = this.db
      .prepare(`SELECT signature, status, owner, history FROM dlq_groups WHERE tenant = ? AND signature IN (${signatures.map(() => '?').join(', ')})`)
      .all(tenant, ...signatures) as GroupRow[];
    for (const r of rows) out.set(r.signature, toGroupState(r));
    return out;
  }

  async updateGroup(tenant: string, signature: string, change: { status?: GroupStatus; owner?: string | null; note?: string | null }, actor: string): Promise<GroupState> {
    const now = Date.now();
    return immediate(this.db, () => {
      const row = this.db.prepare('SELECT signature, status, owner, history FROM dlq_groups WHERE tenant = ? AND signature = ?').get(tenant, signature) as GroupRow | undefined;
      const before = row ? toGroupState(row) : untouchedGroup(signature);
      const after = applyGroupChange(before, change, actor, now);
      this.db
        .prepare(
          `INSERT INTO dlq_groups (tenant, signature, status, owner, history, updated_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (tenant, signature) DO UPDATE SET status = excluded.status, owner = excluded.owner, history = excluded.history, updated_at = excluded.updated_at`,
        )
        .run(tenant, signature, after.status, after.owner, JSON.stringify(after.history), now);
      this.db
        .prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)')
        .run(tenant, now, actor, 'dlq.group', signature, JSON.stringify({ before: { status: before.status, owner: before.owner }, after: { status: after.status, owner: after.owner }, note: change.note ?? null }));
      return after;
    });
  }
}
