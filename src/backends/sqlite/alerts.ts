import type { AlertObjectKind, AlertStore, EvaluationWrite, IngestMinute, OutboxRow, StoredAlertState, StoredRule, StoredTransition } from '../../ports/alerts.js';
import { NOTIFICATION_COUNTS, toOutbox, type OutboxDbRow } from '../alert-rows.js';
import { immediate, type SqliteDatabase } from './database.js';

interface RuleRow {
  tenant: string;
  name: string;
  body: string;
  created_at: number;
  updated_at: number;
}


const toRule = (r: RuleRow): StoredRule => ({ tenant: r.tenant, name: r.name, body: JSON.parse(r.body) as unknown, createdAt: r.created_at, updatedAt: r.updated_at });

/** Alert rules, states, history, objects and the outbox in the embedded catalog. */
export class SqliteAlerts implements AlertStore {
  constructor(private readonly db: SqliteDatabase) {}

  private audit(tenant: string, actor: string, action: string, subject: string, detail: unknown, at: number): void {
    this.db.prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)').run(tenant, at, actor, action, subject, JSON.stringify(detail ?? null));
  }

  async putRule(tenant: string, name: string, body: unknown, actor: string): Promise<{ created: boolean; rule: StoredRule }> {
    const now = Date.now();
    return immediate(this.db, () => {
      const before = this.db.prepare('SELECT created_at FROM alert_rules WHERE tenant = ? AND name = ?').get(tenant, name) as { created_at: number } | undefined;
      this.db
        .prepare('INSERT INTO alert_rules (tenant, name, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at')
        .run(tenant, name, JSON.stringify(body), now, now);
      this.audit(tenant, actor, 'alert.rule.put', name, body, now);
      return { created: !before, rule: { tenant, name, body, createdAt: before?.created_at ?? now, updatedAt: now } };
    });
  }

  async getRule(tenant: string, name: string): Promise<StoredRule | null> {
    const r = this.db.prepare('SELECT * FROM alert_rules WHERE tenant = ? AND name = ?').get(tenant, name) as RuleRow | undefined;
    return r ? toRule(r) : null;
  }

  async listRules(tenant: string | null): Promise<StoredRule[]> {
    const rows = (
      tenant === null ? this.db.prepare('SELECT * FROM alert_rules ORDER BY tenant, name').all() : this.db.prepare('SELECT * FROM alert_rules WHERE tenant = ? ORDER BY name').all(tenant)
    ) as RuleRow[];
    return rows.map(toRule);
  }

  async deleteRule(tenant: string, name: string, actor: string): Promise<boolean> {
    const now = Date.now();
    return immediate(this.db, () => {
      const gone = this.db.prepare('DELETE FROM alert_rules WHERE tenant = ? AND name = ?').run(tenant, name).changes === 1;
      this.db.prepare('DELETE FROM alert_states WHERE tenant = ? AND rule = ?').run(tenant, name);
      if (gone) this.audit(tenant, actor, 'alert.rule.delete', name, null, now);
      return gone;
    });
  }

  async states(tenant: string | null): Promise<StoredAlertState[]> {
    const rows = (
      tenant === null ? this.db.prepare('SELECT * FROM alert_states ORDER BY tenant, rule, severity').all() : this.db.prepare('SELECT * FROM alert_states WHERE tenant = ? ORDER BY rule, severity').all(tenant)
    ) as { tenant: string; rule: string; severity: string; body: string }[];
    return rows.map((r) => ({ ...r, body: JSON.parse(r.body) as unknown }));
  }

  async saveEvaluation(e: EvaluationWrite): Promise<void> {
    const now = Date.now();
    immediate(this.db, () => {
      const state = this.db.prepare(
        'INSERT INTO alert_states (tenant, rule, severity, body) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, rule, severity) DO UPDATE SET body = excluded.body',
      );
      for (const s of e.states) state.run(e.tenant, s.rule, s.severity, JSON.stringify(s.body));
      const history = this.db.prepare('INSERT INTO alert_history (tenant, rule, severity, at, body) VALUES (?, ?, ?, ?, ?)');
      for (const t of e.transitions) history.run(e.tenant, t.rule, t.severity, t.at, JSON.stringify(t.body));
      const outbox = this.db.prepare('INSERT INTO alert_outbox (id, tenant, receiver, body, created_at, next_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING');
      for (const n of e.notifications) outbox.run(n.id, e.tenant, n.receiver, JSON.stringify(n.body), now, n.nextAt);
      for (const o of e.objects) this.writeObject(e.tenant, o.kind, o.name, o.body, now);
    });
  }

  async history(tenant: string, from: number, to: number, limit: number, rule?: string): Promise<StoredTransition[]> {
    const rows = this.db
      .prepare('SELECT tenant, rule, severity, at, body FROM alert_history WHERE tenant = ? AND at >= ? AND at < ? AND (? IS NULL OR rule = ?) ORDER BY at, id LIMIT ?')
      .all(tenant, from, to, rule ?? null, rule ?? null, Math.max(1, limit)) as { tenant: string; rule: string; severity: string; at: number; body: string }[];
    return rows.map((r) => ({ ...r, body: JSON.parse(r.body) as unknown }));
  }

  private writeObject(tenant: string, kind: AlertObjectKind, name: string, body: unknown, now: number): boolean {
    if (body === null) return this.db.prepare('DELETE FROM alert_objects WHERE tenant = ? AND kind = ? AND name = ?').run(tenant, kind, name).changes === 1;
    const before = this.db.prepare('SELECT 1 FROM alert_objects WHERE tenant = ? AND kind = ? AND name = ?').get(tenant, kind, name);
    this.db
      .prepare('INSERT INTO alert_objects (tenant, kind, name, body, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, kind, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at')
      .run(tenant, kind, name, JSON.stringify(body), now);
    return !before;
  }

  async putObject(tenant: string, kind: AlertObjectKind, name: string, body: unknown, actor: string): Promise<{ created: boolean }> {
    const now = Date.now();
    return immediate(this.db, () => {
      const created = this.writeObject(tenant, kind, name, body, now);
      this.audit(tenant, actor, `alert.${kind}.put`, name, body, now);
      return { created };
    });
  }

  async getObject(tenant: string, kind: AlertObjectKind, name: string): Promise<unknown | null> {
    const r = this.db.prepare('SELECT body FROM alert_objects WHERE tenant = ? AND kind = ? AND name = ?').get(tenant, kind, name) as { body: string } | undefined;
    return r ? (JSON.parse(r.body) as unknown) : null;
  }

  async listObjects(tenant: string, kind: AlertObjectKind): Promise<{ name: string; body: unknown }[]> {
    const rows = this.db.prepare('SELECT name, body FROM alert_objects WHERE tenant = ? AND kind = ? ORDER BY name').all(tenant, kind) as { name: string; body: string }[];
    return rows.map((r) => ({ name: r.name, body: JSON.parse(r.body) as unknown }));
  }

  async deleteObject(tenant: string, kind: AlertObjectKind, name: string, actor: string): Promise<boolean> {
    const now = Date.now();
    return immediate(this.db, () => {
      const gone = this.writeObject(tenant, kind, name, null, now);
      if (gone) this.audit(tenant, actor, `alert.${kind}.delete`, name, null, now);
      return gone;
    });
  }

  async dueNotifications(now: number, limit: number): Promise<OutboxRow[]> {
    const rows = this.db
      .prepare(
        `SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY tenant, receiver ORDER BY created_at, id) AS turn FROM alert_outbox WHERE delivered_at IS NULL AND next_at <= ?)
         ORDER BY turn, created_at, id LIMIT ?`,
      )
      .all(now, Math.max(1, limit)) as OutboxDbRow[];
    return rows.map(toOutbox);
  }

  async markDelivered(id: string, at: number): Promise<boolean> {
    return this.db.prepare('UPDATE alert_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ? AND delivered_at IS NULL').run(at, id).changes === 1;
  }

  async markFailed(id: string, error: string, nextAt: number): Promise<void> {
    this.db.prepare('UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, next_at = ? WHERE id = ? AND delivered_at IS NULL').run(error.slice(0, 1000), nextAt, id);
  }

  async pruneNotifications(deliveredBefore: number, limit: number): Promise<number> {
    return immediate(this.db, () => {
      // alert_outbox_due (delivered_at, next_at) serves the range, oldest delivery first.
      const rows = this.db
        .prepare('SELECT id, tenant, receiver, attempts FROM alert_outbox WHERE delivered_at IS NOT NULL AND delivered_at < ? ORDER BY delivered_at LIMIT ?')
        .all(deliveredBefore, Math.max(1, limit)) as { id: string; tenant: string; receiver: string; attempts: number }[];
      const add = this.db.prepare(
        'INSERT INTO alert_notification_totals (tenant, receiver, delivered, failed) VALUES (?, ?, 1, ?) ON CONFLICT (tenant, receiver) DO UPDATE SET delivered = delivered + 1, failed = failed + excluded.failed',
      );
      const remove = this.db.prepare('DELETE FROM alert_outbox WHERE id = ?');
      for (const r of rows) {
        add.run(r.tenant, r.receiver, r.attempts - 1);
        remove.run(r.id);
      }
      return rows.length;
    });
  }

  async addIngestMinutes(rows: readonly IngestMinute[]): Promise<void> {
    if (rows.length === 0) return;
    immediate(this.db, () => {
      const add = this.db.prepare(
        'INSERT INTO ingest_minutes (tenant, minute, requests, failed) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, minute) DO UPDATE SET requests = requests + excluded.requests, failed = failed + excluded.failed',
      );
      for (const r of rows) add.run(r.tenant, r.minute, r.requests, r.failed);
    });
  }

  async ingestMinutes(tenant: string, from: number, to: number): Promise<IngestMinute[]> {
    return this.db.prepare('SELECT tenant, minute, requests, failed FROM ingest_minutes WHERE tenant = ? AND minute >= ? AND minute < ? ORDER BY minute').all(tenant, from, to) as IngestMinute[];
  }

  async notificationCounts(): Promise<{ tenant: string; receiver: string; delivered: number; failed: number }[]> {
    return this.db.prepare(NOTIFICATION_COUNTS).all() as { tenant: string; receiver: string; delivered: number; failed: number }[];
  }

  async lease(owner: string, ttlMs: number, now: number): Promise<boolean> {
    return (
      this.db
        .prepare(
          `INSERT INTO alert_lease (name, owner, expires_at) VALUES ('evaluator', ?, ?)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
       WHERE alert_lease.owner = excluded.owner OR alert_lease.expires_at <= ?`,
        )
        .run(owner, now + ttlMs, now).changes === 1
    );
  }
}
