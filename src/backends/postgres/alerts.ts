import type { AlertObjectKind, AlertStore, EvaluationWrite, IngestMinute, OutboxRow, StoredAlertState, StoredRule, StoredTransition } from '../../ports/alerts.js';
import { NOTIFICATION_COUNTS, toOutbox } from '../alert-rows.js';
import { insertAudit } from './changes.js';
import type { Executor, Sql } from './database.js';

interface RuleRow {
  tenant: string;
  name: string;
  body: string;
  created_at: number;
  updated_at: number;
}

const toRule = (r: RuleRow): StoredRule => ({ tenant: r.tenant, name: r.name, body: JSON.parse(r.body) as unknown, createdAt: Number(r.created_at), updatedAt: Number(r.updated_at) });

async function writeObject(sql: Sql, tenant: string, kind: AlertObjectKind, name: string, body: unknown, now: number): Promise<boolean> {
  if (body === null) return (await sql('DELETE FROM alert_objects WHERE tenant = $1 AND kind = $2 AND name = $3 RETURNING 1', [tenant, kind, name])).length === 1;
  const rows = await sql<{ created: boolean }>(
    `INSERT INTO alert_objects (tenant, kind, name, body, updated_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (tenant, kind, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at
     RETURNING (xmax = 0) AS created`,
    [tenant, kind, name, JSON.stringify(body), now],
  );
  return rows[0]!.created;
}

/** Alert rules, states, history, objects and the outbox in the PostgreSQL catalog. */
export class PostgresAlerts implements AlertStore {
  constructor(private readonly exec: Executor) {}

  async putRule(tenant: string, name: string, body: unknown, actor: string): Promise<{ created: boolean; rule: StoredRule }> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      const rows = await sql<RuleRow & { created: boolean }>(
        `INSERT INTO alert_rules (tenant, name, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (tenant, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at
         RETURNING *, (xmax = 0) AS created`,
        [tenant, name, JSON.stringify(body), now],
      );
      await insertAudit(sql, { tenant, actor, action: 'alert.rule.put', subject: name, detail: JSON.stringify(body) }, now);
      return { created: rows[0]!.created, rule: toRule(rows[0]!) };
    });
  }

  async getRule(tenant: string, name: string): Promise<StoredRule | null> {
    const rows = await this.exec.query<RuleRow>('SELECT * FROM alert_rules WHERE tenant = $1 AND name = $2', [tenant, name]);
    return rows[0] ? toRule(rows[0]) : null;
  }

  async listRules(tenant: string | null): Promise<StoredRule[]> {
    const rows =
      tenant === null
        ? await this.exec.query<RuleRow>('SELECT * FROM alert_rules ORDER BY tenant, name')
        : await this.exec.query<RuleRow>('SELECT * FROM alert_rules WHERE tenant = $1 ORDER BY name', [tenant]);
    return rows.map(toRule);
  }

  async deleteRule(tenant: string, name: string, actor: string): Promise<boolean> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      const gone = (await sql('DELETE FROM alert_rules WHERE tenant = $1 AND name = $2 RETURNING 1', [tenant, name])).length === 1;
      await sql('DELETE FROM alert_states WHERE tenant = $1 AND rule = $2', [tenant, name]);
      if (gone) await insertAudit(sql, { tenant, actor, action: 'alert.rule.delete', subject: name, detail: 'null' }, now);
      return gone;
    });
  }

  async states(tenant: string | null): Promise<StoredAlertState[]> {
    const rows =
      tenant === null
        ? await this.exec.query<{ tenant: string; rule: string; severity: string; body: string }>('SELECT * FROM alert_states ORDER BY tenant, rule, severity')
        : await this.exec.query<{ tenant: string; rule: string; severity: string; body: string }>('SELECT * FROM alert_states WHERE tenant = $1 ORDER BY rule, severity', [tenant]);
    return rows.map((r) => ({ ...r, body: JSON.parse(r.body) as unknown }));
  }

  async saveEvaluation(e: EvaluationWrite): Promise<void> {
    const now = Date.now();
    await this.exec.transaction(async (sql) => {
      for (const s of e.states) {
        await sql('INSERT INTO alert_states (tenant, rule, severity, body) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, rule, severity) DO UPDATE SET body = excluded.body', [
          e.tenant,
          s.rule,
          s.severity,
          JSON.stringify(s.body),
        ]);
      }
      for (const t of e.transitions) {
        await sql('INSERT INTO alert_history (tenant, rule, severity, at, body) VALUES ($1, $2, $3, $4, $5)', [e.tenant, t.rule, t.severity, t.at, JSON.stringify(t.body)]);
      }
      for (const n of e.notifications) {
        await sql('INSERT INTO alert_outbox (id, tenant, receiver, body, created_at, next_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING', [
          n.id,
          e.tenant,
          n.receiver,
          JSON.stringify(n.body),
          now,
          n.nextAt,
        ]);
      }
      for (const o of e.objects) await writeObject(sql, e.tenant, o.kind, o.name, o.body, now);
    });
  }

  async history(tenant: string, from: number, to: number, limit: number, rule?: string): Promise<StoredTransition[]> {
    const rows = await this.exec.query<{ tenant: string; rule: string; severity: string; at: number; body: string }>(
      'SELECT tenant, rule, severity, at, body FROM alert_history WHERE tenant = $1 AND at >= $2 AND at < $3 AND ($5::text IS NULL OR rule = $5) ORDER BY at, id LIMIT $4',
      [tenant, from, to, Math.max(1, limit), rule ?? null],
    );
    return rows.map((r) => ({ ...r, at: Number(r.at), body: JSON.parse(r.body) as unknown }));
  }

  async putObject(tenant: string, kind: AlertObjectKind, name: string, body: unknown, actor: string): Promise<{ created: boolean }> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      const created = await writeObject(sql, tenant, kind, name, body, now);
      await insertAudit(sql, { tenant, actor, action: `alert.${kind}.put`, subject: name, detail: JSON.stringify(body) }, now);
      return { created };
    });
  }

  async getObject(tenant: string, kind: AlertObjectKind, name: string): Promise<unknown | null> {
    const rows = await this.exec.query<{ body: string }>('SELECT body FROM alert_objects WHERE tenant = $1 AND kind = $2 AND name = $3', [tenant, kind, name]);
    return rows[0] ? (JSON.parse(rows[0].body) as unknown) : null;
  }

  async listObjects(tenant: string, kind: AlertObjectKind): Promise<{ name: string; body: unknown }[]> {
    const rows = await this.exec.query<{ name: string; body: string }>('SELECT name, body FROM alert_objects WHERE tenant = $1 AND kind = $2 ORDER BY name', [tenant, kind]);
    return rows.map((r) => ({ name: r.name, body: JSON.parse(r.body) as unknown }));
  }

  async deleteObject(tenant: string, kind: AlertObjectKind, name: string, actor: string): Promise<boolean> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      const gone = await writeObject(sql, tenant, kind, name, null, now);
      if (gone) await insertAudit(sql, { tenant, actor, action: `alert.${kind}.delete`, subject: name, detail: 'null' }, now);
      return gone;
    });
  }

  async dueNotifications(now: number, limit: number): Promise<OutboxRow[]> {
    const rows = await this.exec.query<Parameters<typeof toOutbox>[0]>(
      `SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY tenant, receiver ORDER BY created_at, id) AS turn FROM alert_outbox WHERE delivered_at IS NULL AND next_at <= $1) due
       ORDER BY turn, created_at, id LIMIT $2`,
      [now, Math.max(1, limit)],
    );
    return rows.map(toOutbox);
  }

  async markDelivered(id: string, at: number): Promise<boolean> {
    return (await this.exec.query('UPDATE alert_outbox SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2 AND delivered_at IS NULL RETURNING 1', [at, id])).length === 1;
  }

  async markFailed(id: string, error: string, nextAt: number): Promise<void> {
    await this.exec.query('UPDATE alert_outbox SET attempts = attempts + 1, last_error = $1, next_at = $2 WHERE id = $3 AND delivered_at IS NULL', [error.slice(0, 1000), nextAt, id]);
  }

  async pruneNotifications(deliveredBefore: number, limit: number): Promise<number> {
    // One statement: the rows deleted are the rows counted (data-modifying CTEs run to completion).
    const rows = await this.exec.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM alert_outbox WHERE id IN (
           SELECT id FROM alert_outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1 ORDER BY delivered_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ) RETURNING tenant, receiver, attempts
       ), added AS (
         INSERT INTO alert_notification_totals (tenant, receiver, delivered, failed)
         SELECT tenant, receiver, count(*), sum(attempts - 1) FROM gone GROUP BY tenant, receiver
         ON CONFLICT (tenant, receiver) DO UPDATE SET delivered = alert_notification_totals.delivered + excluded.delivered, failed = alert_notification_totals.failed + excluded.failed
       )
       SELECT count(*)::int AS n FROM gone`,
      [deliveredBefore, Math.max(1, limit)],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async addIngestMinutes(rows: readonly IngestMinute[]): Promise<void> {
    if (rows.length === 0) return;
    await this.exec.query(
      `INSERT INTO ingest_minutes (tenant, minute, requests, failed)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
       ON CONFLICT (tenant, minute) DO UPDATE SET requests = ingest_minutes.requests + excluded.requests, failed = ingest_minutes.failed + excluded.failed`,
      [rows.map((r) => r.tenant), rows.map((r) => r.minute), rows.map((r) => r.requests), rows.map((r) => r.failed)],
    );
  }

  async ingestMinutes(tenant: string, from: number, to: number): Promise<IngestMinute[]> {
    const rows = await this.exec.query<{ tenant: string; minute: string; requests: string; failed: string }>(
      'SELECT tenant, minute, requests, failed FROM ingest_minutes WHERE tenant = $1 AND minute >= $2 AND minute < $3 ORDER BY minute',
      [tenant, from, to],
    );
    return rows.map((r) => ({ tenant: r.tenant, minute: Number(r.minute), requests: Number(r.requests), failed: Number(r.failed) }));
  }

  async notificationCounts(): Promise<{ tenant: string; receiver: string; delivered: number; failed: number }[]> {
    const rows = await this.exec.query<{ tenant: string; receiver: string; delivered: number; failed: number }>(NOTIFICATION_COUNTS);
    return rows.map((r) => ({ ...r, delivered: Number(r.delivered), failed: Number(r.failed) }));
  }

  async lease(owner: string, ttlMs: number, now: number): Promise<boolean> {
    const rows = await this.exec.query(
      `INSERT INTO alert_lease (name, owner, expires_at) VALUES ('evaluator', $1, $2)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
       WHERE alert_lease.owner = excluded.owner OR alert_lease.expires_at <= $3
       RETURNING 1`,
      [owner, now + ttlMs, now],
    );
    return rows.length === 1;
  }
}
