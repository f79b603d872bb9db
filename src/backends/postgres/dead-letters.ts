import { errorSignature } from '../../core/signature.js';
import type { DeadLetter, Fault, MinuteCount } from '../../core/types.js';
import type { DeadLetterFilter, DeadLetterGroup, DeadLetterPage, DeadLetterRow, DeadLetterStore } from '../../ports/dead-letters.js';
import { ACTIVE, afterCursor, clampLimit, groupOf, LIST_ORDER, pageOf, payloadOf, toRow, whereOf } from '../dead-letter-rows.js';
import { Params } from '../sql/compile.js';
import { applyGroupChange, type GroupState, type GroupStatus } from '../../core/dlq-lifecycle.js';
import { REOPEN_NOTE, toGroupState, untouchedGroup, type GroupRow } from '../dead-letter-groups.js';
import { insertAudit } from './changes.js';
import type { Executor } from './database.js';

/** A filter's WHERE clause with `$n` placeholders, and its values. */
function where(tenant: string, f: DeadLetterFilter, p = new Params()): { sql: string; p: Params } {
  return { sql: whereOf(tenant, f, (v) => p.add(v)), p };
}

/**
 * Dead letters in the PostgreSQL catalog. A batch is written with one statement over arrays
 * (unnest); its rows are first reduced to one per key, because an upsert may not touch a
 * row twice.
 */
export class PostgresDeadLetters implements DeadLetterStore {
  constructor(private readonly exec: Executor) {}

  async record(entries: readonly DeadLetter[], status: 'open' | 'held' | 'discarded' = 'open'): Promise<void> {
    if (entries.length === 0) return;
    const now = Date.now();
    const last = new Map<string, DeadLetter>();
    for (const d of entries) last.set(JSON.stringify([d.record.tenant, d.record.idempotencyKey]), d);
    const cols: unknown[][] = Array.from({ length: 15 }, () => []);
    for (const d of last.values()) {
      const r = d.record;
      const path = d.path ?? '';
      const values = [r.tenant, r.idempotencyKey, r.type, d.reason, d.message, r.attempt, r.partition, r.offset, r.origin, payloadOf(d), r.receivedAt, r.replay ?? 0,
        errorSignature(d.reason, path, d.message), path, d.schemaVersion ?? null];
      values.forEach((v, i) => cols[i]!.push(v));
    }
    // A failure of an older replay generation than the entry's is a stale redelivery: ignored.
    const written = await this.exec.query<{ tenant: string; signature: string }>(
      `INSERT INTO dead_letters (tenant, idem, type, reason, message, attempts, p, o, origin, payload, received_at, replays, signature, path, schema_version,
         first_seen, last_seen, status)
       SELECT *, $16::bigint, $16::bigint, $17::text FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::bigint[],
         $9::text[], $10::text[], $11::bigint[], $12::int[], $13::text[], $14::text[], $15::int[])
       ON CONFLICT (tenant, idem) DO UPDATE SET
         reason = excluded.reason, message = excluded.message, attempts = greatest(dead_letters.attempts, excluded.attempts),
         p = excluded.p, o = excluded.o, last_seen = excluded.last_seen, status = excluded.status,
         signature = excluded.signature, path = excluded.path, schema_version = excluded.schema_version, origin = excluded.origin
       WHERE excluded.replays >= dead_letters.replays AND dead_letters.status <> 'discarded'
       RETURNING tenant, signature`,
      [...cols, now, status],
    );
    if (status !== 'open' || written.length === 0) return;
    // New open entries in a resolved group reopen it: the fix did not hold.
    await this.exec.query(
      `UPDATE dlq_groups g SET status = 'open', updated_at = $1,
         history = (g.history::jsonb || jsonb_build_array(jsonb_build_object('at', $1::bigint, 'actor', 'sluice', 'status', 'open', 'owner', g.owner, 'note', $4::text)))::text
       FROM unnest($2::text[], $3::text[]) AS x(tenant, signature)
       WHERE g.tenant = x.tenant AND g.signature = x.signature AND g.status = 'resolved'`,
      [now, written.map((w) => w.tenant), written.map((w) => w.signature), REOPEN_NOTE],
    );
  }

  async list(tenant: string, filter: DeadLetterFilter, limit: number, cursor?: string | null): Promise<DeadLetterPage> {
    const w = where(tenant, filter);
    const after = cursor ? ` AND ${afterCursor(cursor, (v) => w.p.add(v))}` : '';
    const n = clampLimit(limit, 10_000);
    const rows = await this.exec.query(`SELECT * FROM dead_letters WHERE ${w.sql}${after} ${LIST_ORDER} LIMIT ${w.p.add(n + 1)}`, w.p.values);
    return pageOf(rows.map(toRow), n);
  }

  async get(tenant: string, idempotencyKey: string): Promise<DeadLetterRow | null> {
    const rows = await this.exec.query('SELECT * FROM dead_letters WHERE tenant = $1 AND idem = $2', [tenant, idempotencyKey]);
    return rows[0] ? toRow(rows[0]) : null;
  }

  async groups(tenant: string, filter: DeadLetterFilter, limit: number): Promise<DeadLetterGroup[]> {
    const w = where(tenant, filter);
    const groups = await this.exec.query<{ signature: string; reason: string; path: string; n: number; first_seen: number; last_seen: number; types: string[] }>(
      `SELECT signature, min(reason) AS reason, min(path) AS path, count(*) AS n, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
         array_agg(DISTINCT type) AS types
       FROM dead_letters WHERE ${w.sql} GROUP BY signature ORDER BY n DESC, signature LIMIT ${w.p.add(clampLimit(limit, 500))}`,
      w.p.values,
    );
    return Promise.all(
      groups.map(async (g) => {
        const s = where(tenant, filter);
        const samples = await this.exec.query(`SELECT * FROM dead_letters WHERE ${s.sql} AND signature = ${s.p.add(g.signature)} ${LIST_ORDER} LIMIT 3`, s.p.values);
        return groupOf(g, samples.map(toRow));
      }),
    );
  }

  async counts(tenant: string): Promise<Record<string, number>> {
    const rows = await this.exec.query<{ reason: string; n: number }>(
      `SELECT reason, count(*) AS n FROM dead_letters WHERE tenant = $1 AND status IN ('open', 'held') GROUP BY reason`,
      [tenant],
    );
    return Object.fromEntries(rows.map((r) => [r.reason, Number(r.n)]));
  }

  async byMinute(from: number, to: number): Promise<MinuteCount[]> {
    const rows = await this.exec.query<{ tenant: string; minute: number; n: number }>(
      `SELECT tenant, received_at - (received_at % 60000) AS minute, count(*) AS n FROM dead_letters
       WHERE received_at >= $1 AND received_at < $2 AND status <> 'replayed' GROUP BY 1, 2`,
      [from, to],
    );
    return rows.map((r) => ({ tenant: r.tenant, minute: Number(r.minute), n: Number(r.n) }));
  }

  async markReplayed(tenant: string, entries: readonly { idempotencyKey: string; generation: number }[]): Promise<boolean[]> {
    if (entries.length === 0) return [];
    // last_seen stays: it is the entry's place in the order that replay pages through.
    const rows = await this.exec.query<{ idem: string }>(
      `UPDATE dead_letters d SET status = 'replayed', replays = u.g
       FROM unnest($2::text[], $3::int[]) AS u(idem, g)
       WHERE d.tenant = $1 AND d.idem = u.idem AND d.replays = u.g - 1 AND d.status IN ('open', 'held')
       RETURNING d.idem`,
      [tenant, entries.map((e) => e.idempotencyKey), entries.map((e) => e.generation)],
    );
    const marked = new Set(rows.map((r) => r.idem));
    return entries.map((e) => marked.has(e.idempotencyKey));
  }

  async refail(tenant: string, entries: readonly { idempotencyKey: string; fault: Fault }[]): Promise<void> {
    if (entries.length === 0) return;
    const f = entries.map((e) => e.fault);
    await this.exec.query(
      `UPDATE dead_letters d SET reason = u.reason, message = u.message, path = u.path, schema_version = u.sv, signature = u.signature,
         last_seen = $8, status = 'open'
       FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[]) AS u(idem, reason, message, path, sv, signature)
       WHERE d.tenant = $1 AND d.idem = u.idem AND d.status IN ('open', 'held')`,
      [
        tenant,
        entries.map((e) => e.idempotencyKey),
        f.map((x) => x.reason),
        f.map((x) => x.message),
        f.map((x) => x.path),
        f.map((x) => x.schemaVersion ?? null),
        f.map((x) => errorSignature(x.reason, x.path, x.message)),
        Date.now(),
      ],
    );
  }

  async discard(tenant: string, filter: DeadLetterFilter, limit: number): Promise<number> {
    const w = where(tenant, { ...filter, status: ACTIVE });
    // last_seen stays, as a replay leaves it: a discard is not a failure seen again (the audit log says when and why).
    const rows = await this.exec.query(
      `UPDATE dead_letters SET status = 'discarded'
       WHERE (tenant, idem) IN (SELECT tenant, idem FROM dead_letters WHERE ${w.sql} LIMIT ${w.p.add(Math.max(1, limit))}) RETURNING idem`,
      w.p.values,
    );
    return rows.length;
  }

  async groupStates(tenant: string, signatures: readonly string[]): Promise<Map<string, GroupState>> {
    const out = new Map<string, GroupState>();
    if (signatures.length === 0) return out;
    const rows = await this.exec.query<GroupRow>('SELECT signature, status, owner, history FROM dlq_groups WHERE tenant = $1 AND signature = ANY($2::text[])', [tenant, [...signatures]]);
    for (const r of rows) out.set(r.signature, toGroupState(r));
    return out;
  }

  async updateGroup(tenant: string, signature: string, change: { status?: GroupStatus; owner?: string | null; note?: string | null }, actor: string): Promise<GroupState> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      await sql('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`sluice:dlq-group:${tenant}:${signature}`]);
      const row = (await sql<GroupRow>('SELECT signature, status, owner, history FROM dlq_groups WHERE tenant = $1 AND signature = $2', [tenant, signature]))[0];
      const before = row ? toGroupState(row) : untouchedGroup(signature);
      const after = applyGroupChange(before, change, actor, now);
      await sql(
        `INSERT INTO dlq_groups (tenant, signature, status, owner, history, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant, signature) DO UPDATE SET status = excluded.status, owner = excluded.owner, history = excluded.history, updated_at = excluded.updated_at`,
        [tenant, signature, after.status, after.owner, JSON.stringify(after.history), now],
      );
      const detail = JSON.stringify({ before: { status: before.status, owner: before.owner }, after: { status: after.status, owner: after.owner }, note: change.note ?? null });
      await insertAudit(sql, { tenant, actor, action: 'dlq.group', subject: signature, detail }, now);
      return after;
    });
  }
}
